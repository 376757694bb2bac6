"""The public site: a citizen writes through the web form and follows the receipt (received
when, answer expected by when, then the case number); the public list shows every case with
where it stands, and only published answers; the site speaks Korean first and English on
request."""

from __future__ import annotations

import html
import re

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from sotong.cases import services
from sotong.cases.models import Case
from sotong.cases.services import compute_case_deadline
from sotong.directory.models import CaseType
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.portal import abuse
from sotong.portal.writing import RECEIPT_SALT
from sotong.triage.services import triage_messages

TEXT = "창신동 골목 보안등이 일주일째 꺼져 있어요. 고쳐주세요. 제 번호는 010-1234-5678 입니다."


def local(moment) -> str:
    """A moment as the pages print it: Seoul time, to the minute."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


@pytest.fixture(autouse=True)
def form_without_delay(settings, db):
    settings.SOTONG_FORM_MIN_SECONDS = 0
    abuse.form_cache().clear()


def write(client: Client, **fields):
    """Fill in the form as a browser does: with the signed token the form page carries."""
    page = client.get("/write/").content.decode()
    started = html.unescape(re.search(r'name="started" value="([^"]+)"', page)[1])
    return client.post(
        "/write/",
        {"text": TEXT, "district": "종로구", "contact": "", "started": started, **fields},
    )


def test_write_form_is_offered_with_the_districts(directory):
    page = Client().get("/write/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="text"' in html and "종로구" in html and "강동구" in html


def test_written_message_is_stored_on_the_web_channel_and_gets_a_receipt(directory):
    client = Client()
    response = write(client, contact="citizen@mail.example")
    assert response.status_code == 302 and response["Location"].startswith("/receipt/")

    message = Message.objects.get()
    assert message.channel.code == "web" and message.account.handle == "portal"
    assert message.external_id.startswith("web-")
    assert message.text.startswith("[종로구] ") and "보안등" in message.text
    assert message.raw_payload["contact"] == "citizen@mail.example"
    assert message.triage_state == "pending"

    receipt = client.get(response["Location"])
    assert receipt.status_code == 200
    html = receipt.content.decode()
    assert local(message.received_at) in html
    expected = compute_case_deadline(CaseType.objects.get(code="request"), message.received_at)[0]
    assert local(expected) in html
    # What the citizen wrote is shown back masked; the contact is never shown.
    assert "010-1234-5678" not in html and "citizen@mail.example" not in html
    assert "창신동 골목 보안등" in html
    assert not re.search(r"S\d{7}", html)  # no case number yet


def test_district_already_in_the_text_is_not_repeated(directory):
    write(Client(), text="종로구 창신동 보안등이 꺼졌어요")
    assert Message.objects.get().text == "종로구 창신동 보안등이 꺼졌어요"


def test_empty_message_is_refused_with_the_form_again(directory):
    response = write(Client(), text="   ")
    assert response.status_code == 200
    assert not Message.objects.exists()


def test_receipt_shows_the_case_number_once_triaged(directory):
    client = Client()
    location = write(client)["Location"]
    triage_messages(list(Message.objects.values_list("pk", flat=True)))
    case = Case.objects.get()
    assert case.unit.code == "district-jongno"

    html = client.get(location).content.decode()
    assert case.number in html
    assert case.unit.name in html
    assert local(case.deadline_at) in html
    # The same receipt from another browser: it is the signed address that counts.
    assert case.number in Client().get(location).content.decode()


def test_tampered_or_forged_receipt_is_not_found(directory):
    location = write(Client())["Location"]
    token = location.removeprefix("/receipt/").rstrip("/")
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert Client().get(f"/receipt/{tampered}/").status_code == 404
    assert Client().get("/receipt/not-a-token/").status_code == 404
    # Another message's number, signed without the site's key, is refused too.
    forged = signing.dumps(Message.objects.get().pk, key="guessed", salt=RECEIPT_SALT)
    assert Client().get(f"/receipt/{forged}/").status_code == 404
    # A genuine token for a message that does not exist.
    missing = signing.dumps(10**9, salt=RECEIPT_SALT)
    assert Client().get(f"/receipt/{missing}/").status_code == 404


def test_public_list_shows_every_case_with_where_it_stands(people):
    texts = [
        "종로구 보안등이 꺼졌어요 고쳐주세요",
        "종로구 골목 보안등 고장 고쳐주세요",
        "종로구 보안등 깜빡거려요 고쳐주세요",
    ]
    messages = ingest_batch(
        [
            NormalizedMessage(channel="x", external_id=f"pub-{n}", text=t)
            for n, t in enumerate(texts)
        ]
    )
    triage_messages([m.pk for m in messages])
    answered, drafted, untouched = Case.objects.order_by("pk")
    for case in (answered, drafted):
        services.draft_answer(
            case,
            "소중한 의견 감사합니다. 말씀하신 보안등 고장에 대하여 교체하였습니다. "
            "문의는 종로구청(02-2148-1114)으로 연락 주십시오.",
            actor=people["jongno"],
        )
    services.publish_answer(answered, actor=people["jongno"], override_reason="테스트")

    html = Client().get("/cases/").content.decode()
    for case in (answered, drafted, untouched):
        assert case.number in html
        assert Client().get(f"/cases/{case.number}/").status_code == 200
    assert html.count("state-answered") == 1 and html.count("state-in_progress") == 2
    # Only the published answer is public; a draft stays with the officers.
    assert "교체하였습니다" in Client().get(f"/cases/{answered.number}/").content.decode()
    assert "교체하였습니다" not in Client().get(f"/cases/{drafted.number}/").content.decode()


def test_empty_public_list(directory):
    response = Client().get("/")
    assert response.status_code == 200
    assert not re.search(r"S\d{7}", response.content.decode().replace("S0000123", ""))


@pytest.mark.parametrize("path", ["/", "/write/"])
def test_language_switch_to_english(directory, path):
    client = Client()
    assert 'lang="ko"' in client.get(path).content.decode()
    response = client.post("/i18n/setlang/", {"language": "en", "next": path})
    assert response.status_code == 302
    assert 'lang="en"' in client.get(path).content.decode()
    # Back to Korean.
    client.post("/i18n/setlang/", {"language": "ko", "next": path})
    assert 'lang="ko"' in client.get(path).content.decode()
