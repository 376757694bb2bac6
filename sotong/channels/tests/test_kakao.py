"""KakaoTalk channel: the skill endpoint answers each citizen's message within Kakao's five
seconds with the receipt (case number, expected answer date, link) in the documented
SkillResponse; forged calls are refused; a published answer goes out through the Event API.

The endpoint tests use the transactional database: the skill's ingest runs on a thread of
its own (so that the request can answer when the budget is spent), which must see what the
test wrote."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from django.test import Client
from django.utils import timezone

from sotong.cases import services as case_services
from sotong.cases.models import Case
from sotong.channels import receipts
from sotong.channels import services as channel_services
from sotong.channels.connectors.base import (
    AccountConfig,
    NeedsReauthorization,
    OutgoingReply,
    PermanentError,
    RateLimited,
    SignatureInvalid,
    TransientError,
    WebhookRequest,
)
from sotong.channels.connectors.kakao import (
    SIMPLE_TEXT_LIMIT,
    KakaoConnector,
    message_id,
    skill_response,
)
from sotong.channels.connectors.registry import connector_for, connector_for_channel
from sotong.channels.models import (
    DeliveryState,
    ReplyDelivery,
    ReplyKind,
    ReplyState,
    WebhookDelivery,
)
from sotong.channels.tests import kakao_payloads
from sotong.channels.tests.kakao_payloads import (
    BOT_ID,
    BOT_USER_KEY,
    CITY_TEXT,
    EVENT_URL,
    REST_API_KEY,
    SKILL_SECRET,
    encode,
    post,
    skill_payload,
)
from sotong.directory.models import Account
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

KAKAO = KakaoConnector()
ACCOUNT = AccountConfig(
    "kakao",
    "@seoultalk",
    {"skill_secret": SKILL_SECRET, "bot_id": BOT_ID, "rest_api_key": REST_API_KEY},
)


def request(payload=None, *, body: bytes | None = None, secret: str | None = SKILL_SECRET):
    body = encode(payload) if body is None else body
    headers = {"x-sotong-skill-secret": secret} if secret is not None else {}
    return WebhookRequest("POST", {}, headers, body)


def skill_text(answer) -> str:
    """The text of a SkillResponse, checked to be the documented shape."""
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("application/json")
    data = json.loads(answer.content)
    assert data["version"] == "2.0"
    [output] = data["template"]["outputs"]
    text = output["simpleText"]["text"]
    assert 0 < len(text) <= SIMPLE_TEXT_LIMIT
    return text


# --- The connector over plain data -----------------------------------------------------------


def test_registered_for_the_kakao_channel():
    assert isinstance(connector_for("kakao"), KakaoConnector)
    assert connector_for_channel("kakao") is connector_for("kakao")
    assert isinstance(connector_for("kakao"), receipts.AnswersInline)
    assert not isinstance(connector_for("meta"), receipts.AnswersInline)
    secret = {f.name: f.secret for f in KAKAO.settings_fields}
    assert secret == {
        "skill_secret": True,
        "bot_id": False,
        "rest_api_key": True,
        "event_name": False,
    }
    assert "/hooks/kakao/" in KAKAO.settings_fields[0].help


def test_secret_header_and_bot_id_are_checked():
    KAKAO.verify(ACCOUNT, request(skill_payload()))
    KAKAO.verify(ACCOUNT, request(skill_payload(bot_id=BOT_ID + "!")))  # development channel
    for bad in (
        request(skill_payload(), secret=None),
        request(skill_payload(), secret=""),
        request(skill_payload(), secret=SKILL_SECRET + "x"),
        request(skill_payload(bot_id="another-bot")),
    ):
        with pytest.raises(SignatureInvalid):
            KAKAO.verify(ACCOUNT, bad)
    with pytest.raises(SignatureInvalid):
        KAKAO.verify(AccountConfig("kakao", "x", {"bot_id": BOT_ID}), request(skill_payload()))
    with pytest.raises(SignatureInvalid):
        KAKAO.verify(AccountConfig("kakao", "x", {"skill_secret": SKILL_SECRET}), request({}))
    # Authenticated but unreadable: let through, to be stored and answered as unreadable.
    KAKAO.verify(ACCOUNT, request(body=b'{"userRequest": '))


def test_skill_payload_becomes_a_message():
    body = encode(skill_payload())
    parsed = KAKAO.parse(ACCOUNT, request(body=body))
    [message] = parsed.messages
    assert (message.channel, message.account, message.author) == (
        "kakao",
        "@seoultalk",
        BOT_USER_KEY,
    )
    assert message.text == CITY_TEXT
    assert message.external_id == message_id(body) and message.external_id.startswith("kakao-")
    assert message.sent_at is None and message.in_reply_to == ""
    assert message.raw["userRequest"]["user"]["type"] == "botUserKey"
    assert message.raw["bot"]["id"] == BOT_ID
    assert "action" not in message.raw  # only what the reply needs is kept
    # The same call delivered again is the same message; another one is not.
    assert KAKAO.parse(ACCOUNT, request(body=body)).messages[0].external_id == message.external_id
    other = KAKAO.parse(ACCOUNT, request(skill_payload("다른 글"))).messages[0]
    assert other.external_id != message.external_id


def test_unusable_payloads_are_ignored_or_refused_as_input():
    assert KAKAO.parse(ACCOUNT, request(skill_payload("   "))).ignored == 1
    for body in (b"[1, 2]", b'{"bot": {}}', b'{"userRequest": {"user": "x"}}', b"\xff\xfe"):
        with pytest.raises(Exception) as caught:
            KAKAO.parse(ACCOUNT, request(body=body))
        assert caught.type.__name__ == "InvalidInput"


def test_skill_response_is_cut_to_the_simple_text_limit():
    long = skill_response("가" * 1500)
    text = long["template"]["outputs"][0]["simpleText"]["text"]
    assert len(text) == SIMPLE_TEXT_LIMIT and text.endswith("…")
    assert skill_response("  ")["template"]["outputs"][0]["simpleText"]["text"]


def reply(text: str = "답변입니다.\n\nhttp://127.0.0.1:8000/cases/S0000001/") -> OutgoingReply:
    raw = skill_payload()
    return OutgoingReply(
        in_reply_to="kakao-abc",
        text=text,
        idempotency_key="sotong-S0000001-a1-m1",
        author=BOT_USER_KEY,
        raw={"bot": raw["bot"], "userRequest": raw["userRequest"]},
    )


@responses.activate
def test_send_reply_posts_the_event_api_request():
    responses.post(EVENT_URL, json={"taskId": "task-123", "status": "SUCCESS", "message": ""})
    sent = KAKAO.send_reply(ACCOUNT, reply())
    assert sent.platform_id == "task-123"
    [call] = responses.calls
    assert call.request.url == EVENT_URL
    assert call.request.headers["Authorization"] == f"KakaoAK {REST_API_KEY}"
    assert call.request.headers["Content-Type"] == "application/json"
    assert json.loads(call.request.body) == {
        "event": {"name": "sotong_answer", "data": {"text": reply().text}},
        "user": [{"type": "botUserKey", "id": BOT_USER_KEY}],
    }


@responses.activate
def test_send_reply_goes_to_the_development_bot_the_citizen_used():
    dev_url = f"https://bot-api.kakao.com/v2/bots/{BOT_ID}!/talk"
    responses.post(dev_url, json={"taskId": "t", "status": "SUCCESS"})
    message = reply()
    raw = dict(message.raw)
    raw["bot"] = {"id": BOT_ID + "!", "name": "서울톡"}
    custom = AccountConfig("kakao", "@seoultalk", {**ACCOUNT.settings, "event_name": "answer"})
    KAKAO.send_reply(custom, OutgoingReply("k", "text", "key", author=BOT_USER_KEY, raw=raw))
    assert json.loads(responses.calls[0].request.body)["event"]["name"] == "answer"


@responses.activate
def test_event_api_errors_are_mapped():
    now = datetime.now(UTC)
    responses.post(
        EVENT_URL, status=429, json={"code": -10, "msg": "limit"}, headers={"Retry-After": "120"}
    )
    with pytest.raises(RateLimited) as limited:
        KAKAO.send_reply(ACCOUNT, reply())
    assert limited.value.retry_at >= now + timedelta(seconds=119)
    responses.replace(
        responses.POST, EVENT_URL, status=401, json={"code": -401, "msg": "invalid appkey"}
    )
    with pytest.raises(NeedsReauthorization) as revoked:
        KAKAO.send_reply(ACCOUNT, reply())
    assert "-401" in revoked.value.platform_error
    responses.replace(responses.POST, EVENT_URL, status=503, body="busy")
    with pytest.raises(TransientError):
        KAKAO.send_reply(ACCOUNT, reply())
    responses.replace(responses.POST, EVENT_URL, status=400, json={"code": -2, "msg": "bad event"})
    with pytest.raises(PermanentError):
        KAKAO.send_reply(ACCOUNT, reply())
    responses.replace(responses.POST, EVENT_URL, json={"status": "FAIL", "message": "no block"})
    with pytest.raises(PermanentError):
        KAKAO.send_reply(ACCOUNT, reply())
    responses.replace(responses.POST, EVENT_URL, body=requests.ConnectionError("down"))
    with pytest.raises(TransientError):
        KAKAO.send_reply(ACCOUNT, reply())
    no_key = AccountConfig("kakao", "@seoultalk", {"bot_id": BOT_ID})
    with pytest.raises(PermanentError):
        KAKAO.send_reply(no_key, reply())


# --- The skill endpoint ------------------------------------------------------------------------


@pytest.fixture
def kakao_account(transactional_db, directory) -> Account:
    account = Account.objects.get(channel__code="kakao", handle=kakao_payloads.HANDLE)
    return kakao_payloads.configure(account)


def test_skill_call_is_answered_with_the_receipt(kakao_account):
    started = time.monotonic()
    answer = post(Client(), encode(skill_payload()))
    elapsed = time.monotonic() - started
    text = skill_text(answer)
    message = Message.objects.get()
    assert message.channel.code == "kakao" and message.account == kakao_account
    assert message.author_handle == BOT_USER_KEY and message.text == CITY_TEXT
    case = Case.objects.get()
    assert message.case_link.case == case and case.unit.code == "district-jongno"
    assert f"접수번호: {case.number}" in text
    assert f"답변 예정일: {receipts.expected_date(case)}" in text
    assert text.endswith(f"http://127.0.0.1:8000/cases/{case.number}/")
    # The answer is the receipt: recorded as sent, so none goes out again.
    receipt = ReplyDelivery.objects.get(case=case)
    assert (receipt.kind, receipt.state, receipt.text) == (ReplyKind.RECEIPT, ReplyState.SENT, text)
    assert WebhookDelivery.objects.get().state == DeliveryState.PROCESSED
    assert elapsed < 5
    receipts.set_receipts(kakao_account, True)
    assert receipts.deliver_receipts([case.pk]) == [] and receipts.sweep_receipts() == 0
    run_queued_jobs()
    assert ReplyDelivery.objects.count() == 1 and Message.objects.count() == 1


@pytest.mark.parametrize(
    "secret,payload",
    [
        (None, skill_payload()),
        ("wrong-secret", skill_payload()),
        (SKILL_SECRET, skill_payload(bot_id="5f00000000000000000000ff")),
    ],
    ids=["missing", "forged", "other-bot"],
)
def test_forged_or_unsigned_calls_are_refused(kakao_account, secret, payload):
    answer = post(Client(), encode(payload), secret=secret)
    assert answer.status_code == 401
    assert WebhookDelivery.objects.count() == 0 and Message.objects.count() == 0


def test_malformed_json_is_stored_and_answered_with_a_valid_response(kakao_account):
    answer = post(Client(), '{"userRequest": {"utterance": "보안등'.encode())
    assert skill_text(answer) == receipts.UNREADABLE_TEXT
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.IGNORED and "not valid JSON" in delivery.reason
    assert Message.objects.count() == 0


def test_unknown_payload_version_is_answered_and_ignored(kakao_account):
    body = encode({"bot": {"id": BOT_ID}, "userRequest": {"utterance": "안녕"}})
    assert skill_text(post(Client(), body)) == receipts.UNREADABLE_TEXT
    assert WebhookDelivery.objects.get().state == DeliveryState.IGNORED


def test_replayed_call_is_one_message_one_case_one_receipt(kakao_account):
    body = encode(skill_payload())
    texts = {skill_text(post(Client(), body)) for _ in range(10)}
    assert len(texts) == 1
    assert Message.objects.count() == 1 and Case.objects.count() == 1
    assert WebhookDelivery.objects.count() == 1
    assert ReplyDelivery.objects.filter(kind=ReplyKind.RECEIPT).count() == 1
    run_queued_jobs()
    assert Message.objects.count() == 1 and Case.objects.count() == 1


def test_message_outside_city_administration_is_thanked(kakao_account):
    text = skill_text(post(Client(), encode(skill_payload("ㅋㅋㅋ 안녕하세요 좋은 하루 되세요"))))
    if Case.objects.exists():  # the triage rules took it as a matter after all
        pytest.skip("the shipped rules open a case for this text")
    assert text in {receipts.THANKS_TEXT, receipts.pending_text(False)}
    assert not ReplyDelivery.objects.exists()


@responses.activate
def test_slow_ingest_is_answered_in_time_and_the_receipt_follows(kakao_account, monkeypatch):
    receipts.set_receipts(kakao_account, True)
    monkeypatch.setattr(KakaoConnector, "inline_budget", 0.3)
    release = threading.Event()
    real_triage = channel_services.triage_messages

    def slow_triage(ids):
        release.wait(10)
        return real_triage(ids)

    monkeypatch.setattr(channel_services, "triage_messages", slow_triage)
    started = time.monotonic()
    answer = post(Client(), encode(skill_payload()))
    assert time.monotonic() - started < 2
    assert skill_text(answer) == receipts.pending_text(True)
    assert not Case.objects.exists()
    release.set()
    channel_services.wait_for_inline_work(10)
    case = Case.objects.get()
    assert not ReplyDelivery.objects.exists()  # the answer carried no case number

    # Within the grace the receipt waits (the answer might have carried it); then the
    # sweep sends it through the Event API, once.
    assert receipts.deliver_receipts([case.pk]) == []
    moment = timezone.now() + timedelta(minutes=2)
    monkeypatch.setattr(timezone, "now", lambda: moment)
    responses.post(EVENT_URL, json={"taskId": "task-receipt", "status": "SUCCESS"})
    assert receipts.sweep_receipts() == 1
    run_queued_jobs()
    assert receipts.sweep_receipts() == 0
    receipt = ReplyDelivery.objects.get()
    assert (receipt.kind, receipt.state) == (ReplyKind.RECEIPT, ReplyState.SENT)
    assert receipt.platform_reply_id == "task-receipt" and receipt.answer is None
    [call] = responses.calls
    sent = json.loads(call.request.body)
    assert sent["user"] == [{"type": "botUserKey", "id": BOT_USER_KEY}]
    assert f"접수번호: {case.number}" in sent["event"]["data"]["text"]
    assert sent["event"]["data"]["text"] == receipt.text


@responses.activate
def test_published_answer_goes_out_through_the_event_api(kakao_account, people):
    skill_text(post(Client(), encode(skill_payload())))
    run_queued_jobs()
    case = Case.objects.select_related("unit").get()
    case_services.draft_answer(
        case,
        "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
        "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
        f"{case.unit.name}(☎{case.unit.phone})로 연락주시면 성심껏 답변드리겠습니다. "
        + "자세한 공사 일정은 구청 누리집에 안내합니다. "
        * 40,
        actor=people["jongno"],
    )
    case_services.publish_answer(case, actor=people["jongno"])
    responses.post(EVENT_URL, json={"taskId": "task-answer", "status": "SUCCESS"})
    run_queued_jobs()
    answer_delivery = ReplyDelivery.objects.get(kind=ReplyKind.ANSWER)
    assert answer_delivery.state == ReplyState.SENT
    assert answer_delivery.platform_reply_id == "task-answer"
    [call] = responses.calls
    assert call.request.url == EVENT_URL
    assert call.request.headers["Authorization"] == f"KakaoAK {REST_API_KEY}"
    sent = json.loads(call.request.body)
    assert sent["user"] == [{"type": "botUserKey", "id": BOT_USER_KEY}]
    assert sent["event"]["name"] == "sotong_answer"
    text = sent["event"]["data"]["text"]
    assert text == answer_delivery.text and len(text) <= SIMPLE_TEXT_LIMIT
    assert text.endswith(f"…\n\nhttp://127.0.0.1:8000/cases/{case.number}/")
    assert text.startswith("소중한 의견을 주셔서 감사합니다.")
