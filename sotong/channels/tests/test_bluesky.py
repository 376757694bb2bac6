"""The Bluesky connector through the real paths: notifications polled by poll_account and
answers posted by the outbox, through the atproto SDK with HTTP stubbed at the httpx
transport (`respx`), in the lexicons' shapes (bluesky_payloads.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from django.conf import settings as django_settings
from django.utils import timezone

from sotong.cases import services
from sotong.cases.models import Case
from sotong.channels import outbox
from sotong.channels.connectors import bluesky
from sotong.channels.connectors.base import OutgoingReply
from sotong.channels.connectors.bluesky import BlueskyConnector, post_length, rich_text
from sotong.channels.connectors.registry import connector_for, connector_for_channel, connectors
from sotong.channels.credentials import account_config
from sotong.channels.models import PollState, ReplyDelivery, ReplyState
from sotong.channels.polling import poll_account
from sotong.channels.tests import bluesky_payloads
from sotong.channels.tests.bluesky_payloads import (
    APP_PASSWORD,
    CITIZEN,
    CITY_TEXT,
    DID,
    LOGIN,
    OUR_POST,
    XRPC,
    configure,
    feed_item,
    like,
    notification,
    page,
    post_uri,
    post_view,
    session,
    xrpc_error,
)
from sotong.directory.models import Account
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

city = bluesky_payloads.city  # fixture

BLUESKY = BlueskyConnector()
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji, five code points
ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
    "종로구청 건설관리과(☎02-2148-1234)로 연락주시면 성심껏 답변드리겠습니다."
)
LONG_TAIL = (
    " 아울러 창신동 일대 골목길의 보안등 노후 현황을 전수 조사하여 내년 상반기까지 "
    "고효율 엘이디 등기구로 교체하고, 어두운 구간에는 보안등을 추가로 설치하겠습니다."
)
START = "2026-11-25T00:00:00.000Z"


@pytest.fixture(autouse=True)
def registry(settings) -> Iterator[None]:
    settings.SOTONG_CONNECTORS = [
        "sotong.channels.connectors.meta.MetaConnector",
        "sotong.channels.connectors.bluesky.BlueskyConnector",
    ]
    settings.SOTONG_LOCAL_OUTBOX = False
    connectors.cache_clear()
    bluesky.forget_sessions()
    yield
    bluesky.forget_sessions()
    connectors.cache_clear()


class Pds:
    """A stubbed PDS: sessions, notification pages by API cursor, posts, records created."""

    def __init__(self, mock: respx.MockRouter) -> None:
        self.mock = mock
        self.pages: dict[str | None, dict[str, Any]] = {None: page([])}
        self.posts: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.list_failures: list[httpx.Response] = []
        self.create_failures: list[httpx.Response] = []
        self.feed: list[dict[str, Any]] = []
        self.login = mock.post("/com.atproto.server.createSession").respond(json=session())
        self.listing = mock.get("/app.bsky.notification.listNotifications").mock(
            side_effect=self._list
        )
        mock.get("/app.bsky.feed.getPosts").mock(side_effect=self._posts)
        self.creating = mock.post("/com.atproto.repo.createRecord").mock(side_effect=self._create)
        mock.get("/app.bsky.feed.getAuthorFeed").mock(
            side_effect=lambda request: httpx.Response(200, json={"feed": self.feed})
        )

    def _list(self, request: httpx.Request) -> httpx.Response:
        if self.list_failures:
            return self.list_failures.pop(0)
        assert request.headers["Authorization"].startswith("Bearer ")
        assert request.url.params.get_list("reasons") == ["mention", "reply", "quote"]
        return httpx.Response(200, json=self.pages[request.url.params.get("cursor")])

    def _posts(self, request: httpx.Request) -> httpx.Response:
        views = [
            self.posts[uri] for uri in request.url.params.get_list("uris") if uri in self.posts
        ]
        return httpx.Response(200, json={"posts": views})

    def _create(self, request: httpx.Request) -> httpx.Response:
        if self.create_failures:
            return self.create_failures.pop(0)
        body = json.loads(request.content)
        self.created.append(body)
        rkey = f"3lreply{len(self.created):06d}"
        uri = f"at://{DID}/app.bsky.feed.post/{rkey}"
        return httpx.Response(200, json={"uri": uri, "cid": bluesky_payloads.cid(rkey)})

    def publish(self, *items: dict[str, Any]) -> None:
        """The citizen's posts exist (getPosts finds them)."""
        for item in items:
            self.posts[item["uri"]] = post_view(item)


@pytest.fixture
def pds() -> Iterator[Pds]:
    with respx.mock(base_url=XRPC, assert_all_called=False) as mock:
        yield Pds(mock)


def ref(value: dict[str, Any]) -> dict[str, Any]:
    """A strong ref without its $type (the SDK writes it; the lexicon does not need it)."""
    return {"uri": value["uri"], "cid": value["cid"]}


def state_of(account: Account) -> PollState:
    return PollState.objects.get(account=account)


def make_due(account: Account) -> None:
    PollState.objects.filter(account=account).update(next_poll_at=None)


def started(pds: Pds, account: Account) -> None:
    """The first poll starts from now: the newest notification's indexedAt."""
    pds.pages[None] = page([notification("3lold0000001", "지난 글", indexed_at=START)])
    assert poll_account(account.pk) == "polled"
    assert state_of(account).cursor == f"{START} {post_uri('3lold0000001')}"
    assert Message.objects.count() == 0
    make_due(account)


def polled(pds: Pds, account: Account, *items: dict[str, Any]) -> None:
    started(pds, account)
    pds.pages[None] = page([*items, notification("3lold0000001", "지난 글", indexed_at=START)])
    pds.publish(*items)
    assert poll_account(account.pk) == "polled"
    run_queued_jobs()


def publish(case: Case, people, text: str = ANSWER) -> ReplyDelivery:
    services.draft_answer(case, text, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"])
    run_queued_jobs()
    return ReplyDelivery.objects.get(case=case)


# --- registration, settings, length and facets ---------------------------------------------


def test_registered_for_the_bluesky_channel():
    assert "sotong.channels.connectors.bluesky.BlueskyConnector" in (
        django_settings.SOTONG_CONNECTORS
    )
    assert isinstance(connector_for("bluesky"), BlueskyConnector)
    assert connector_for_channel("bluesky") is connector_for("bluesky")
    secrets = {f.name: f.secret for f in BLUESKY.settings_fields}
    assert secrets == {"handle": False, "app_password": True, "service_url": False}
    assert all("(" in f.label for f in BLUESKY.settings_fields)
    assert BLUESKY.max_reply_length == 300 and BLUESKY.max_thread_parts == 5


def test_length_counts_graphemes():
    assert post_length("가" * 300) == 300  # a Hangul syllable is one grapheme
    assert post_length("\u1100\u1161\u11a8") == 1  # and so is one typed as jamo
    assert post_length(FAMILY * 10) == 10  # an emoji with its joiners is one
    assert post_length("\U0001f44d\U0001f3fd") == 1  # with a skin tone
    assert post_length("e\u0301") == 1  # with a combining accent
    assert post_length("\U0001f1f0\U0001f1f7") == 1  # a flag
    assert post_length("a" * 300) == 300
    # 3,000 bytes is the other limit: a family emoji is 18 bytes.
    assert post_length(FAMILY * 166) == 166  # 2,988 bytes
    assert post_length(FAMILY * 167) == 301  # 3,006 bytes: over
    assert BLUESKY.length("") == 0


def test_links_become_facets_at_their_byte_offsets():
    link = "https://eungdapso.seoul.go.kr/cases/2026-000123/"
    text = f"답변드립니다 {FAMILY}\n\n{link}"
    builder = rich_text(text)
    assert builder.build_text() == text
    [facet] = builder.build_facets()
    start = len(f"답변드립니다 {FAMILY}\n\n".encode())
    assert (facet.index.byte_start, facet.index.byte_end) == (start, start + len(link))
    assert facet.features[0].uri == link
    assert rich_text("링크 없음").build_facets() == []


# --- polling -------------------------------------------------------------------------------


def test_mentions_replies_and_quotes_are_polled_and_open_a_case(city, pds):
    started(pds, city)
    mention = notification(
        "3lmention0001", f"@seoul.example {CITY_TEXT}", indexed_at="2026-11-25T00:40:00.000Z"
    )
    reply = notification(
        "3lreply000001",
        "감사합니다 <script>alert(1)</script>",
        reason="reply",
        reply_to=OUR_POST,
        indexed_at="2026-11-25T00:35:00.000Z",
    )
    quote = notification(
        "3lquote000001", "이 공지 좋네요", reason="quote", indexed_at="2026-11-25T00:20:00.000Z"
    )
    # Newest first, two pages; the second reaches what the first poll saw.
    pds.pages[None] = page([mention, like("3llike0000001"), reply], cursor="page-2")
    pds.pages["page-2"] = page(
        [quote, notification("3lold0000001", "지난 글", indexed_at=START)], cursor="page-3"
    )
    pds.publish(mention, reply, quote)
    assert poll_account(city.pk) == "polled"
    assert [r.request.url.params.get("cursor") for r in pds.listing.calls][-2:] == [None, "page-2"]
    run_queued_jobs()

    stored = {m.external_id: m for m in Message.objects.all()}
    assert set(stored) == {mention["uri"], reply["uri"], quote["uri"]}
    message = stored[mention["uri"]]
    assert message.channel.code == "bluesky" and message.account == city
    assert message.text == f"@seoul.example {CITY_TEXT}"
    assert message.author_handle == f"@{CITIZEN}"
    assert message.sent_at == datetime(2026, 11, 25, 0, 39, 58, tzinfo=UTC)
    assert message.raw_payload["cid"] == mention["cid"]
    # Plain text stays as written: a script in a post is text, never markup.
    assert stored[reply["uri"]].text == "감사합니다 <script>alert(1)</script>"
    assert stored[reply["uri"]].in_reply_to == OUR_POST
    assert stored[reply["uri"]].raw_payload["record"]["reply"]["root"]["uri"] == OUR_POST
    state = state_of(city)
    assert state.cursor == f"2026-11-25T00:40:00.000Z {mention['uri']}"
    assert state.items_total == 3

    case = message.case_link.case
    assert case.unit.code == "district-jongno"
    assert Case.objects.filter(pk=case.pk).exists()

    # Polled again: the same page again stores nothing new, and the cursor stays.
    make_due(city)
    assert poll_account(city.pk) == "polled"
    assert Message.objects.count() == 3
    assert state_of(city).cursor == f"2026-11-25T00:40:00.000Z {mention['uri']}"


def test_the_session_is_kept_and_renewed_when_the_token_expires(city, pds):
    started(pds, city)
    assert pds.login.call_count == 1
    body = json.loads(pds.login.calls[0].request.content)
    assert body == {"identifier": LOGIN, "password": APP_PASSWORD}
    assert poll_account(city.pk) in {"polled", "not due"}
    make_due(city)
    assert poll_account(city.pk) == "polled"
    assert pds.login.call_count == 1  # createSession is rate limited: not once per poll

    pds.list_failures = [httpx.Response(400, json=xrpc_error("ExpiredToken", "Token has expired"))]
    make_due(city)
    assert poll_account(city.pk) == "polled"
    assert pds.login.call_count == 2
    assert state_of(city).error_count == 0


def test_a_wrong_app_password_needs_reauthorization(city, pds, caplog):
    pds.login.respond(
        401, json=xrpc_error("AuthenticationRequired", "Invalid identifier or password")
    )
    assert poll_account(city.pk) == "needs re-authorization"
    state = state_of(city)
    assert state.needs_reauthorization and "Invalid identifier or password" in state.last_error
    assert APP_PASSWORD not in state.last_error and APP_PASSWORD not in caplog.text

    # A new app password entered: polled again, signed in afresh.
    pds.login.respond(json=session())
    configure(city, app_password="wxyz-wxyz-wxyz-wxyz")
    assert poll_account(city.pk) == "polled"


def test_a_rate_limit_waits_for_the_reset_header(city, pds):
    reset = int((timezone.now() + timedelta(minutes=4)).timestamp())
    pds.list_failures = [
        httpx.Response(
            429,
            json=xrpc_error("RateLimitExceeded", "Rate Limit Exceeded"),
            headers={
                "ratelimit-limit": "3000",
                "ratelimit-remaining": "0",
                "ratelimit-reset": str(reset),
            },
        )
    ]
    assert poll_account(city.pk) == "rate limited"
    state = state_of(city)
    assert state.next_poll_at >= datetime.fromtimestamp(reset, tz=UTC)
    assert state.next_poll_at <= datetime.fromtimestamp(reset, tz=UTC) + timedelta(minutes=1)


def test_a_server_error_backs_off(city, pds):
    pds.list_failures = [httpx.Response(500, json=xrpc_error("InternalServerError", "boom"))]
    assert poll_account(city.pk) == "transient error"
    assert state_of(city).error_count == 1 and not state_of(city).needs_reauthorization


def test_strange_notifications_never_crash(city, pds):
    started(pds, city)
    good = notification("3lgood0000001", CITY_TEXT, indexed_at="2026-11-25T00:50:00.000Z")
    strange = [
        {"uri": 5, "reason": "mention"},
        {"uri": post_uri("3lx"), "reason": "mention", "record": "nope", "indexedAt": "soon"},
        {**notification("3lempty000001", "   "), "indexedAt": "2026-11-25T00:45:00.000Z"},
        None,
    ]
    pds.pages[None] = page([good, *strange])
    assert poll_account(city.pk) == "polled"
    assert [m.external_id for m in Message.objects.all()] == [good["uri"]]


# --- replies -------------------------------------------------------------------------------


def test_the_answer_replies_in_the_thread_with_a_link_facet(city, pds, people):
    root = post_uri("3lroot0000001", "did:plc:someoneelse0000000000000")
    parent = post_uri("3lparent00001", "did:plc:someoneelse0000000000000")
    citizen = notification(
        "3lcomplaint01",
        f"@seoul.example {CITY_TEXT}",
        reply_to=parent,
        root=root,
        indexed_at="2026-11-25T00:40:00.000Z",
    )
    polled(pds, city, citizen)
    message = Message.objects.get(external_id=citizen["uri"])
    delivery = publish(message.case_link.case, people)

    assert delivery.state == ReplyState.SENT
    [created] = pds.created
    assert created["repo"] == DID and created["collection"] == "app.bsky.feed.post"
    record = created["record"]
    # Root: the citizen's own thread root; parent: the citizen's post.
    assert ref(record["reply"]["root"]) == ref(citizen["record"]["reply"]["root"])
    assert record["reply"]["root"]["uri"] == root
    assert ref(record["reply"]["parent"]) == {"uri": citizen["uri"], "cid": citizen["cid"]}
    assert record["text"] == delivery.text and post_length(record["text"]) <= 300
    link = outbox.public_case_link(delivery.case)
    assert record["text"].endswith(link)
    [facet] = record["facets"]
    start = len(record["text"].encode()) - len(link.encode())
    index = facet["index"]
    assert (index["byteStart"], index["byteEnd"]) == (start, start + len(link.encode()))
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#link", "uri": link}]
    assert record["langs"] == ["ko"]
    assert delivery.platform_reply_id == f"at://{DID}/app.bsky.feed.post/3lreply000001"


def test_a_top_level_post_is_its_own_root(city, pds, people):
    citizen = notification("3lcomplaint02", CITY_TEXT, indexed_at="2026-11-25T00:40:00.000Z")
    polled(pds, city, citizen)
    delivery = publish(Message.objects.get().case_link.case, people)
    assert delivery.state == ReplyState.SENT
    reply = pds.created[0]["record"]["reply"]
    assert ref(reply["root"]) == ref(reply["parent"]) == ref(citizen)


def test_a_long_answer_is_a_thread_under_one_root(city, pds, people):
    citizen = notification("3lcomplaint03", CITY_TEXT, indexed_at="2026-11-25T00:40:00.000Z")
    polled(pds, city, citizen)
    delivery = publish(
        Message.objects.get().case_link.case, people, ANSWER + LONG_TAIL * 2 + " 😀👍🏽"
    )

    assert delivery.state == ReplyState.SENT
    parts = pds.created
    assert 2 <= len(parts) <= 5 and len(parts) == len(delivery.parts)
    first = {"uri": citizen["uri"], "cid": citizen["cid"]}
    for number, created in enumerate(parts, start=1):
        record = created["record"]
        assert record["text"].startswith(f"({number}/{len(parts)}) ")
        assert post_length(record["text"]) <= 300
        assert ref(record["reply"]["root"]) == first
        if number == 1:
            assert ref(record["reply"]["parent"]) == first
        else:
            previous = f"at://{DID}/app.bsky.feed.post/3lreply{number - 1:06d}"
            assert record["reply"]["parent"]["uri"] == previous
    assert parts[-1]["record"]["text"].endswith(outbox.public_case_link(delivery.case))
    assert parts[-1]["record"]["facets"][0]["features"][0]["uri"] == outbox.public_case_link(
        delivery.case
    )


def test_a_deleted_post_fails_the_delivery_and_posts_nothing(city, pds, people):
    citizen = notification("3lcomplaint04", CITY_TEXT, indexed_at="2026-11-25T00:40:00.000Z")
    polled(pds, city, citizen)
    del pds.posts[citizen["uri"]]  # deleted on Bluesky: getPosts no longer shows it
    delivery = publish(Message.objects.get().case_link.case, people)
    assert delivery.state == ReplyState.FAILED and "deleted" in delivery.last_error
    assert pds.created == []


def test_a_thread_closed_to_us_is_a_reply_elsewhere(city, pds, people):
    citizen = notification("3lcomplaint05", CITY_TEXT, indexed_at="2026-11-25T00:40:00.000Z")
    polled(pds, city, citizen)
    pds.posts[citizen["uri"]] = post_view(citizen, reply_disabled=True)
    delivery = publish(Message.objects.get().case_link.case, people)
    assert delivery.state == ReplyState.MANUAL and "no replies" in delivery.last_error
    assert pds.created == []


def test_a_rate_limited_reply_waits_and_an_expired_session_is_renewed(city, pds, people):
    citizen = notification("3lcomplaint06", CITY_TEXT, indexed_at="2026-11-25T00:40:00.000Z")
    polled(pds, city, citizen)
    reset = int((timezone.now() + timedelta(minutes=2)).timestamp())
    pds.create_failures = [
        httpx.Response(
            429,
            json=xrpc_error("RateLimitExceeded", "slow down"),
            headers={"ratelimit-reset": str(reset)},
        )
    ]
    delivery = publish(Message.objects.get().case_link.case, people)
    assert delivery.state == ReplyState.PENDING
    assert delivery.next_attempt_at == datetime.fromtimestamp(reset, tz=UTC)

    logins = pds.login.call_count
    pds.create_failures = [
        httpx.Response(401, json=xrpc_error("InvalidToken", "Token could not be verified"))
    ]
    ReplyDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert outbox.send_delivery(delivery.pk) == ReplyState.SENT
    assert pds.login.call_count == logins + 1 and len(pds.created) == 1


def test_a_revoked_app_password_fails_the_reply_saying_so(city, pds, people):
    citizen = notification("3lcomplaint07", CITY_TEXT, indexed_at="2026-11-25T00:40:00.000Z")
    polled(pds, city, citizen)
    bluesky.forget_sessions()  # e.g. another worker process, with no session yet
    pds.login.respond(
        401, json=xrpc_error("AuthenticationRequired", "Invalid identifier or password")
    )
    delivery = publish(Message.objects.get().case_link.case, people)
    assert delivery.state == ReplyState.FAILED
    assert delivery.last_error.startswith(outbox.NEEDS_REAUTHORIZATION)


def test_after_a_crash_a_reply_on_the_feed_is_found_not_posted_again(city, pds, people):
    citizen = notification("3lcomplaint08", CITY_TEXT, indexed_at="2026-11-25T00:40:00.000Z")
    polled(pds, city, citizen)
    pds.create_failures = [httpx.Response(502, text="Bad Gateway")]
    delivery = publish(Message.objects.get().case_link.case, people)
    assert delivery.state == ReplyState.PENDING
    ReplyDelivery.objects.filter(pk=delivery.pk).update(
        state=ReplyState.SENDING,
        sending_since=timezone.now() - outbox.STALE_SENDING - timedelta(seconds=1),
    )
    ours = f"at://{DID}/app.bsky.feed.post/3lsentbefore1"
    pds.feed = [
        feed_item(f"at://{DID}/app.bsky.feed.post/3lother000001", "다른 답변", OUR_POST, OUR_POST),
        feed_item(ours, "답변", citizen["uri"], citizen["uri"]),
    ]
    assert outbox.send_delivery(delivery.pk) == ReplyState.SENT
    delivery.refresh_from_db()
    assert delivery.platform_reply_id == ours
    assert pds.created == []


def test_find_sent_says_none_when_the_feed_has_no_reply(city, pds):
    pds.feed = [feed_item(f"at://{DID}/app.bsky.feed.post/3lother000001", "x", OUR_POST, OUR_POST)]
    reply = OutgoingReply(in_reply_to=post_uri("3lnothing0001"), text="x", idempotency_key="k")
    assert BLUESKY.find_sent(account_config(city), reply) is None
