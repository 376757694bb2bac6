"""The Mastodon connector through the real paths: mentions polled by poll_account and
answers posted by the outbox, through Mastodon.py with HTTP stubbed at the requests
transport (`responses`), in the documented shapes (mastodon_payloads.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.conf import settings as django_settings
from django.utils import timezone
from responses import matchers

from sotong.cases import services
from sotong.cases.models import Case
from sotong.channels import outbox
from sotong.channels.connectors.base import AccountConfig, OutgoingReply, PermanentError
from sotong.channels.connectors.mastodon import (
    MastodonConnector,
    plain_text,
    status_length,
)
from sotong.channels.connectors.registry import connector_for, connector_for_channel, connectors
from sotong.channels.credentials import account_config
from sotong.channels.models import PollState, ReplyDelivery, ReplyState
from sotong.channels.polling import poll_account
from sotong.channels.tests import mastodon_payloads
from sotong.channels.tests.mastodon_payloads import (
    CITIZEN,
    CITY_TEXT,
    INSTANCE,
    NOTIFICATIONS,
    STATUSES,
    TOKEN,
    configure,
    error,
    favourite,
    mention,
    mention_html,
    own_account,
    posted,
    status,
)
from sotong.directory.models import Account
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

city = mastodon_payloads.city  # fixture

MASTODON = MastodonConnector()
ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
    "종로구청 건설관리과(☎02-2148-1234)로 연락주시면 성심껏 답변드리겠습니다."
)
LONG_TAIL = (
    " 아울러 창신동 일대 골목길의 보안등 노후 현황을 전수 조사하여 내년 상반기까지 "
    "고효율 엘이디 등기구로 교체하고, 어두운 구간에는 보안등을 추가로 설치하겠습니다."
)


@pytest.fixture(autouse=True)
def registry(settings) -> Iterator[None]:
    # Only the connectors these tests need, whatever else the installation lists.
    settings.SOTONG_CONNECTORS = [
        "sotong.channels.connectors.meta.MetaConnector",
        "sotong.channels.connectors.mastodon.MastodonConnector",
    ]
    settings.SOTONG_LOCAL_OUTBOX = False
    connectors.cache_clear()
    yield
    connectors.cache_clear()


@pytest.fixture
def server() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as stub:
        yield stub


def query_of(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def form_of(call) -> dict[str, list[str]]:
    return parse_qs(call.request.body)


def notifications(server, items, **query: str) -> None:
    params = {"types[]": "mention", **query}
    server.get(NOTIFICATIONS, json=items, match=[matchers.query_param_matcher(params)])


def state_of(account: Account) -> PollState:
    return PollState.objects.get(account=account)


def make_due(account: Account) -> None:
    PollState.objects.filter(account=account).update(next_poll_at=None)


def started(server, account: Account, newest: str = "34975000") -> None:
    """The first poll: it starts from now, at the newest mention's id."""
    notifications(server, [mention(newest, status("103186000000000001", "<p>old</p>"))], limit="1")
    assert poll_account(account.pk) == "polled"
    assert state_of(account).cursor == newest
    make_due(account)


def polled_mention(server, account: Account, the_status: dict, notification_id: str = "34975861"):
    """A mention polled after the start, then the triage and case jobs run."""
    started(server, account)
    notifications(server, [mention(notification_id, the_status)], since_id="34975000", limit="80")
    notifications(server, [], since_id="34975000", max_id=notification_id, limit="80")
    assert poll_account(account.pk) == "polled"
    run_queued_jobs()
    return Message.objects.get(external_id=the_status["id"])


def publish(case: Case, people, text: str = ANSWER) -> ReplyDelivery:
    services.draft_answer(case, text, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"])
    run_queued_jobs()
    return ReplyDelivery.objects.get(case=case)


# --- registration, settings and the length rule --------------------------------------------


def test_registered_for_the_mastodon_channel():
    assert "sotong.channels.connectors.mastodon.MastodonConnector" in (
        django_settings.SOTONG_CONNECTORS
    )
    assert isinstance(connector_for("mastodon"), MastodonConnector)
    assert connector_for_channel("mastodon") is connector_for("mastodon")
    secrets = {f.name: f.secret for f in MASTODON.settings_fields}
    assert secrets == {"api_base_url": False, "access_token": True, "acct": False}
    assert all("(" in f.label for f in MASTODON.settings_fields)  # Korean, then English
    assert MASTODON.max_reply_length == 500 and MASTODON.max_thread_parts == 5


def test_length_is_mastodons_count():
    assert status_length("가" * 500) == 500  # a Hangul syllable is one
    assert status_length("한" + "\u1112\u1161\u11ab") == 2  # composed, and as jamo: one each
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji of five code points
    assert status_length(family * 3) == 3
    assert status_length("\U0001f1f0\U0001f1f7") == 1  # a flag
    url = "https://eungdapso.seoul.go.kr/cases/2026-000123/?page=answer&lang=ko"
    assert status_length(f"답변 {url}") == 2 + 1 + 23  # a URL counts 23
    assert status_length("@kim@mastodon.social 감사합니다") == len("@kim") + 1 + 5
    assert status_length("@kim 감사") == 4 + 1 + 2
    # Like Mastodon, an address without a known top-level domain is not a URL.
    assert status_length("http://sotong.example/a") == len("http://sotong.example/a")
    assert MASTODON.length("") == 0
    # The citizen's mention, put before every post, is taken off the limit.
    assert MASTODON.reply_limit({"account": {"acct": CITIZEN}}) == 500 - len("@kim ")
    assert MASTODON.reply_limit({}) == 500


def test_html_content_is_stored_as_plain_text():
    html = (
        '<p><span class="h-card"><a href="https://mastodon.example/@seoul" class="u-url '
        'mention">@<span>seoul</span></a></span> 보안등 &lt;script&gt;alert(1)&lt;/script&gt;'
        "<br />둘째 줄</p><p>셋째 <script>alert(2)</script><style>p{}</style>"
        '<a href="https://eungdapso.seoul.go.kr/x/y" rel="nofollow noopener" target="_blank">'
        '<span class="invisible">https://</span><span class="ellipsis">eungdapso.seoul.go'
        '.kr/x</span><span class="invisible">/y</span></a></p>'
    )
    text = plain_text(html)
    assert text == (
        "@seoul 보안등 <script>alert(1)</script>\n둘째 줄\n\n셋째 https://eungdapso.seoul.go.kr/x/y"
    )
    assert "alert(2)" not in text and "p{}" not in text
    assert plain_text(None) == "" and plain_text("<p></p>") == ""


# --- polling -----------------------------------------------------------------------------


def test_a_mention_is_polled_and_opens_a_case(city, server):
    message = polled_mention(
        server,
        city,
        status("103186126728896492", mention_html(CITY_TEXT), in_reply_to_id="103186038209478945"),
    )
    assert message.channel.code == "mastodon" and message.account == city
    assert message.text == f"@seoul {CITY_TEXT}"
    assert message.author_handle == f"@{CITIZEN}"
    assert message.in_reply_to == "103186038209478945"
    assert message.sent_at == datetime(2026, 11, 25, 0, 30, tzinfo=UTC)
    raw = message.raw_payload
    assert raw["visibility"] == "public" and raw["notification_id"] == "34975861"
    assert raw["account"]["acct"] == CITIZEN and raw["content"].startswith("<p>")
    state = state_of(city)
    assert state.cursor == "34975861" and state.items_total == 1 and state.error_count == 0

    case = Case.objects.get()
    assert message.case_link.case == case
    assert case.unit.code == "district-jongno"

    # The requests: the token as a bearer, mentions only, from the stored cursor.
    polls = [c for c in server.calls if c.request.url.startswith(NOTIFICATIONS)]
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in polls)
    assert query_of(polls[1]) == {"types[]": ["mention"], "since_id": ["34975000"], "limit": ["80"]}


def test_first_poll_with_no_mention_yet_takes_every_later_one(city, server):
    notifications(server, [], limit="1")
    assert poll_account(city.pk) == "polled"
    assert state_of(city).cursor == "0"
    make_due(city)
    notifications(
        server, [mention("5", status("7", mention_html(CITY_TEXT)))], since_id="0", limit="80"
    )
    notifications(server, [], since_id="0", max_id="5", limit="80")
    assert poll_account(city.pk) == "polled"
    assert Message.objects.get().external_id == "7"


def test_pages_back_to_the_cursor_and_ignores_the_rest(city, server):
    started(server, city)
    page_1 = [
        mention("34975905", status("1005", mention_html("다섯"))),
        favourite("34975904"),  # the server filters types; a stray one is still ignored
        mention("34975903", status("1003", "<p>@seoul 셋</p>", author=own_account())),
    ]
    page_2 = [
        mention("34975902", status("1002", mention_html("둘"))),
        # A server that ignores since_id brings old ones back: they are not new.
        mention("34975000", status("103186000000000001", "<p>old</p>")),
    ]
    notifications(server, page_1, since_id="34975000", limit="80")
    notifications(server, page_2, since_id="34975000", max_id="34975903", limit="80")
    notifications(server, [], since_id="34975000", max_id="34975902", limit="80")
    assert poll_account(city.pk) == "polled"
    stored = Message.objects.order_by("external_id")
    # Our own post mentioning ourselves is not a citizen's message.
    assert [m.external_id for m in stored] == ["1002", "1005"]
    assert state_of(city).cursor == "34975905"

    # Delivered again (a replay): nothing new.
    make_due(city)
    notifications(server, page_1 + page_2, since_id="34975905", limit="80")
    assert poll_account(city.pk) == "polled"
    assert Message.objects.count() == 2 and state_of(city).cursor == "34975905"


def test_content_warning_media_and_script_are_kept_as_plain_text(city, server):
    html = mention_html("창신동 보안등 <script>document.location='https://evil.example'</script>")
    media = [
        {
            "id": "22",
            "type": "image",
            "url": "https://files.social.example/media/1.jpg",
            "description": "꺼진 보안등",
        }
    ]
    message = polled_mention(server, city, status("2001", html, spoiler_text="민원", media=media))
    assert message.text == "민원\n\n@seoul 창신동 보안등"
    assert "<" not in message.text
    assert message.attachments == [
        {"url": "https://files.social.example/media/1.jpg", "type": "image", "name": "꺼진 보안등"}
    ]


def test_a_revoked_token_stops_polling(city, server, caplog):
    server.get(NOTIFICATIONS, status=401, json=error("The access token is invalid"))
    assert poll_account(city.pk) == "needs re-authorization"
    state = state_of(city)
    assert state.needs_reauthorization and "The access token is invalid" in state.last_error
    assert TOKEN not in state.last_error and TOKEN not in caplog.text


def test_a_rate_limit_waits_for_the_reset_header(city, server):
    reset = (timezone.now() + timedelta(minutes=4)).replace(microsecond=0)
    server.get(
        NOTIFICATIONS,
        status=429,
        json=error("Too many requests"),
        headers={
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset.isoformat().replace("+00:00", ".000Z"),
        },
    )
    assert poll_account(city.pk) == "rate limited"
    state = state_of(city)
    assert state.next_poll_at >= reset - timedelta(seconds=5)
    assert state.next_poll_at <= reset + timedelta(minutes=1)
    assert not state.needs_reauthorization


def test_a_server_error_backs_off(city, server):
    server.get(NOTIFICATIONS, status=503, body="Service Unavailable")
    assert poll_account(city.pk) == "transient error"
    assert state_of(city).error_count == 1


def test_no_instance_url_is_refused_without_a_request(city, server):
    with pytest.raises(PermanentError, match="instance URL"):
        MASTODON.fetch(AccountConfig("mastodon", "x", {"access_token": TOKEN}), "")
    assert len(server.calls) == 0


# --- replies -------------------------------------------------------------------------------


def test_the_answer_is_posted_in_the_thread_with_the_idempotency_key(city, server, people):
    message = polled_mention(
        server, city, status("103186126728896492", mention_html(CITY_TEXT), visibility="direct")
    )
    server.post(STATUSES, json=posted("109100000000000001", "답변", message.external_id, "direct"))
    delivery = publish(Case.objects.get(), people)

    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "109100000000000001"
    [call] = [c for c in server.calls if c.request.method == "POST"]
    assert call.request.url == STATUSES
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.request.headers["Idempotency-Key"] == delivery.idempotency_key
    form = form_of(call)
    assert form["in_reply_to_id"] == ["103186126728896492"]
    assert form["visibility"] == ["direct"]  # a direct mention gets a direct reply
    text = form["status"][0]
    assert text == f"@{CITIZEN} {delivery.text}"
    assert text.endswith(outbox.public_case_link(delivery.case))
    assert "감사합니다" in text and status_length(text) <= 500


def test_a_long_answer_goes_out_as_a_thread(city, server, people):
    message = polled_mention(server, city, status("2002", mention_html(CITY_TEXT)))
    ids = iter(["3001", "3002", "3003", "3004", "3005"])

    def reply(request):
        form = parse_qs(request.body)
        new = next(ids)
        body = posted(new, "…", form["in_reply_to_id"][0], form["visibility"][0])
        return 200, {}, json.dumps(body)

    server.add_callback(responses.POST, STATUSES, callback=reply)
    delivery = publish(
        Case.objects.get(),
        people,
        text=ANSWER + LONG_TAIL * 4,
    )

    assert delivery.state == ReplyState.SENT and delivery.platform_reply_id == "3001"
    posts = [c for c in server.calls if c.request.method == "POST"]
    assert 2 <= len(posts) <= 5 and len(posts) == len(delivery.parts)
    parents = [form_of(c)["in_reply_to_id"][0] for c in posts]
    assert parents == [message.external_id, "3001", "3002", "3003", "3004"][: len(posts)]
    keys = [c.request.headers["Idempotency-Key"] for c in posts]
    key = delivery.idempotency_key
    assert keys == [key] + [f"{key}-{n}" for n in range(2, len(posts) + 1)]
    for number, call in enumerate(posts, start=1):
        text = form_of(call)["status"][0]
        assert text.startswith(f"@{CITIZEN} ({number}/{len(posts)}) ")
        assert status_length(text) <= 500
        assert form_of(call)["visibility"] == ["public"]
    assert form_of(posts[-1])["status"][0].endswith(outbox.public_case_link(delivery.case))


def test_a_deleted_status_fails_the_delivery_with_the_platforms_message(city, server, people):
    polled_mention(server, city, status("2003", mention_html(CITY_TEXT)))
    server.post(STATUSES, status=404, json=error("Record not found"))
    delivery = publish(Case.objects.get(), people)
    assert delivery.state == ReplyState.FAILED
    assert "Record not found" in delivery.last_error and "not found" in delivery.last_error


def test_a_rate_limited_reply_waits_for_the_reset(city, server, people):
    polled_mention(server, city, status("2004", mention_html(CITY_TEXT)))
    reset = (timezone.now() + timedelta(minutes=3)).replace(microsecond=0)
    server.post(
        STATUSES,
        status=429,
        json=error("Too many requests"),
        headers={"X-RateLimit-Reset": reset.isoformat()},
    )
    delivery = publish(Case.objects.get(), people)
    assert delivery.state == ReplyState.PENDING
    assert abs(delivery.next_attempt_at - reset) < timedelta(seconds=5)
    assert "rate limited" in delivery.last_error


def test_a_revoked_token_fails_the_reply_saying_so(city, server, people):
    polled_mention(server, city, status("2005", mention_html(CITY_TEXT)))
    server.post(STATUSES, status=401, json=error("The access token was revoked"))
    delivery = publish(Case.objects.get(), people)
    assert delivery.state == ReplyState.FAILED
    assert delivery.last_error.startswith(outbox.NEEDS_REAUTHORIZATION)
    assert state_of(city).needs_reauthorization


def test_a_server_error_is_retried_later(city, server, people):
    polled_mention(server, city, status("2006", mention_html(CITY_TEXT)))
    server.post(STATUSES, status=502, body="Bad Gateway")
    delivery = publish(Case.objects.get(), people)
    assert delivery.state == ReplyState.PENDING and delivery.next_attempt_at > timezone.now()


def crashed(delivery: ReplyDelivery) -> None:
    ReplyDelivery.objects.filter(pk=delivery.pk).update(
        state=ReplyState.SENDING,
        sending_since=timezone.now() - outbox.STALE_SENDING - timedelta(seconds=1),
        platform_reply_id="",
    )


def test_after_a_crash_a_reply_already_in_the_thread_is_not_posted_again(city, server, people):
    message = polled_mention(server, city, status("2007", mention_html(CITY_TEXT)))
    server.post(STATUSES, status=503, body="")  # the first try fails: the delivery waits
    delivery = publish(Case.objects.get(), people)
    crashed(delivery)
    ours = posted("3101", "답변", message.external_id, "public")
    others = posted("3102", "저도요", message.external_id, "public")
    others["account"] = {"id": "5", "acct": "lee@other.example", "username": "lee"}
    server.get(
        f"{STATUSES}/{message.external_id}/context",
        json={"ancestors": [], "descendants": [others, ours]},
    )
    assert outbox.send_delivery(delivery.pk) == ReplyState.SENT
    delivery.refresh_from_db()
    assert delivery.platform_reply_id == "3101"
    assert len([c for c in server.calls if c.request.method == "POST"]) == 1  # the failed try


def test_after_a_crash_a_reply_not_there_is_sent_with_the_same_key(city, server, people):
    message = polled_mention(server, city, status("2008", mention_html(CITY_TEXT)))
    server.post(STATUSES, status=503, body="")
    delivery = publish(Case.objects.get(), people)
    crashed(delivery)
    server.get(
        f"{STATUSES}/{message.external_id}/context", json={"ancestors": [], "descendants": []}
    )
    server.replace(
        responses.POST, STATUSES, json=posted("3201", "답변", message.external_id, "public")
    )
    assert outbox.send_delivery(delivery.pk) == ReplyState.SENT
    keys = [
        c.request.headers["Idempotency-Key"] for c in server.calls if c.request.method == "POST"
    ]
    assert keys == [delivery.idempotency_key, delivery.idempotency_key]


def test_the_acct_setting_is_optional(city, server):
    configure(city, acct="")
    server.get(f"{INSTANCE}/api/v1/accounts/verify_credentials", json=own_account())
    server.get(
        f"{STATUSES}/77/context",
        json={"ancestors": [], "descendants": [posted("78", "답변", "77", "public")]},
    )
    found = MASTODON.find_sent(
        account_config(city), OutgoingReply(in_reply_to="77", text="x", idempotency_key="k")
    )
    assert found is not None and found.platform_id == "78"
    assert server.calls[0].request.url.endswith("/api/v1/accounts/verify_credentials")
