"""The X connector through the real paths: mentions polled by poll_account, Account
Activity deliveries signed as X signs them through /hooks/x/<handle>/, and answers posted
by the outbox, all through tweepy with HTTP stubbed at the requests transport
(`responses`), in X's documented shapes (x_payloads.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.test import Client
from django.utils import timezone

from sotong.cases import services
from sotong.cases.models import Case
from sotong.channels import outbox
from sotong.channels.connectors.base import AccountConfig, OutgoingReply, PermanentError
from sotong.channels.connectors.registry import connector_for, connector_for_channel
from sotong.channels.connectors.x import SNOWFLAKE_EPOCH_MS, XConnector, retry_at
from sotong.channels.models import (
    DeliveryState,
    PollState,
    ReplyDelivery,
    ReplyState,
    WebhookDelivery,
)
from sotong.channels.polling import poll_account
from sotong.channels.tests import x_payloads
from sotong.channels.tests.x_payloads import (
    ACCESS_TOKEN,
    API,
    BEARER,
    CITIZEN,
    CITY_TEXT_AS_WRITTEN,
    CONSUMER_KEY,
    CONSUMER_SECRET,
    CURSOR,
    MAYOR,
    MAYOR_ID,
    MAYOR_URL,
    OUR_REPLY,
    RETWEET,
    SMC_ID,
    TWEET_1,
    TWEET_2,
    TWEET_3,
    configure_smc,
    created,
    encode,
    favorite_and_follow,
    mentions_page,
    post,
    problem,
    sign,
    tweet_create,
    tweet_delete,
    v1_tweet,
    v2_tweet,
)
from sotong.directory.models import Account
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

mayor = x_payloads.mayor  # fixtures
smc = x_payloads.smc

X = XConnector()
MENTIONS = f"{API}/users/{MAYOR_ID}/mentions"
TWEETS = f"{API}/tweets"
SMC_TWEETS = f"{API}/users/{SMC_ID}/tweets"
ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
    "{unit}(☎{phone})로 연락주시면 성심껏 답변드리겠습니다."
)
LONG_TAIL = (
    " 아울러 창신동 일대 골목길의 보안등 노후 현황을 전수 조사하여 내년 상반기까지 "
    "고효율 엘이디 등기구로 교체하고, 어두운 구간에는 보안등을 추가로 설치하겠습니다."
)


@pytest.fixture
def x_api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as stub:
        yield stub


@pytest.fixture
def client() -> Client:
    return Client()


def query_of(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def state_of(account: Account) -> PollState:
    return PollState.objects.get(account=account)


def weighted(text: str) -> int:
    return X.length(text)


# --- registration and the length rule ----------------------------------------------------


def test_registered_for_the_x_channel():
    assert isinstance(connector_for("x"), XConnector)
    assert connector_for_channel("x") is connector_for("x")
    secrets = {f.name: f.secret for f in X.settings_fields}
    assert secrets == {
        "user_id": False,
        "bearer_token": True,
        "consumer_key": True,
        "consumer_secret": True,
        "access_token": True,
        "access_token_secret": True,
        "city_accounts": False,
    }
    assert all("(" in f.label for f in X.settings_fields)  # Korean, then English


def test_length_is_twitter_text_weighting():
    assert X.max_reply_length == 280 and X.max_thread_parts == 5
    assert X.length("가" * 140) == 280  # Hangul weighs two
    assert X.length("a" * 280) == 280
    assert X.length("민원 https://seoul.example.kr/cases/2026-000123/") == 2 * 2 + 1 + 23
    assert X.length("") == 0


def test_rate_limit_reset_headers():
    window = datetime(2026, 11, 25, 0, 15, tzinfo=UTC)
    day = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    headers = {
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(int(window.timestamp())),
        "x-user-limit-24hour-remaining": "12",
        "x-user-limit-24hour-reset": str(int(day.timestamp())),
    }
    assert retry_at(headers) == window
    headers |= {"x-rate-limit-remaining": "40", "x-user-limit-24hour-remaining": "0"}
    assert retry_at(headers) == day  # the 24-hour cap is spent, not the window


# --- polling mentions ----------------------------------------------------------------------


def test_first_poll_starts_from_now(mayor, x_api):
    x_api.get(MENTIONS, json=mentions_page([v2_tweet(TWEET_2), v2_tweet(TWEET_1)]))
    assert poll_account(mayor.pk) == "polled"
    assert state_of(mayor).cursor == TWEET_2  # the newest mention; none of them taken
    assert Message.objects.count() == 0
    [call] = x_api.calls
    assert query_of(call) == {"max_results": ["5"]}
    assert call.request.headers["Authorization"] == f"Bearer {BEARER}"


def test_first_poll_without_mentions_starts_from_the_clock(mayor, x_api):
    x_api.get(MENTIONS, json=mentions_page([]))
    before = timezone.now()
    assert poll_account(mayor.pk) == "polled"
    cursor = int(state_of(mayor).cursor)
    moment = datetime.fromtimestamp(((cursor >> 22) + SNOWFLAKE_EPOCH_MS) / 1000, tz=UTC)
    assert before - timedelta(minutes=2) < moment <= before


def test_poll_with_the_cursor_takes_every_page_and_skips_our_own_posts(mayor, x_api):
    PollState.objects.create(account=mayor, cursor=CURSOR)
    other = "마포구 합정역 앞 인도에 불법 주차된 차량 때문에 유모차가 지나갈 수 없습니다"
    first = mentions_page(
        [
            v2_tweet(RETWEET, f"RT @{CITIZEN}: {other}", retweeted=TWEET_3),
            v2_tweet(
                OUR_REPLY, "@seoul_citizen 답변드립니다", author_id=SMC_ID, replied_to=TWEET_2
            ),
            v2_tweet(TWEET_3, f"@seoul_mayor {other}", replied_to="2125370000000000000"),
        ],
        next_token="7140dibdnow9c7btw3w29grvxfcgvpb9n9coehpk7xz5i",
    )
    second = mentions_page([v2_tweet(TWEET_1, created_at="2026-11-24T23:58:00.000Z")])
    x_api.get(MENTIONS, json=first)
    x_api.get(MENTIONS, json=second)

    assert poll_account(mayor.pk) == "polled"
    one, two = x_api.calls
    assert query_of(one) == {
        "since_id": [CURSOR],
        "expansions": ["author_id"],
        "tweet.fields": [
            "created_at,conversation_id,in_reply_to_user_id,referenced_tweets,note_tweet"
        ],
        "max_results": ["100"],
    }
    assert query_of(two)["pagination_token"] == ["7140dibdnow9c7btw3w29grvxfcgvpb9n9coehpk7xz5i"]
    assert query_of(two)["since_id"] == [CURSOR]
    state = state_of(mayor)
    assert state.cursor == RETWEET  # the newest id seen, ours and retweets included
    assert state.items_total == 2

    got = {m.external_id: m for m in Message.objects.select_related("channel", "account")}
    assert set(got) == {TWEET_1, TWEET_3}  # not our reply, not the retweet
    message = got[TWEET_1]
    assert message.channel.code == "x" and message.account.handle == MAYOR
    assert message.author_handle == f"@{CITIZEN}"
    assert message.text == CITY_TEXT_AS_WRITTEN  # X's &amp; is the citizen's &
    assert message.sent_at == datetime(2026, 11, 24, 23, 58, tzinfo=UTC)
    assert message.in_reply_to == ""
    assert message.raw_payload["data"]["id"] == TWEET_1
    assert message.raw_payload["includes"]["users"][0]["username"] == CITIZEN
    assert got[TWEET_3].in_reply_to == "2125370000000000000"

    run_queued_jobs()
    case = Message.objects.get(external_id=TWEET_1).case_link.case
    assert case.unit.code == "district-jongno"

    # The next poll starts at the stored cursor, and the same mention again is no new one.
    PollState.objects.filter(account=mayor).update(next_poll_at=None)
    x_api.get(MENTIONS, json=mentions_page([v2_tweet(TWEET_1)]))
    assert poll_account(mayor.pk) == "polled"
    assert query_of(x_api.calls[-1])["since_id"] == [RETWEET]
    assert Message.objects.filter(external_id=TWEET_1).count() == 1


def test_poll_rate_limited_waits_for_the_reset(mayor, x_api):
    PollState.objects.create(account=mayor, cursor=CURSOR)
    reset = int((timezone.now() + timedelta(minutes=12)).timestamp())
    x_api.get(
        MENTIONS,
        status=429,
        json={"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429},
        headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)},
    )
    assert poll_account(mayor.pk) == "rate limited"
    state = state_of(mayor)
    assert state.cursor == CURSOR
    assert state.next_poll_at >= datetime.fromtimestamp(reset, tz=UTC)
    assert "429" in state.last_error


def test_poll_unauthorized_needs_reauthorization(mayor, x_api, caplog):
    PollState.objects.create(account=mayor, cursor=CURSOR)
    x_api.get(MENTIONS, status=401, json=problem(401, "Unauthorized", "Unauthorized"))
    with caplog.at_level(logging.DEBUG):
        assert poll_account(mayor.pk) == "needs re-authorization"
    state = state_of(mayor)
    assert state.needs_reauthorization and state.cursor == CURSOR
    assert BEARER not in caplog.text  # tweepy's debug log names the token: kept quiet


def test_poll_server_error_is_transient(mayor, x_api):
    PollState.objects.create(account=mayor, cursor=CURSOR)
    x_api.get(MENTIONS, status=503, body="Service Unavailable")
    assert poll_account(mayor.pk) == "transient error"
    assert state_of(mayor).cursor == CURSOR and state_of(mayor).error_count == 1


def test_poll_without_a_bearer_token_waits_for_it(directory, x_api):
    account = Account.objects.get(channel__code="x", handle="@seoul")
    assert poll_account(account.pk) == "not configured"
    assert "bearer_token" in state_of(account).last_error
    assert len(x_api.calls) == 0


# --- the Account Activity webhook ------------------------------------------------------------


def test_crc_challenge_is_answered_with_the_consumer_secret(client, mayor):
    answer = client.get(MAYOR_URL, {"crc_token": "a7b9c2d4-crc"})
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"
    digest = hmac.new(CONSUMER_SECRET.encode(), b"a7b9c2d4-crc", hashlib.sha256).digest()
    assert answer.json() == {"response_token": "sha256=" + base64.b64encode(digest).decode()}
    assert client.get(MAYOR_URL).status_code == 400
    smc_without_secret = "/hooks/x/@seoul/"
    assert client.get(smc_without_secret, {"crc_token": "x"}).status_code == 403


def test_signed_mention_becomes_a_message_and_opens_a_case(client, mayor):
    body = encode(tweet_create(v1_tweet()))
    answer = post(client, MAYOR_URL, body)
    assert answer.status_code == 200, answer.content
    delivery = WebhookDelivery.objects.get()
    assert delivery.raw_body == body
    assert delivery.headers["x-twitter-webhooks-signature"] == sign(body)
    assert Message.objects.count() == 0  # the job does the work

    run_queued_jobs()
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PROCESSED and delivery.message_count == 1
    message = Message.objects.select_related("channel", "account").get()
    assert (message.channel.code, message.account.handle) == ("x", MAYOR)
    assert message.external_id == TWEET_1
    assert message.author_handle == f"@{CITIZEN}"
    assert message.text == CITY_TEXT_AS_WRITTEN
    assert message.sent_at == datetime(2026, 11, 25, tzinfo=UTC)
    case = Case.objects.get()
    assert message.case_link.case == case
    assert case.unit.code == "district-jongno"


def test_long_post_takes_the_full_text(client, mayor):
    text = "@seoul_mayor " + "창신동 골목 보안등이 꺼져 있습니다. " * 10
    assert post(client, MAYOR_URL, encode(tweet_create(v1_tweet(text=text)))).status_code == 200
    run_queued_jobs()
    assert Message.objects.get().text == text.strip()


def test_our_own_posts_and_retweets_are_ignored(client, mayor):
    own = v1_tweet(
        OUR_REPLY, "@seoul_citizen 답변드립니다", user_id=MAYOR_ID, screen_name="seoul_mayor"
    )
    center = v1_tweet(TWEET_2, "@seoul_mayor 답변", user_id=SMC_ID, screen_name="seoul_smc")
    retweet = v1_tweet(RETWEET) | {"retweeted_status": v1_tweet(TWEET_3)}
    assert post(client, MAYOR_URL, encode(tweet_create(own, center, retweet))).status_code == 200
    run_queued_jobs()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.IGNORED and "3 event(s)" in delivery.reason
    assert Message.objects.count() == 0


def test_deleted_post_is_withdrawn(client, mayor):
    assert post(client, MAYOR_URL, encode(tweet_create(v1_tweet()))).status_code == 200
    assert post(client, MAYOR_URL, encode(tweet_delete())).status_code == 200
    run_queued_jobs()
    message = Message.objects.get()
    assert message.withdrawn_at is not None


def test_delivery_for_another_subscribed_account_goes_to_that_account(client, mayor, smc):
    mention = v1_tweet(text="@seoul_smc 창신동 보안등 고장 신고합니다")
    mention["entities"]["user_mentions"] = [
        {"screen_name": "seoul_smc", "id_str": SMC_ID, "indices": [0, 10]}
    ]
    body = encode(tweet_create(mention, for_user=SMC_ID))
    assert post(client, MAYOR_URL, body).status_code == 200
    run_queued_jobs()
    assert Message.objects.select_related("account").get().account.handle == "@seoul_smc"


@pytest.mark.parametrize(
    "signature",
    [
        None,
        sign(encode(tweet_create(v1_tweet())), secret="not-the-consumer-secret"),
        "sha1=" + sign(encode(tweet_create(v1_tweet())))[7:],
        "sha256=",
        "sha256=not base64 at all",
        "sha256=" + hmac.new(CONSUMER_SECRET.encode(), b"x", hashlib.sha256).hexdigest(),
    ],
    ids=["missing", "forged", "other-scheme", "empty", "garbage", "hex-of-other-body"],
)
def test_bad_signature_is_refused_and_nothing_stored(client, mayor, caplog, signature):
    body = encode(tweet_create(v1_tweet()))
    with caplog.at_level(logging.WARNING, logger="sotong.channels.hooks"):
        answer = post(client, MAYOR_URL, body, signature=signature)
    assert answer.status_code == 401
    assert WebhookDelivery.objects.count() == 0
    assert run_queued_jobs() == 0 and Message.objects.count() == 0
    assert "webhook refused for x/@seoul_mayor" in caplog.text
    assert "보안등" not in caplog.text and CONSUMER_SECRET not in caplog.text


def test_signature_of_another_body_is_refused(client, mayor):
    body = encode(tweet_create(v1_tweet()))
    other = encode(tweet_create(v1_tweet(text="다른 글")))
    assert post(client, MAYOR_URL, body, signature=sign(other)).status_code == 401


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"for_user_id": "1", "tweet_create_events": [', "not valid JSON"),
        (b"\xff\xfe not utf-8", "not valid UTF-8"),
        (b'["tweet_create_events"]', "not a JSON object"),
    ],
    ids=["truncated-json", "not-utf8", "array"],
)
def test_malformed_delivery_is_stored_and_ignored(client, mayor, body, reason):
    assert post(client, MAYOR_URL, body).status_code == 200
    run_queued_jobs()
    delivery = WebhookDelivery.objects.get()
    assert delivery.raw_body == body
    assert delivery.state == DeliveryState.IGNORED and reason in delivery.reason
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    "payload",
    [
        favorite_and_follow(),
        {"for_user_id": MAYOR_ID, "direct_message_events": [{"type": "message_create"}]},
        {"data": {"event_type": "profile.update.bio", "payload": {}}},  # a newer API's shape
        {"for_user_id": MAYOR_ID, "tweet_create_events": [None, 3, {"id_str": "5"}]},
        {"for_user_id": MAYOR_ID, "tweet_create_events": "nope", "tweet_delete_events": [{}]},
    ],
    ids=["likes-follows", "direct-message", "unknown-version", "strange-tweets", "strange-lists"],
)
def test_unknown_or_strange_events_are_stored_and_ignored(client, mayor, payload):
    assert post(client, MAYOR_URL, encode(payload)).status_code == 200
    run_queued_jobs()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.IGNORED
    assert Message.objects.count() == 0


def test_script_in_a_post_is_kept_as_text(client, mayor):
    text = "@seoul_mayor <script>alert(1)</script> 창신동 보안등"
    assert post(client, MAYOR_URL, encode(tweet_create(v1_tweet(text=text)))).status_code == 200
    run_queued_jobs()
    assert Message.objects.get().text == text


def test_every_delivery_ten_times_and_out_of_order_is_one_message(client, mayor, x_api):
    first = encode(tweet_create(v1_tweet()))
    second = encode(
        tweet_create(v1_tweet(TWEET_2, text="@seoul_mayor 창신동 보안등 아직도 꺼져 있어요"))
    )
    for _ in range(10):
        for body in (second, first):
            assert post(client, MAYOR_URL, body).status_code == 200
    run_queued_jobs()
    assert WebhookDelivery.objects.count() == 2
    assert sorted(Message.objects.values_list("external_id", flat=True)) == [TWEET_1, TWEET_2]
    # The same mention polled as well is still one message.
    PollState.objects.create(account=mayor, cursor=CURSOR)
    x_api.get(MENTIONS, json=mentions_page([v2_tweet(TWEET_2), v2_tweet(TWEET_1)]))
    assert poll_account(mayor.pk) == "polled"
    assert Message.objects.count() == 2


# --- replies through the outbox ------------------------------------------------------------


def published_case(client, people, extra: str = "") -> Case:
    """A citizen's mention of the mayor, delivered by the webhook, opens a case that the
    Jongno officer answers and publishes; the outbox's jobs are queued, not yet run."""
    assert post(client, MAYOR_URL, encode(tweet_create(v1_tweet()))).status_code == 200
    run_queued_jobs()
    case = Case.objects.select_related("unit").get()
    unit = case.unit
    assert unit is not None and unit.code == "district-jongno"
    text = ANSWER.format(unit=unit.name, phone=unit.phone) + extra
    services.draft_answer(case, text, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"])
    return case


def new_ids():
    numbers = itertools.count(2125380000000000001)

    def reply(request):
        body = json.loads(request.body)
        return 201, {}, json.dumps(created(str(next(numbers)), body["text"]))

    return reply


def sent_bodies(x_api) -> list[dict]:
    return [json.loads(c.request.body) for c in x_api.calls if c.request.method == "POST"]


def test_answer_is_posted_once_from_the_reply_account(client, people, mayor, smc, x_api):
    x_api.post(TWEETS, json=created("2125380000000000001"), status=201)
    case = published_case(client, people)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.select_related("account").get(case=case)
    assert delivery.account.handle == "@seoul_smc"
    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "2125380000000000001"
    [call] = x_api.calls
    assert call.request.url == TWEETS
    body = json.loads(call.request.body)
    assert body == {"text": delivery.text, "reply": {"in_reply_to_tweet_id": TWEET_1}}
    assert weighted(body["text"]) <= 280
    assert body["text"].endswith(outbox.public_case_link(case))
    auth = call.request.headers["Authorization"]
    auth = auth.decode() if isinstance(auth, bytes) else auth
    assert auth.startswith("OAuth ")
    assert f'oauth_consumer_key="{CONSUMER_KEY}"' in auth
    assert f'oauth_token="{ACCESS_TOKEN}"' in auth.replace("%2D", "-")
    assert 'oauth_signature_method="HMAC-SHA1"' in auth
    # Run again: nothing more is posted.
    assert outbox.send_delivery(delivery.pk) == ReplyState.SENT
    assert outbox.sweep_outbox()["sent"] == 0
    assert len(x_api.calls) == 1


def test_long_korean_answer_goes_out_as_a_numbered_thread(client, people, mayor, smc, x_api):
    x_api.add_callback(responses.POST, TWEETS, callback=new_ids())
    case = published_case(client, people, extra=LONG_TAIL * 2)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.SENT
    bodies = sent_bodies(x_api)
    count = len(bodies)
    assert 2 <= count <= 5 and delivery.parts == [b["text"] for b in bodies]
    parents = [b["reply"]["in_reply_to_tweet_id"] for b in bodies]
    assert parents == [TWEET_1] + [str(2125380000000000001 + i) for i in range(count - 1)]
    for number, body in enumerate(bodies, start=1):
        assert body["text"].startswith(f"({number}/{count}) ")
        assert weighted(body["text"]) <= 280
    assert bodies[-1]["text"].endswith(outbox.public_case_link(case))
    assert delivery.platform_reply_id == "2125380000000000001"


def test_a_thread_cut_short_goes_on_where_it_stopped(client, people, mayor, smc, x_api):
    numbers = itertools.count(2125380000000000001)
    posted: dict[str, dict] = {}
    fail_next = {"second": True}

    def reply(request):
        body = json.loads(request.body)
        if any(p["text"] == body["text"] for p in posted.values()):
            detail = "You are not allowed to create a Tweet with duplicate content."
            return 403, {}, json.dumps(problem(403, "Forbidden", detail))
        if body["text"].startswith("(2/") and fail_next["second"]:
            fail_next["second"] = False
            return 503, {}, json.dumps(problem(503, "Service Unavailable", "Overloaded"))
        tweet_id = str(next(numbers))
        posted[tweet_id] = body
        return 201, {}, json.dumps(created(tweet_id, body["text"]))

    def timeline(request):
        # As X shows them: the reply's @names in front, links shortened to t.co.
        data = [
            {
                "id": tweet_id,
                "text": f"@{CITIZEN} @seoul_mayor "
                + body["text"].replace(outbox.public_case_link(case), "https://t.co/AbC123"),
                "referenced_tweets": [
                    {"type": "replied_to", "id": body["reply"]["in_reply_to_tweet_id"]}
                ],
            }
            for tweet_id, body in sorted(posted.items(), reverse=True)
        ]
        return 200, {}, json.dumps({"data": data, "meta": {"result_count": len(data)}})

    x_api.add_callback(responses.POST, TWEETS, callback=reply)
    x_api.add_callback(responses.GET, SMC_TWEETS, callback=timeline)
    case = published_case(client, people, extra=LONG_TAIL * 2)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.PENDING and "503" in delivery.last_error
    assert len(posted) == 1

    ReplyDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert outbox.send_delivery(delivery.pk) == ReplyState.SENT
    delivery.refresh_from_db()
    assert delivery.platform_reply_id == "2125380000000000001"
    # Every part once, each in reply to the one before.
    assert [b["text"] for b in posted.values()] == delivery.parts
    chain = [TWEET_1, *list(posted)[:-1]]
    assert [b["reply"]["in_reply_to_tweet_id"] for b in posted.values()] == chain
    [lookup] = [c for c in x_api.calls if c.request.method == "GET"]
    assert query_of(lookup)["since_id"] == [TWEET_1]


def test_after_a_crash_the_reply_found_on_x_is_not_posted_again(client, people, mayor, smc, x_api):
    x_api.add_callback(responses.POST, TWEETS, callback=new_ids())
    case = published_case(client, people)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    posted = sent_bodies(x_api)[0]["text"]
    # The worker died after X took the reply and before the outbox recorded it.
    ReplyDelivery.objects.filter(pk=delivery.pk).update(
        state=ReplyState.SENDING,
        sending_since=timezone.now() - timedelta(minutes=10),
        platform_reply_id="",
    )
    shown = posted.replace(outbox.public_case_link(case), "https://t.co/ZyX987")
    x_api.get(
        SMC_TWEETS,
        json={
            "data": [
                {"id": "2125380000000000777", "text": "(다른 답변)", "referenced_tweets": []},
                {
                    "id": "2125380000000000001",
                    "text": f"@{CITIZEN} {shown}",
                    "referenced_tweets": [{"type": "replied_to", "id": TWEET_1}],
                },
            ],
            "meta": {"result_count": 2},
        },
    )
    outbox.sweep_outbox()
    delivery.refresh_from_db()
    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "2125380000000000001"
    assert len(sent_bodies(x_api)) == 1  # not posted twice


def test_after_a_crash_a_reply_not_on_x_is_posted(client, people, mayor, smc, x_api):
    x_api.add_callback(responses.POST, TWEETS, callback=new_ids())
    case = published_case(client, people)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    ReplyDelivery.objects.filter(pk=delivery.pk).update(
        state=ReplyState.SENDING, sending_since=timezone.now() - timedelta(minutes=10)
    )
    x_api.get(SMC_TWEETS, json={"meta": {"result_count": 0}})
    outbox.sweep_outbox()
    delivery.refresh_from_db()
    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "2125380000000000002"
    assert len(sent_bodies(x_api)) == 2


@pytest.mark.parametrize("cap", ["window", "24-hour"])
def test_rate_limited_reply_waits_for_the_reset(client, people, mayor, smc, x_api, cap):
    reset = int((timezone.now() + timedelta(hours=3)).timestamp())
    if cap == "window":
        headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    else:
        soon = int((timezone.now() + timedelta(minutes=5)).timestamp())
        headers = {
            "x-rate-limit-remaining": "180",
            "x-rate-limit-reset": str(soon),
            "x-user-limit-24hour-remaining": "0",
            "x-user-limit-24hour-reset": str(reset),
        }
    x_api.post(
        TWEETS,
        status=429,
        json=problem(429, "Too Many Requests", "Too Many Requests"),
        headers=headers,
    )
    case = published_case(client, people)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.PENDING
    assert delivery.next_attempt_at == datetime.fromtimestamp(reset, tz=UTC)
    assert "429" in delivery.last_error


def test_revoked_token_needs_reauthorization(client, people, mayor, smc, x_api):
    PollState.objects.create(account=smc)
    x_api.post(TWEETS, status=401, json=problem(401, "Unauthorized", "Unauthorized"))
    case = published_case(client, people)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.FAILED
    assert delivery.last_error.startswith(outbox.NEEDS_REAUTHORIZATION)
    assert state_of(smc).needs_reauthorization


def test_reply_to_a_deleted_post_fails_with_xs_reason(client, people, mayor, smc, x_api):
    detail = "You attempted to reply to a Tweet that is deleted or not visible to you."
    x_api.post(TWEETS, status=403, json=problem(403, "Forbidden", detail))
    case = published_case(client, people)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.FAILED and detail in delivery.last_error
    assert len(x_api.calls) == 1  # no look-up: only duplicate content is a retry's echo


def test_server_error_is_retried_later(client, people, mayor, smc, x_api):
    x_api.post(TWEETS, status=500, body="Internal Server Error")
    case = published_case(client, people)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.PENDING and delivery.next_attempt_at > timezone.now()


def test_reply_account_without_tokens_is_replied_elsewhere(client, people, mayor, x_api):
    case = published_case(client, people)  # @seoul_smc has no tokens yet
    run_queued_jobs()
    delivery = ReplyDelivery.objects.select_related("account").get(case=case)
    assert delivery.state == ReplyState.MANUAL and "access_token" in delivery.last_error
    assert len(x_api.calls) == 0
    # The tokens entered, an officer sends it again.
    configure_smc(delivery.account)
    x_api.post(TWEETS, json=created("2125380000000000001"), status=201)
    outbox.retry_delivery(delivery, actor=people["jongno"])
    run_queued_jobs()
    delivery.refresh_from_db()
    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "2125380000000000001"


def test_duplicate_refusal_without_our_reply_on_x_is_permanent(x_api):
    account = AccountConfig(
        "x",
        "@seoul_smc",
        {
            "user_id": SMC_ID,
            "consumer_key": CONSUMER_KEY,
            "consumer_secret": CONSUMER_SECRET,
            "access_token": ACCESS_TOKEN,
            "access_token_secret": "s",
        },
    )
    detail = "You are not allowed to create a Tweet with duplicate content."
    x_api.post(TWEETS, status=403, json=problem(403, "Forbidden", detail))
    x_api.get(SMC_TWEETS, json={"meta": {"result_count": 0}})
    reply = OutgoingReply(in_reply_to=TWEET_1, text="감사합니다", idempotency_key="k")
    with pytest.raises(PermanentError, match="X refused the reply"):
        X.send_reply(account, reply)
