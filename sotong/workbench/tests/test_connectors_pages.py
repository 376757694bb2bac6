"""The center's channel pages through Django's test client: connector status with its
switches, account settings (secrets write-only) with each platform's guide, the reply
outbox, and the answer preview under the case page's answer form."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from html import unescape

import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import OrmQ

from sotong.cases.models import Case
from sotong.cases.services import CaseOpening, draft_answer, open_cases
from sotong.channels.connectors.base import NeedsReauthorization
from sotong.channels.connectors.registry import connectors
from sotong.channels.credentials import account_config
from sotong.channels.guides import GUIDES
from sotong.channels.models import AccountSetting, PollState, ReplyDelivery, ReplyState
from sotong.channels.outbox import public_case_link
from sotong.channels.tests.meta_payloads import APP_SECRET, VERIFY_TOKEN
from sotong.channels.tests.test_health import HANDLE, TOKEN, Polled
from sotong.channels.tests.test_outbox import (
    RecordingConnector,
    answered_case,
    delivery_of,
    weighted,
)
from sotong.conftest import client_for
from sotong.directory.models import Account, CaseType, Unit
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.jobs.testing import run_queued_jobs

_ids = itertools.count(1)

STATUS = "/work/connectors/"
OUTBOX = "/work/outbox/"


class ThreadingConnector(RecordingConnector):
    """An X-like platform that takes a long answer as a numbered thread of up to 3 posts."""

    max_thread_parts = 3


@pytest.fixture
def platforms(settings, people) -> Iterator[type[RecordingConnector]]:
    settings.SOTONG_CONNECTORS = [
        "sotong.channels.connectors.meta.MetaConnector",
        "sotong.channels.tests.test_health.Polled",
        "sotong.channels.tests.test_outbox.RecordingConnector",
    ]
    connectors.cache_clear()
    Polled.error = None
    RecordingConnector.sent, RecordingConnector.script = [], []
    RecordingConnector.found, RecordingConnector.during_send = None, None
    yield RecordingConnector
    connectors.cache_clear()


def account(channel: str, handle: str) -> Account:
    return Account.objects.select_related("channel").get(channel__code=channel, handle=handle)


def text_of(response) -> str:
    """The page's text as a person reads it (tags dropped, entities decoded)."""
    return unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))


# --- Who may see and do what -------------------------------------------------------------


def test_a_unit_officer_gets_403_everywhere(people, platforms):
    mastodon = account("mastodon", HANDLE)
    for who in ("jongno", "jongno_chief", "transport"):
        client = client_for(people[who])
        for url in (STATUS, OUTBOX, f"/work/connectors/{mastodon.pk}/settings/"):
            assert client.get(url).status_code == 403, (who, url)
        for url in (
            f"/work/connectors/{mastodon.pk}/switch/",
            f"/work/connectors/{mastodon.pk}/resume/",
            f"/work/connectors/{mastodon.pk}/settings/",
        ):
            assert client.post(url, {"on": "0", "access_token": "x"}).status_code == 403
    assert Account.objects.get(pk=mastodon.pk).active
    assert not AccountSetting.objects.filter(account=mastodon).exists()


def test_signed_out_people_are_sent_to_sign_in(platforms):
    response = Client().get(STATUS)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_center_sees_the_link_and_the_officers_do_not(people, platforms):
    assert STATUS in client_for(people["center"]).get("/work/inbox/").content.decode()
    assert STATUS not in client_for(people["jongno"]).get("/work/inbox/").content.decode()


def test_switching_needs_the_csrf_token(people, platforms):
    mastodon = account("mastodon", HANDLE)
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["center"])
    response = client.post(f"/work/connectors/{mastodon.pk}/switch/", {"on": "0"})
    assert response.status_code == 403
    assert Account.objects.get(pk=mastodon.pk).active


# --- 연결 상태 ----------------------------------------------------------------------------


def test_status_page_shows_each_account_with_its_state(people, platforms):
    mastodon = account("mastodon", HANDLE)
    client = client_for(people["center"])
    page = text_of(client.get(STATUS))
    assert "연결 상태" in page
    assert "@seoul_mayor" in page and "@seoul_smc" in page  # replies via
    row = client.get(STATUS).content.decode().split(f'id="account-{mastodon.pk}"')[1]
    row = unescape(row.split("</tr>")[0])
    assert "설정 안 됨" in row and "access_token" in row


def test_switching_off_from_the_page_stops_polling(people, platforms):
    mastodon = account("mastodon", HANDLE)
    client = client_for(people["center"])
    client.post(f"/work/connectors/{mastodon.pk}/settings/", {"access_token": TOKEN})
    response = client.post(f"/work/connectors/{mastodon.pk}/switch/", {"on": "0"})
    assert response.status_code == 302
    assert response["Location"].endswith(f"/work/connectors/#account-{mastodon.pk}")
    assert not Account.objects.get(pk=mastodon.pk).active
    assert PollState.objects.get(account=mastodon).enabled is False
    OrmQ.objects.all().delete()
    from sotong.channels.polling import poll_account, poll_due

    assert poll_due() == 0 and poll_account(mastodon.pk) == "inactive"
    page = text_of(client.get(STATUS, follow=True))
    assert "꺼짐" in page
    client.post(f"/work/connectors/{mastodon.pk}/switch/", {"on": "1"})
    assert Account.objects.get(pk=mastodon.pk).active
    assert PollState.objects.get(account=mastodon).enabled is True
    assert poll_due() == 1


def test_needs_reauthorization_says_sends_stop_and_resume_sends_again(people, platforms):
    platforms.script = [NeedsReauthorization("401", platform_error="Invalid or expired token")]
    case = answered_case(people)
    run_queued_jobs()
    smc = account("x", "@seoul_smc")
    client = client_for(people["center"])
    html = client.get(STATUS).content.decode()
    row = unescape(html.split(f'id="account-{smc.pk}"')[1].split("</tr>")[0])
    assert "재인증 필요" in row
    assert "답변 발송이 멈췄습니다" in row
    assert f"/work/connectors/{smc.pk}/resume/" in row
    response = client.post(f"/work/connectors/{smc.pk}/resume/")
    assert response.status_code == 302
    run_queued_jobs()
    assert delivery_of(case).state == ReplyState.SENT


def test_status_page_escapes_account_text(people, platforms):
    Account.objects.filter(channel__code="x", handle="@seoul").update(
        name="<script>alert('계정')</script>"
    )
    html = client_for(people["center"]).get(STATUS).content.decode()
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html


# --- 계정 설정 ----------------------------------------------------------------------------


def test_secrets_are_write_only(people, platforms):
    page = account("facebook", "seoulcity")
    url = f"/work/connectors/{page.pk}/settings/"
    client = client_for(people["center"])
    response = client.post(
        url, {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "page_id": "104512345"}
    )
    assert response.status_code == 302
    stored = AccountSetting.objects.get(account=page, name="app_secret")
    assert stored.secret and APP_SECRET not in stored.stored_value  # encrypted at rest
    assert account_config(page).get("app_secret") == APP_SECRET
    html = client.get(url).content.decode()
    assert APP_SECRET not in html and VERIFY_TOKEN not in html
    assert "저장됨 (설정됨)" in html
    assert 'value="104512345"' in html  # plain settings are shown
    # An empty secret field keeps the stored value; a new one replaces it.
    client.post(url, {"app_secret": "", "verify_token": "", "page_id": "104512345"})
    assert account_config(page).get("app_secret") == APP_SECRET
    client.post(url, {"app_secret": "new-secret-1a2b", "verify_token": "", "page_id": "104512345"})
    assert account_config(page).get("app_secret") == "new-secret-1a2b"
    assert "new-secret-1a2b" not in client.get(url).content.decode()


def test_secrets_never_reach_the_log(people, platforms, caplog):
    mastodon = account("mastodon", HANDLE)
    with caplog.at_level("DEBUG"):
        client_for(people["center"]).post(
            f"/work/connectors/{mastodon.pk}/settings/", {"access_token": TOKEN}
        )
    assert account_config(mastodon).get("access_token") == TOKEN
    assert TOKEN not in caplog.text


def test_saving_new_credentials_resumes_an_account_waiting_for_them(people, platforms):
    mastodon = account("mastodon", HANDLE)
    PollState.objects.create(account=mastodon, needs_reauthorization=True, error_count=3)
    client_for(people["center"]).post(
        f"/work/connectors/{mastodon.pk}/settings/", {"access_token": TOKEN}
    )
    state = PollState.objects.get(account=mastodon)
    assert not state.needs_reauthorization and state.error_count == 0


def test_settings_page_states_the_guide_and_the_webhook_url(people, platforms, settings):
    settings.PUBLIC_URL = "https://sotong.seoul.example"
    page = account("facebook", "seoulcity")
    html = client_for(people["center"]).get(f"/work/connectors/{page.pk}/settings/")
    text = text_of(html)
    assert "https://sotong.seoul.example/hooks/meta/seoulcity/" in text
    assert GUIDES["meta"].needs.ko in text and GUIDES["meta"].limits.ko in text
    assert "앱 시크릿 (App Secret)" in text  # the connector's own Korean labels
    # A polled platform has no webhook to register.
    mastodon = account("mastodon", HANDLE)
    text = text_of(client_for(people["center"]).get(f"/work/connectors/{mastodon.pk}/settings/"))
    assert "/hooks/" not in text and GUIDES["mastodon"].receiving.ko in text


def test_settings_page_in_english(people, platforms):
    client = client_for(people["center"])
    client.post("/i18n/setlang/", {"language": "en"})
    page = account("facebook", "seoulcity")
    text = text_of(client.get(f"/work/connectors/{page.pk}/settings/"))
    assert GUIDES["meta"].needs.en in text and "Account settings" in text


def test_every_platform_has_a_korean_guide():
    expected = {"x", "meta", "threads", "kakao", "mastodon", "bluesky", "youtube", "email", "sms"}
    assert expected <= set(GUIDES)
    for guide in GUIDES.values():
        for part in (guide.needs, guide.receiving, guide.limits, guide.switch_on):
            assert re.search("[가-힣]", part.ko) and part.en and not re.search("[가-힣]", part.en)


# --- 답변 발송함 --------------------------------------------------------------------------


def test_outbox_lists_newest_first_with_a_state_filter(people, platforms):
    platforms.script = [NeedsReauthorization("401")]
    failed = answered_case(people)
    run_queued_jobs()
    sent = answered_case(people)
    run_queued_jobs()
    ReplyDelivery.objects.filter(case=sent).update(platform_reply_id="local:demo-1")
    client = client_for(people["center"])
    html = client.get(OUTBOX).content.decode()
    assert html.index(sent.number) < html.index(failed.number)
    assert "플랫폼에 보내지 않음 (데모 로컬 발송함)" in html
    f = delivery_of(failed)
    assert f'href="/work/cases/{failed.pk}/#delivery-{f.pk}"' in html
    assert "needs re-authorization: 401" in html
    only_failed = client.get(OUTBOX, {"state": "failed"}).content.decode()
    assert failed.number in only_failed and sent.number not in only_failed
    assert client.get(OUTBOX, {"state": "nonsense"}).status_code == 400


# --- The answer preview ------------------------------------------------------------------

LONG_ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 교체 전까지는 임시 "
    "조명을 설치하여 야간 통행에 불편이 없도록 하겠습니다. 기타 문의사항은 종로구청 "
    "도시관리과로 연락주시면 성심껏 답변드리겠습니다."
)
SHORT_ANSWER = "감사합니다. 보안등을 27일까지 교체하겠습니다."


def open_case(text: str = "창신동 골목 보안등이 꺼졌어요") -> Case:
    [message] = ingest_batch(
        [
            NormalizedMessage(
                channel="x",
                external_id=f"preview-{next(_ids)}",
                account="@seoul_mayor",
                author="@citizen",
                text=text,
                sent_at=timezone.now(),
            )
        ]
    )
    [case] = open_cases(
        [
            CaseOpening(
                message=message,
                case_type=CaseType.objects.get(code="request"),
                category=None,
                unit=Unit.objects.get(code="district-jongno"),
                urgent=False,
            )
        ]
    )
    return case


def preview_posts(html: str) -> list[str]:
    return [
        unescape(re.sub(r"<br>", "\n", block)).strip()
        for block in re.findall(
            r'<figure class="post">\s*<blockquote class="text">(.*?)</blockquote>', html, re.S
        )
    ]


def test_long_korean_answer_is_previewed_cut_to_the_platform_count(people, platforms):
    case = open_case()
    response = client_for(people["jongno"]).post(
        f"/work/cases/{case.pk}/check-answer/", {"text": LONG_ANSWER}
    )
    html = response.content.decode()
    [post] = preview_posts(html)
    link = public_case_link(case)
    assert weighted(LONG_ANSWER) > 280
    assert post.endswith(f"…\n\n{link}") and weighted(post) <= 280
    assert LONG_ANSWER.startswith(post.removesuffix(f"…\n\n{link}"))
    assert f"{weighted(post)} / 280" in html
    assert "@seoul_smc" in html  # posted from the reply account
    assert "잘리고" in text_of(response)


def test_short_answer_is_previewed_whole_with_the_link(people, platforms):
    case = open_case()
    html = (
        client_for(people["jongno"])
        .post(f"/work/cases/{case.pk}/check-answer/", {"text": SHORT_ANSWER})
        .content.decode()
    )
    expected = f"{SHORT_ANSWER}\n\n{public_case_link(case)}"
    assert preview_posts(html) == [expected]
    assert f"{weighted(expected)} / 280" in html
    assert "잘리고" not in html


def test_long_answer_is_previewed_as_a_numbered_thread(people, settings, platforms):
    settings.SOTONG_CONNECTORS = [f"{__name__}.ThreadingConnector"]
    connectors.cache_clear()
    case = open_case()
    html = (
        client_for(people["jongno"])
        .post(f"/work/cases/{case.pk}/check-answer/", {"text": LONG_ANSWER})
        .content.decode()
    )
    posts = preview_posts(html)
    assert len(posts) == 2
    assert posts[0].startswith("(1/2) ") and posts[1].startswith("(2/2) ")
    assert posts[1].endswith(public_case_link(case))
    assert all(weighted(p) <= 280 for p in posts)


def test_case_page_previews_the_saved_draft_and_masks_personal_data(people, platforms):
    case = open_case()
    draft_answer(case, SHORT_ANSWER + " 담당자 휴대폰 010-1234-5678", actor=people["jongno"])
    html = client_for(people["jongno"]).get(f"/work/cases/{case.pk}/").content.decode()
    [post] = preview_posts(html)
    assert post.startswith(SHORT_ANSWER) and "010-1234-5678" not in post


def test_preview_escapes_the_answer(people, platforms):
    case = open_case()
    html = (
        client_for(people["jongno"])
        .post(f"/work/cases/{case.pk}/check-answer/", {"text": "<script>alert(1)</script> 감사"})
        .content.decode()
    )
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_a_channel_that_cannot_post_is_previewed_as_reply_elsewhere(people, settings, platforms):
    settings.SOTONG_CONNECTORS = ["sotong.channels.connectors.meta.MetaConnector"]
    connectors.cache_clear()
    case = open_case()
    html = (
        client_for(people["jongno"])
        .post(f"/work/cases/{case.pk}/check-answer/", {"text": SHORT_ANSWER})
        .content.decode()
    )
    assert preview_posts(html) == [f"{SHORT_ANSWER}\n\n{public_case_link(case)}"]
    assert "이 채널은 답변을 올릴 수 없습니다" in html
