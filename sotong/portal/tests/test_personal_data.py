"""No personal data anywhere on the public surface.

Cases are made the way citizens and officers make them — messages from a platform with an
author's handle, the web form with a contact, Open311 with a name, e-mail, phone and
coordinates, answers and hold reasons that quote a number — with one text for every kind of
personal data the masker knows (taken from its corpus). Then every public page is crawled
from the overview by following its links (filters, pages, cases, open data), and every
machine endpoint is fetched in every format, in Korean and in English: none of the raw
values may appear in any response."""

from __future__ import annotations

import html
import re
from collections import deque
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
import yaml
from django.test import Client

from sotong.cases import services
from sotong.cases.services import CaseOpening
from sotong.directory.models import CaseType, Category, Channel, Unit
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import create_connector_token, ingest_batch
from sotong.lib.masking import PERSONAL_DATA_KINDS, find_personal_data
from sotong.portal import abuse
from sotong.triage.services import triage_messages

CORPUS = Path(__file__).resolve().parents[2] / "lib" / "tests" / "masking_corpus.yaml"
# Private pages and actions; everything else under / is the public surface.
PRIVATE = ("/work/", "/admin/", "/accounts/", "/i18n/", "/language/", "/static/")
MACHINE_ENDPOINTS = [
    "/live/overview.json",
    "/data/cases.csv",
    "/data/cases.json",
    "/data/statistics.csv",
    "/data/statistics.json",
    "/api/openapi.json",
    "/open311/v2/services.json",
    "/open311/v2/services.xml",
    "/open311/v2/requests.json",
    "/open311/v2/requests.xml",
    "/open311/v2/requests.json?status=open",
    "/open311/v2/requests.xml?status=closed",
]
MAX_PAGES = 400


def one_text_per_kind() -> dict[str, str]:
    """For each kind of personal data, the first corpus text holding only that kind."""
    texts: dict[str, str] = {}
    for entry in yaml.safe_load(CORPUS.read_text(encoding="utf-8")):
        kinds = entry.get("kinds") or []
        if len(kinds) == 1 and kinds[0] not in texts and not entry.get("allow"):
            texts[kinds[0]] = entry["text"]
    assert set(texts) == set(PERSONAL_DATA_KINDS), set(PERSONAL_DATA_KINDS) - set(texts)
    return texts


def forms_of(value: str) -> set[str]:
    """A secret as it might leak: as written, HTML-escaped, and by its digits alone."""
    forms = {value, html.escape(value)}
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 7:
        forms.add(digits)
    return {f for f in forms if len(f) >= 4}


@pytest.fixture
def surface(people, settings) -> dict[str, object]:
    settings.SOTONG_FORM_MIN_SECONDS = 0
    abuse.form_cache().clear()
    secrets: set[str] = set()
    texts = one_text_per_kind()
    for text in texts.values():
        secrets |= {span.text for span in find_personal_data(text)}

    handle = "@kim_secret_handle"
    messages = ingest_batch(
        [
            NormalizedMessage(
                channel="x",
                external_id=f"pii-{kind}",
                author=handle,
                text=f"종로구 창신동 보안등 고장 신고합니다. {text}",
            )
            for kind, text in texts.items()
        ]
    )
    secrets.add(handle)
    request = CaseType.objects.get(code="request")
    jongno = Unit.objects.get(code="district-jongno")
    cases = services.open_cases(
        [
            CaseOpening(
                message=m, case_type=request, category=None, unit=jongno, district_name="종로구"
            )
            for m in messages
        ]
    )
    officer = people["jongno"]
    # An answer that quotes the citizen's number, and a hold reason that does.
    services.draft_answer(
        cases[0],
        "소중한 의견 감사합니다. 010-5555-7777 번으로 연락드린 보안등 고장은 교체하였습니다. "
        "문의는 종로구청으로 연락 주십시오.",
        actor=officer,
    )
    services.publish_answer(cases[0], actor=officer, override_reason="테스트")
    services.hold_case(cases[1], reason="민원인(010-4444-8888)과 통화 후 처리 예정", actor=officer)
    services.merge_case(cases[2], cases[0], actor=people["center"])
    secrets |= {"010-5555-7777", "010-4444-8888"}

    # The web form: the contact is never public.
    client = Client()
    page = client.get("/write/").content.decode()
    started = html.unescape(re.search(r'name="started" value="([^"]+)"', page)[1])
    contact = "writer.private@mail.example"
    response = client.post(
        "/write/",
        {
            "text": "마포구 합정역 앞 불법주차 신고합니다. 카드 9410-1234-5678-9012 분실도 같이요",
            "district": "마포구",
            "contact": contact,
            "started": started,
        },
    )
    assert response.status_code == 302, response.content.decode()[:500]
    receipt = response["Location"]
    secrets |= {contact, "9410-1234-5678-9012"}

    # Open311: the requester's name, e-mail, phone, device and coordinates.
    key = create_connector_token("pii-open311", Channel.objects.get(code="open311"))[1]
    posted = Client().post(
        "/open311/v2/requests.json",
        {
            "api_key": key,
            "service_code": services_code(),
            "description": "도로 파임 신고합니다. 제 번호 010-3333-2222",
            "lat": "37.571234",
            "long": "126.998765",
            "email": "open311.private@mail.example",
            "first_name": "길동",
            "last_name": "홍",
            "phone": "010-1111-9999",
            "device_id": "device-secret-77",
        },
    )
    assert posted.status_code == 200, posted.content.decode()
    token = posted.json()[0]["token"]
    secrets |= {
        "010-3333-2222",
        "open311.private@mail.example",
        "010-1111-9999",
        "device-secret-77",
        "37.571234",
        "126.998765",
    }
    triage_messages(
        list(Message.objects.filter(case_link__isnull=True).values_list("pk", flat=True))
    )
    return {
        "secrets": secrets,
        "start": [
            "/",
            "/cases/",
            "/data/",
            receipt,
            "/cases/?q=보안등",
            "/cases/?q=신고",
            "/cases/?state=answered",
            "/cases/?state=on_hold",
            "/cases/?state=merged",
            "/cases/?channel=x&district=종로구",
            "/?map=overdue",
            "/data/cases.csv?q=보안등",
            "/data/statistics.json?dimension=channel",
        ],
        "extra": [f"/open311/v2/tokens/{token}.json", f"/open311/v2/tokens/{token}.xml"]
        + [f"/open311/v2/requests/{c.number}.{fmt}" for c in cases for fmt in ("json", "xml")],
    }


def services_code() -> str:
    return Category.objects.filter(active=True).order_by("code").values_list("code", flat=True)[0]


def links(body: str) -> list[str]:
    found = []
    for href in re.findall(r'href="([^"]+)"', body):
        url = urldefrag(html.unescape(href))[0]
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not url.startswith("/"):
            continue  # another site
        if url.startswith(PRIVATE):
            continue
        found.append(url)
    return found


def crawl(client: Client, start: list[str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    queue = deque(start)
    while queue and len(seen) < MAX_PAGES:
        url = queue.popleft()
        if url in seen:
            continue
        response = client.get(url, follow=True)
        assert response.status_code == 200, (url, response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        seen[url] = body.decode("utf-8", errors="replace")
        if "html" in response.get("Content-Type", ""):
            queue.extend(u for u in links(seen[url]) if u not in seen)
    return seen


@pytest.mark.parametrize("language", ["ko", "en"])
def test_no_personal_data_on_any_public_page_export_or_api(surface, language):
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    pages = crawl(client, surface["start"])
    for url in MACHINE_ENDPOINTS + surface["extra"]:
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert response.status_code in (200, 404), (url, response.status_code)
        pages[url] = body.decode("utf-8", errors="replace")

    # The crawl reached the kinds of page the public has: cases, filtered lists, open data.
    assert any(re.fullmatch(r"/cases/S\d{7}/", u) for u in pages)
    assert any(u.startswith("/cases/?") for u in pages)
    assert "/data/" in pages and len(pages) >= 30
    assert any(u.startswith("/data/cases.csv") for u in pages)

    leaks = [
        (url, secret)
        for url, body in pages.items()
        for secret in surface["secrets"]
        for form in forms_of(secret)
        if form in body
    ]
    assert leaks == []
    # The masks themselves are there, so the texts were shown (masked), not just left out.
    everything = "\n".join(pages.values())
    for label in ("[주민등록번호]", "[전화번호]", "[이메일]", "[카드번호]", "[계좌번호]"):
        assert label in everything or html.escape(label) in everything, label
