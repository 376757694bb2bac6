"""SMS through /hooks/sms/<handle>/: SOLAPI deliveries checked by the account's shared
secret, Twilio deliveries by X-Twilio-Signature; the message, the case it opens, and the
reply the outbox sends (SMS or LMS by EUC-KR bytes, Twilio's form body and auth)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import cast
from urllib.parse import parse_qs

import pytest
import responses
from django.test import Client
from django_q.models import OrmQ

from sotong.cases import services
from sotong.cases.models import Case
from sotong.channels.connectors.base import AccountConfig, OutgoingReply, RateLimited
from sotong.channels.connectors.sms import (
    SOLAPI_SEND_URL,
    SmsConnector,
    cut_to_bytes,
    euc_kr_length,
    euc_kr_text,
    korean_message,
)
from sotong.channels.models import DeliveryState, ReplyDelivery, ReplyState, WebhookDelivery
from sotong.channels.tests import sms_payloads
from sotong.channels.tests.sms_payloads import (
    CITIZEN_INTL,
    CITIZEN_KR,
    CITY_TEXT,
    SOLAPI_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    URL,
    WEBHOOK_SECRET,
    encode,
    post_solapi,
    post_twilio,
    solapi_mo,
    twilio_mo,
    twilio_signature,
)
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

KST = timezone(timedelta(hours=9))
solapi_account = sms_payloads.solapi_account
twilio_account = sms_payloads.twilio_account
TWILIO_SEND_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
SHORT_ANSWER = "보안등을 교체했습니다. 감사합니다."


@pytest.fixture
def client() -> Client:
    return Client()


def publish(case: Case, people, text: str) -> None:
    OrmQ.objects.all().delete()
    services.draft_answer(case, text, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"], override_reason="SMS 답변 시험")


def solapi_accepted(message_id: str = "M4V20261125100000REPLYAAAAAAAA1") -> dict:
    return {
        "groupId": "G4V20261125100000GROUPAAAAAAAAA1",
        "to": CITIZEN_KR,
        "from": "021200120",
        "type": "SMS",
        "statusMessage": "정상 접수(이통사로 접수 예정) ",
        "country": "82",
        "messageId": message_id,
        "statusCode": "2000",
        "accountId": "12925149",
    }


# --- SOLAPI inbound ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["query", "header"])
def test_solapi_text_becomes_a_message_and_opens_a_case(client, solapi_account, how, caplog):
    with caplog.at_level(logging.DEBUG):
        answer = post_solapi(client, encode(solapi_mo()), how=how)
        assert answer.status_code == 200, answer.content
        run_queued_jobs()
    message = Message.objects.select_related("channel").get()
    assert message.channel.code == "sms" and message.account == solapi_account
    assert message.external_id == "solapi:M4V20261125093000MOAAAAAAAAAAA1"
    assert message.author_handle == CITIZEN_KR
    assert message.text == CITY_TEXT
    assert message.sent_at == datetime(2026, 11, 25, 9, 30, tzinfo=KST)
    assert message.raw_payload["gateway"] == "solapi"
    case = Case.objects.get()
    assert message.case_link.case == case and case.unit.code == "district-jongno"
    # The citizen's number and the secret are never logged.
    assert CITIZEN_KR not in caplog.text and WEBHOOK_SECRET not in caplog.text
    stored = WebhookDelivery.objects.get()
    assert WEBHOOK_SECRET not in json.dumps(stored.headers)


@pytest.mark.parametrize(
    ("secret", "how"),
    [(None, "query"), ("wrong-secret", "query"), ("wrong-secret", "header"), ("", "query")],
    ids=["missing", "forged-query", "forged-header", "empty"],
)
def test_solapi_without_the_secret_is_refused(client, solapi_account, secret, how, caplog):
    with caplog.at_level(logging.WARNING):
        answer = post_solapi(client, encode(solapi_mo()), secret=secret, how=how)
    assert answer.status_code == 403
    assert WebhookDelivery.objects.count() == 0 and Message.objects.count() == 0
    assert CITIZEN_KR not in caplog.text


def test_solapi_replayed_ten_times_is_one_message(client, solapi_account):
    body = encode(solapi_mo())
    for _ in range(10):
        assert post_solapi(client, body).status_code == 200
    # The same message in another envelope (a gateway retry with a new event id).
    again = solapi_mo()
    again[0]["eventDataId"], again[0]["retryCount"] = "E-retry", 1
    assert post_solapi(client, encode(again)).status_code == 200
    run_queued_jobs()
    assert Message.objects.count() == 1 and Case.objects.count() == 1
    assert WebhookDelivery.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"data": {', "not valid JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"[]", "no event"),
        (
            encode([{"eventDataId": "x", "data": {"messageId": "M1", "statusCode": "4000"}}]),
            "1 event",
        ),
        (encode(["text", 5]), "2 event"),
    ],
    ids=["truncated", "not-utf8", "empty-list", "delivery-report", "not-objects"],
)
def test_solapi_malformed_or_unknown_is_stored_and_ignored(client, solapi_account, body, reason):
    assert post_solapi(client, body).status_code == 200
    run_queued_jobs()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.IGNORED and reason in delivery.reason
    assert Message.objects.count() == 0


def test_script_in_a_text_is_kept_as_text(client, solapi_account):
    payload = solapi_mo(text="<script>alert(1)</script> 보안등 고장")
    assert post_solapi(client, encode(payload)).status_code == 200
    run_queued_jobs()
    assert Message.objects.get().text == "<script>alert(1)</script> 보안등 고장"


# --- Twilio inbound -------------------------------------------------------------------------


def test_twilio_text_signed_over_the_public_url_is_stored(client, twilio_account):
    params = twilio_mo()
    answer = post_twilio(client, params)
    assert answer.status_code == 200, answer.content
    run_queued_jobs()
    message = Message.objects.get()
    assert message.external_id == "twilio:SM1f0e5a6b2c3d4e5f60718293a4b5c6d7"
    assert message.author_handle == CITIZEN_INTL
    assert message.text.startswith("Streetlight out")
    assert message.raw_payload["MessageSid"] == params["MessageSid"]


@pytest.mark.parametrize(
    "signature",
    [
        None,
        twilio_signature(twilio_mo(), token="not-the-token"),
        twilio_signature(twilio_mo(), url="http://evil.example/hooks/sms/120/"),
        twilio_signature(twilio_mo(body="another text")),
        "",
    ],
    ids=["missing", "other-token", "other-url", "other-body", "empty"],
)
def test_twilio_forged_signature_is_refused(client, twilio_account, signature):
    assert post_twilio(client, twilio_mo(), signature=signature).status_code == 403
    assert WebhookDelivery.objects.count() == 0


def test_twilio_replay_and_status_callback(client, twilio_account):
    for _ in range(10):
        assert post_twilio(client, twilio_mo()).status_code == 200
    status = {"MessageSid": "SMabc", "MessageStatus": "delivered", "AccountSid": TWILIO_SID}
    assert post_twilio(client, status).status_code == 200
    run_queued_jobs()
    assert Message.objects.count() == 1
    assert WebhookDelivery.objects.filter(state=DeliveryState.IGNORED).count() == 1


def test_twilio_non_utf8_body_is_refused(client, twilio_account):
    answer = client.generic(
        "POST",
        URL,
        b"Body=%FF\xff",
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE="abc",
    )
    assert answer.status_code == 403


# --- length rule and encoding ------------------------------------------------------------------


def test_euc_kr_counting_and_replacement():
    assert euc_kr_length("가a") == 3
    assert euc_kr_text("보안등 😀 똠 – ﬁ") == "보안등 ? ? - fi"
    assert korean_message("가" * 45)[0] == "SMS"
    kind, text = korean_message("가" * 46)
    assert kind == "LMS" and len(text.encode("euc_kr")) == 92
    cut = cut_to_bytes("a" + "가" * 1000, 2000)
    assert len(cut.encode("euc_kr")) == 1999 and cut.endswith("가")


# --- replies through the outbox ---------------------------------------------------------------


def solapi_sent() -> list[dict]:
    return [json.loads(cast(bytes, c.request.body))["message"] for c in responses.calls]


@responses.activate
def test_short_answer_goes_out_as_sms(client, solapi_account, people, settings):
    settings.PUBLIC_URL = "https://s.kr"
    responses.post(SOLAPI_SEND_URL, json=solapi_accepted())
    post_solapi(client, encode(solapi_mo()))
    run_queued_jobs()
    case = Case.objects.get()
    publish(case, people, SHORT_ANSWER)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get()
    assert delivery.state == ReplyState.SENT, delivery.last_error
    assert delivery.platform_reply_id == "solapi:M4V20261125100000REPLYAAAAAAAA1"
    [sent] = solapi_sent()
    assert sent["type"] == "SMS" and sent["to"] == CITIZEN_KR and sent["from"] == "021200120"
    assert sent["text"].startswith(SHORT_ANSWER) and sent["text"].endswith(f"/cases/{case.number}/")
    assert len(sent["text"].encode("euc_kr")) <= 90
    auth = responses.calls[0].request.headers["Authorization"]
    assert auth.startswith(f"HMAC-SHA256 ApiKey={SOLAPI_KEY}, Date=") and "signature=" in auth


@responses.activate
def test_long_answer_goes_out_as_lms_within_2000_bytes_with_unencodable_replaced(
    client, solapi_account, people
):
    responses.post(SOLAPI_SEND_URL, json=solapi_accepted())
    post_solapi(client, encode(solapi_mo()))
    run_queued_jobs()
    case = Case.objects.get()
    text = "소중한 의견 감사합니다 😀 보안등을 교체하였습니다. " + "다시 한 번 감사드립니다. " * 120
    publish(case, people, text)
    run_queued_jobs()
    assert ReplyDelivery.objects.get().state == ReplyState.SENT
    [sent] = solapi_sent()
    assert sent["type"] == "LMS" and sent["subject"]
    assert "😀" not in sent["text"] and "감사합니다 ? 보안등" in sent["text"]
    assert 90 < len(sent["text"].encode("euc_kr")) <= 2000
    assert sent["text"].endswith(f"/cases/{case.number}/")  # cut before the link, not after


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "state", "error"),
    [
        (
            401,
            {"errorCode": "InvalidApiKey", "errorMessage": "bad key"},
            ReplyState.FAILED,
            "re-authorization",
        ),
        (
            400,
            {"errorCode": "ValidationError", "errorMessage": "to"},
            ReplyState.FAILED,
            "ValidationError",
        ),
        (503, {"errorCode": "UnknownError"}, ReplyState.PENDING, "SOLAPI error 503"),
        (429, {"errorCode": "TooManyRequests"}, ReplyState.PENDING, "rate limit"),
    ],
)
def test_solapi_errors_are_mapped(client, solapi_account, people, status, body, state, error):
    responses.post(SOLAPI_SEND_URL, json=body, status=status)
    post_solapi(client, encode(solapi_mo()))
    run_queued_jobs()
    publish(Case.objects.get(), people, SHORT_ANSWER)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get()
    assert delivery.state == state and error in delivery.last_error


def test_twilio_rate_limit_is_rate_limited():
    connector = SmsConnector()
    account = AccountConfig(
        "sms",
        "120",
        {
            "gateway": "twilio",
            "twilio_account_sid": TWILIO_SID,
            "twilio_auth_token": TWILIO_TOKEN,
            "sender_number": "+1",
        },
    )
    reply = OutgoingReply("twilio:SM1", "hi", "k", author=CITIZEN_INTL)
    with responses.RequestsMock() as mock:
        mock.post(TWILIO_SEND_URL, json={"code": 20429, "message": "Too Many Requests"}, status=429)
        with pytest.raises(RateLimited):
            connector.send_reply(account, reply)


@responses.activate
def test_twilio_reply_form_body_and_basic_auth(client, twilio_account, people):
    responses.post(TWILIO_SEND_URL, json={"sid": "SMreply0001", "status": "queued"}, status=201)
    post_twilio(client, twilio_mo(body=CITY_TEXT))  # a visitor writing in Korean
    run_queued_jobs()
    case = Case.objects.get()
    publish(case, people, SHORT_ANSWER)
    run_queued_jobs()
    delivery = ReplyDelivery.objects.get()
    assert delivery.state == ReplyState.SENT and delivery.platform_reply_id == "twilio:SMreply0001"
    request = responses.calls[0].request
    form = parse_qs(request.body)
    assert form["To"] == [CITIZEN_INTL] and form["From"] == ["+12025550100"]
    assert form["Body"][0].startswith(SHORT_ANSWER)
    expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
