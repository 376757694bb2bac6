"""The Meta connector over plain data (no database): handshake, signature, and each
documented payload (see meta_payloads.py for the shape each follows) normalized."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
import requests
import responses
from django.test import Client

from sotong.cases import services
from sotong.cases.models import Case
from sotong.cases.services import CaseOpening, open_cases
from sotong.channels import outbox
from sotong.channels.connectors.base import (
    AccountConfig,
    NeedsReauthorization,
    OutgoingReply,
    OutsideReplyWindow,
    PermanentError,
    RateLimited,
    SignatureInvalid,
    TransientError,
    WebhookRequest,
)
from sotong.channels.connectors.meta import MetaConnector
from sotong.channels.connectors.registry import connector_for, connector_for_channel, connectors
from sotong.channels.models import ReplyDelivery, ReplyState
from sotong.channels.tests import meta_payloads
from sotong.channels.tests.meta_payloads import (
    APP_SECRET,
    CITY_TEXT,
    FACEBOOK_URL,
    GRAPH,
    PAGE_ACCESS_TOKEN,
    PAGE_ID,
    VERIFY_TOKEN,
    business_usage,
    encode,
    graph_error,
    instagram_comment,
    instagram_dm,
    instagram_mention,
    messenger_message,
    page_comment,
    post,
    sign,
)
from sotong.directory.models import CaseType, Unit
from sotong.errors import InvalidInput
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

facebook_account = meta_payloads.facebook_account  # fixtures shared with test_hooks

# A standard answer (표준답안): thanks, what was reported, what will be done and when, whom
# to ask.
ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
    "{unit}(☎{phone})로 연락주시면 성심껏 답변드리겠습니다."
)

META = MetaConnector()
PAGE = AccountConfig("meta", "seoulcity", {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN})
# The reply account as the outbox gives it: the page's token and id set.
REPLIER = AccountConfig(
    "meta",
    "seoulcity",
    {**PAGE.settings, "page_access_token": PAGE_ACCESS_TOKEN, "page_id": PAGE_ID},
)


@pytest.fixture
def client() -> Client:
    return Client()


def request(payload=None, *, body: bytes | None = None, signature: str | None = None, query=None):
    if body is None:
        body = encode(payload)
    headers = {"x-hub-signature-256": signature} if signature is not None else {}
    return WebhookRequest("POST", query or {}, headers, body)


def test_registered_for_both_channels():
    assert isinstance(connector_for("meta"), MetaConnector)
    assert connector_for_channel("facebook") is connector_for("meta")
    assert connector_for_channel("instagram") is connector_for("meta")
    assert connector_for_channel("callcenter") is None
    names = {f.name: f.secret for f in META.settings_fields}
    assert names == {
        "app_secret": True,
        "verify_token": True,
        "page_access_token": True,
        "page_id": False,
    }


def test_signature_over_the_raw_bytes():
    body = encode(page_comment())
    META.verify(PAGE, request(body=body, signature=sign(body)))
    META.verify(PAGE, request(body=body, signature=sign(body).upper().replace("SHA256", "sha256")))
    with pytest.raises(SignatureInvalid):
        META.verify(PAGE, request(body=body + b" ", signature=sign(body)))
    with pytest.raises(SignatureInvalid):
        META.verify(AccountConfig("meta", "x", {}), request(body=body, signature=sign(body)))


def test_handshake_needs_a_stored_token():
    query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "42"}
    no_token = AccountConfig("meta", "x", {})
    assert META.handshake(no_token, request(body=b"", query=query)).status == 403


def test_page_comment():
    parsed = META.parse(PAGE, request(page_comment()))
    (message,) = parsed.messages
    assert (message.channel, message.external_id, message.account) == (
        "facebook",
        "778899_1200001",
        "seoulcity",
    )
    assert message.text == CITY_TEXT and message.author == "김시민"
    assert message.in_reply_to == "104512345678901_778899"
    assert message.sent_at == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    assert parsed.withdrawals == [] and parsed.ignored == 0


def test_page_post_by_a_visitor_and_its_removal():
    parsed = META.parse(PAGE, request(page_comment(item="post")))
    assert parsed.messages[0].external_id == "104512345678901_778899"
    assert parsed.messages[0].in_reply_to == ""
    removed = META.parse(PAGE, request(page_comment(verb="remove")))
    assert [w.external_id for w in removed.withdrawals] == ["778899_1200001"]
    assert removed.messages == []


def test_messenger_message_in_milliseconds_and_echo_ignored():
    (message,) = META.parse(PAGE, request(messenger_message())).messages
    assert message.external_id == "m_AbCdEf0123456789"
    assert message.author == "7012345678901234"
    assert message.sent_at == datetime.fromtimestamp(1795582859, tz=UTC)
    echo = META.parse(PAGE, request(messenger_message(is_echo=True)))
    assert echo.messages == [] and echo.ignored == 1


def test_instagram_comment_dm_unsend_and_mention():
    account = AccountConfig("meta", "@seoul_official", {})
    (comment,) = META.parse(account, request(instagram_comment())).messages
    assert (comment.channel, comment.external_id, comment.author) == (
        "instagram",
        "17865799348089039",
        "seoul_citizen",
    )
    assert comment.in_reply_to == "17887498072083520"
    (dm,) = META.parse(account, request(instagram_dm())).messages
    assert dm.channel == "instagram" and dm.text.startswith("한강공원")
    unsent = META.parse(account, request(instagram_dm(deleted=True)))
    assert unsent.messages == [] and len(unsent.withdrawals) == 1
    # A mention carries no text (Meta wants a Graph API call for it): counted, not lost
    # silently; fetching it is for the next slice.
    mention = META.parse(account, request(instagram_mention()))
    assert mention.messages == [] and mention.ignored == 1


def test_reply_to_a_comment_points_at_the_parent_comment():
    payload = instagram_comment()
    payload["entry"][0]["changes"][0]["value"]["parent_id"] = "17858893269000001"
    (message,) = META.parse(PAGE, request(payload)).messages
    assert message.in_reply_to == "17858893269000001"


@pytest.mark.parametrize(
    "payload",
    [
        {"object": "page", "entry": "nope"},
        {"object": "page", "entry": [None, 3, {"changes": None, "messaging": [None]}]},
        {"object": "page", "entry": [{"messaging": [{"message": {"mid": 5, "text": ["x"]}}]}]},
        {
            "object": "page",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "feed",
                            "value": {
                                "item": "comment",
                                "verb": "add",
                                "comment_id": "1",
                                "message": "  ",
                                "created_time": "yesterday",
                            },
                        }
                    ]
                }
            ],
        },
    ],
)
def test_strange_shapes_never_crash(payload):
    parsed = META.parse(PAGE, request(payload))
    assert parsed.messages == []


def test_not_json_is_invalid_input():
    with pytest.raises(InvalidInput):
        META.parse(PAGE, request(body=b"{"))


# --- replies ------------------------------------------------------------------------------

NOW = datetime.now(UTC)


def outgoing(payload, text="답변입니다", account=PAGE, **changes) -> OutgoingReply:
    """The reply the outbox would send to the message `payload` carries."""
    (message,) = META.parse(account, request(payload)).messages
    fields = {
        "in_reply_to": message.external_id,
        "text": text,
        "idempotency_key": "sotong-2026-000001-a1-m1",
        "author": message.author,
        "raw": message.raw,
        "sent_at": message.sent_at,
    }
    return OutgoingReply(**{**fields, **changes})


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def test_reply_limit_by_kind_of_message():
    account = AccountConfig("meta", "@seoul_official", {})
    live = instagram_comment()
    live["entry"][0]["changes"][0]["field"] = "live_comments"
    limits = {
        "page comment": META.reply_limit(outgoing(page_comment()).raw),
        "messenger": META.reply_limit(outgoing(messenger_message()).raw),
        "instagram comment": META.reply_limit(outgoing(instagram_comment(), account=account).raw),
        "instagram live": META.reply_limit(outgoing(live, account=account).raw),
        "instagram dm": META.reply_limit(outgoing(instagram_dm(), account=account).raw),
        "unknown": META.reply_limit({}),
    }
    assert limits == {
        "page comment": 8000,
        "messenger": 2000,
        "instagram comment": 2200,
        "instagram live": 2200,
        "instagram dm": 333,
        "unknown": 333,  # the smallest: whatever it is, the text fits
    }
    # 333 characters of Hangul are 999 bytes: within Instagram's 1,000 bytes for a DM.
    assert len(("가" * 333).encode()) <= 1000


@responses.activate
def test_page_comment_reply_posts_to_the_comments_edge_with_the_token_in_the_body():
    responses.post(f"{GRAPH}/778899_1200001/comments", json={"id": "778899_1300001"})
    sent = META.send_reply(REPLIER, outgoing(page_comment(), text="고쳤습니다 <b>&</b>"))
    assert sent.platform_id == "778899_1300001"
    (call,) = responses.calls
    assert call.request.url == f"{GRAPH}/778899_1200001/comments"  # no token in the URL
    assert form(call) == {
        "message": "고쳤습니다 <b>&</b>",
        "access_token": PAGE_ACCESS_TOKEN,
        "appsecret_proof": hmac.new(
            APP_SECRET.encode(), PAGE_ACCESS_TOKEN.encode(), hashlib.sha256
        ).hexdigest(),
    }


@responses.activate
def test_reply_to_a_reply_goes_to_its_top_level_comment_and_a_visitor_post_to_the_post():
    responses.post(f"{GRAPH}/778899_1200001/comments", json={"id": "778899_1300002"})
    responses.post(f"{GRAPH}/{PAGE_ID}_778899/comments", json={"id": "778899_1300003"})
    nested = page_comment(comment_id="778899_1200009")
    nested["entry"][0]["changes"][0]["value"]["parent_id"] = "778899_1200001"
    assert META.send_reply(REPLIER, outgoing(nested)).platform_id == "778899_1300002"
    visitor_post = page_comment(item="post")
    assert META.send_reply(REPLIER, outgoing(visitor_post)).platform_id == "778899_1300003"


@responses.activate
def test_instagram_comment_reply_posts_to_the_replies_edge():
    account = AccountConfig("meta", "@seoul_official", REPLIER.settings)
    responses.post(f"{GRAPH}/17865799348089039/replies", json={"id": "17873440459141021"})
    sent = META.send_reply(account, outgoing(instagram_comment(), account=account))
    assert sent.platform_id == "17873440459141021"
    assert form(responses.calls[0])["message"] == "답변입니다"


def test_instagram_live_comment_takes_no_comment_reply():
    live = instagram_comment()
    live["entry"][0]["changes"][0]["field"] = "live_comments"
    with responses.RequestsMock() as stub, pytest.raises(OutsideReplyWindow):
        META.send_reply(REPLIER, outgoing(live))
    assert len(stub.calls) == 0


@responses.activate
def test_messenger_reply_within_24_hours_uses_the_send_api():
    responses.post(
        f"{GRAPH}/{PAGE_ID}/messages",
        json={"recipient_id": "7012345678901234", "message_id": "m_Reply0001"},
    )
    reply = outgoing(messenger_message(timestamp=ms(NOW - timedelta(hours=23))))
    assert META.send_reply(REPLIER, reply).platform_id == "m_Reply0001"
    body = form(responses.calls[0])
    assert json.loads(body["recipient"]) == {"id": "7012345678901234"}
    assert json.loads(body["message"]) == {"text": "답변입니다"}
    assert body["messaging_type"] == "RESPONSE"
    assert body["access_token"] == PAGE_ACCESS_TOKEN


@responses.activate
def test_instagram_dm_within_24_hours_and_its_byte_limit():
    account = AccountConfig("meta", "@seoul_official", REPLIER.settings)
    responses.post(
        f"{GRAPH}/{PAGE_ID}/messages",
        json={"recipient_id": "987654321098765", "message_id": "aWdfReply"},
    )
    dm = instagram_dm(timestamp=ms(NOW - timedelta(minutes=5)))
    assert META.send_reply(account, outgoing(dm, account=account)).platform_id == "aWdfReply"
    body = form(responses.calls[0])
    assert json.loads(body["recipient"]) == {"id": "987654321098765"}
    assert "messaging_type" not in body  # the Instagram Send API takes none
    with pytest.raises(PermanentError, match="1000 bytes"):
        META.send_reply(account, outgoing(dm, text="😀" * 251, account=account))
    assert len(responses.calls) == 1


@pytest.mark.parametrize("age", [timedelta(hours=24, seconds=1), timedelta(days=30)])
def test_message_older_than_24_hours_is_outside_the_window_and_sends_nothing(age):
    reply = outgoing(messenger_message(timestamp=ms(NOW - age)))
    with responses.RequestsMock() as stub, pytest.raises(OutsideReplyWindow, match="24-hour"):
        META.send_reply(REPLIER, reply)
    assert len(stub.calls) == 0


def test_no_page_token_needs_reauthorization():
    with pytest.raises(NeedsReauthorization):
        META.send_reply(PAGE, outgoing(page_comment()))


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "wait"),
    [
        (400, graph_error(4), {}, RateLimited, timedelta(minutes=15)),
        (400, graph_error(17), {"X-App-Usage": '{"call_count": 100}'}, RateLimited, None),
        (
            400,
            graph_error(32),
            {"X-Business-Use-Case-Usage": business_usage(42)},
            RateLimited,
            timedelta(minutes=42),
        ),
        (
            400,
            graph_error(613),
            {
                "X-Business-Use-Case-Usage": business_usage(7),
                "X-Page-Usage": '{"call_count": 99, "estimated_time_to_regain_access": 9}',
            },
            RateLimited,
            timedelta(minutes=9),
        ),
        (400, graph_error(80001), {"X-Business-Use-Case-Usage": "not json"}, RateLimited, None),
        (401, graph_error(190, 463, "Session has expired"), {}, NeedsReauthorization, None),
        (400, graph_error(190), {}, NeedsReauthorization, None),
        (403, graph_error(10, None, "Permission denied"), {}, PermanentError, None),
        (403, graph_error(200), {}, PermanentError, None),
        (400, graph_error(100, 33, "Object does not exist"), {}, PermanentError, None),
        (400, graph_error(10, 2018278, "outside of allowed window"), {}, OutsideReplyWindow, None),
        (500, graph_error(2, None, "Service temporarily unavailable"), {}, TransientError, None),
        (502, None, {}, TransientError, None),
        (400, graph_error(1), {}, TransientError, None),
        (400, graph_error(368, None, "Temporarily blocked"), {}, PermanentError, None),
    ],
)
def test_graph_errors_are_mapped(status, body, headers, error, wait):
    stub = responses.RequestsMock()
    with stub:
        stub.post(
            f"{GRAPH}/778899_1200001/comments",
            status=status,
            headers=headers,
            **({"json": body} if body is not None else {"body": "<html>Bad Gateway</html>"}),
        )
        with pytest.raises(error) as caught:
            META.send_reply(REPLIER, outgoing(page_comment()))
    exc = caught.value
    assert type(exc) is error
    assert f"HTTP {status}" in exc.platform_error
    assert PAGE_ACCESS_TOKEN not in str(exc) + exc.platform_error
    if body is not None:
        assert f"#{body['error']['code']}" in exc.platform_error
    if body == graph_error(100, 33, "Object does not exist"):
        assert "no longer exists" in str(exc)
    if error is RateLimited:
        delay = exc.retry_at - datetime.now(UTC)
        expected = wait or timedelta(minutes=15)
        assert expected - timedelta(seconds=30) < delay <= expected


def test_network_error_is_transient_and_never_quotes_the_token():
    with responses.RequestsMock() as stub:
        stub.get(
            f"{GRAPH}/778899_1200001/comments",
            body=requests.ConnectionError(f"url: ?access_token={PAGE_ACCESS_TOKEN}"),
        )
        with pytest.raises(TransientError) as caught:
            META.find_sent(REPLIER, outgoing(page_comment()))
    assert PAGE_ACCESS_TOKEN not in str(caught.value) + caught.value.platform_error


@responses.activate
def test_find_sent_finds_the_pages_comment_with_the_same_text():
    url = f"{GRAPH}/778899_1200001/comments"
    responses.get(
        url,
        json={
            "data": [
                {"id": "778899_1", "message": "답변입니다", "from": {"id": "6543210987654"}},
                {"id": "778899_2", "message": "다른 답변", "from": {"id": PAGE_ID}},
                {"id": "778899_3", "message": "답변입니다", "from": {"id": PAGE_ID}},
            ]
        },
    )
    found = META.find_sent(REPLIER, outgoing(page_comment()))
    assert found is not None and found.platform_id == "778899_3"
    params = parse_qs(responses.calls[0].request.url.split("?", 1)[1])
    assert params["fields"] == ["id,message,from"]
    assert params["access_token"] == [PAGE_ACCESS_TOKEN]
    responses.get(url, json={"data": []})
    assert META.find_sent(REPLIER, outgoing(page_comment(), text="새 답변")) is None


@responses.activate
def test_find_sent_on_instagram_matches_the_accounts_username():
    account = AccountConfig("meta", "@seoul_official", REPLIER.settings)
    responses.get(
        f"{GRAPH}/17865799348089039/replies",
        json={
            "data": [
                {"id": "1", "text": "답변입니다", "username": "someone_else"},
                {"id": "2", "text": "답변입니다", "username": "Seoul_Official"},
            ]
        },
    )
    found = META.find_sent(account, outgoing(instagram_comment(), account=account))
    assert found is not None and found.platform_id == "2"


def test_find_sent_does_not_look_up_messages():
    with responses.RequestsMock() as stub:
        reply = outgoing(messenger_message(timestamp=ms(NOW)))
        assert META.find_sent(REPLIER, reply) is None
    assert len(stub.calls) == 0


# --- replies end to end: webhook → case → published answer → the Graph API request ---------


@pytest.fixture
def meta_only(settings):
    settings.SOTONG_CONNECTORS = ["sotong.channels.connectors.meta.MetaConnector"]
    settings.SOTONG_LOCAL_OUTBOX = False
    connectors.cache_clear()
    yield
    connectors.cache_clear()


def publish(case: Case, people) -> Case:
    case = Case.objects.select_related("unit").get(pk=case.pk)
    assert case.unit is not None
    text = ANSWER.format(unit=case.unit.name, phone=case.unit.phone)
    services.draft_answer(case, text, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"])
    return case


def open_case_for(message: Message) -> Case:
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


def test_signed_feed_comment_opens_a_case_and_the_answer_is_a_comment_reply(
    client, facebook_account, people, meta_only
):
    assert post(client, FACEBOOK_URL, encode(page_comment())).status_code == 200
    run_queued_jobs()
    message = Message.objects.get(external_id="778899_1200001")
    case = message.case_link.case
    assert case.unit.code == "district-jongno"
    publish(case, people)
    with responses.RequestsMock() as stub:
        stub.post(f"{GRAPH}/778899_1200001/comments", json={"id": "778899_1300001"})
        run_queued_jobs()
        (call,) = stub.calls
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "778899_1300001"
    body = form(call)
    assert body["message"] == delivery.text
    assert body["message"].startswith("소중한 의견을 주셔서 감사합니다.")
    assert body["message"].endswith(outbox.public_case_link(case))
    assert body["access_token"] == PAGE_ACCESS_TOKEN
    assert PAGE_ACCESS_TOKEN not in call.request.url


def test_messenger_dm_within_24_hours_is_answered_by_the_send_api(
    client, facebook_account, people, meta_only
):
    sent = NOW - timedelta(hours=2)
    post(client, FACEBOOK_URL, encode(messenger_message(timestamp=ms(sent))))
    run_queued_jobs()
    message = Message.objects.get(external_id="m_AbCdEf0123456789")
    assert message.raw_payload["object"] == "page"
    case = publish(open_case_for(message), people)
    with responses.RequestsMock() as stub:
        stub.post(
            f"{GRAPH}/{PAGE_ID}/messages",
            json={"recipient_id": "7012345678901234", "message_id": "m_Answer01"},
        )
        run_queued_jobs()
        (call,) = stub.calls
    delivery = ReplyDelivery.objects.get(case=case)
    assert (delivery.state, delivery.platform_reply_id) == (ReplyState.SENT, "m_Answer01")
    body = form(call)
    assert json.loads(body["recipient"]) == {"id": "7012345678901234"}
    assert json.loads(body["message"])["text"] == delivery.text
    assert body["messaging_type"] == "RESPONSE"
    assert len(delivery.text) <= 2000


def test_messenger_dm_older_than_24_hours_becomes_reply_elsewhere(
    client, facebook_account, people, meta_only
):
    post(client, FACEBOOK_URL, encode(messenger_message(timestamp=ms(NOW - timedelta(hours=25)))))
    run_queued_jobs()
    message = Message.objects.get(external_id="m_AbCdEf0123456789")
    case = publish(open_case_for(message), people)
    with responses.RequestsMock() as stub:
        run_queued_jobs()
        assert len(stub.calls) == 0
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.MANUAL
    assert "24-hour messaging window has closed" in delivery.last_error
    assert "reply by comment or elsewhere" in delivery.last_error
    assert delivery.platform_reply_id == ""


def test_expired_page_token_fails_the_delivery_with_needs_reauthorization(
    client, facebook_account, people, meta_only
):
    post(client, FACEBOOK_URL, encode(page_comment()))
    run_queued_jobs()
    case = publish(Message.objects.get(external_id="778899_1200001").case_link.case, people)
    with responses.RequestsMock() as stub:
        stub.post(
            f"{GRAPH}/778899_1200001/comments",
            status=400,
            json=graph_error(190, 460, "The session has been invalidated"),
        )
        run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.FAILED
    assert delivery.last_error.startswith("needs re-authorization")
    assert "#190/460" in delivery.last_error


def test_a_message_without_metas_payload_is_answered_elsewhere():
    reply = OutgoingReply("778899_1200001", "답변입니다", "k", raw={"nested": ["ab"]})
    with responses.RequestsMock() as stub, pytest.raises(OutsideReplyWindow, match="elsewhere"):
        META.send_reply(REPLIER, reply)
    assert len(stub.calls) == 0
