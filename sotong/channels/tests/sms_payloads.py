"""SMS gateway deliveries for the tests, in each gateway's documented shape, and ways to
post them as the gateway would (Twilio signed with its real scheme, SOLAPI with the
account's shared secret)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client
from twilio.request_validator import RequestValidator

from sotong.channels.credentials import set_account_setting
from sotong.directory.models import Account

HANDLE = "120"
URL = f"/hooks/sms/{HANDLE}/"
WEBHOOK_SECRET = "sms-hook-secret-8d1f0c7e2b"
SOLAPI_KEY, SOLAPI_SECRET = "NCSTESTKEY0001", "solapi-api-secret-4e7a"
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token-91b3"
CITIZEN_KR = "01098765432"
CITIZEN_INTL = "+14155550123"
CITY_TEXT = "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. 고쳐주세요"


def configure(account: Account, gateway: str) -> Account:
    set_account_setting(account, "gateway", gateway)
    if gateway == "solapi":
        set_account_setting(account, "webhook_secret", WEBHOOK_SECRET)
        set_account_setting(account, "solapi_api_key", SOLAPI_KEY)
        set_account_setting(account, "solapi_api_secret", SOLAPI_SECRET)
        set_account_setting(account, "sender_number", "02-120-0120")
    else:
        set_account_setting(account, "twilio_account_sid", TWILIO_SID)
        set_account_setting(account, "twilio_auth_token", TWILIO_TOKEN)
        set_account_setting(account, "sender_number", "+12025550100")
    return account


@pytest.fixture
def solapi_account(directory) -> Account:
    return configure(Account.objects.get(channel__code="sms", handle=HANDLE), "solapi")


@pytest.fixture
def twilio_account(directory) -> Account:
    return configure(Account.objects.get(channel__code="sms", handle=HANDLE), "twilio")


# SOLAPI's webhook envelope (solapi SDK, model/webhook/single_report.py: a list of
# {eventDataId, data, retryCount}) with SOLAPI's message fields in `data`.
def solapi_mo(
    message_id: str = "M4V20261125093000MOAAAAAAAAAAA1",
    text: str = CITY_TEXT,
    sender: str = CITIZEN_KR,
    date: str = "2026-11-25 09:30:00",
) -> list[dict[str, Any]]:
    data = {
        "messageId": message_id,
        "from": sender,
        "to": "120",
        "type": "SMS",
        "text": text,
        "dateReceived": date,
    }
    return [{"eventDataId": "E" + message_id[1:], "data": data, "retryCount": 0}]


def post_solapi(client: Client, body: bytes, secret: str | None = WEBHOOK_SECRET, how="query"):
    url, headers = URL, dict[str, Any]()
    if secret is not None and how == "query":
        url = f"{URL}?secret={secret}"
    elif secret is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client.generic("POST", url, body, content_type="application/json", **headers)


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


# Twilio's incoming-message webhook (twilio.com/docs/messaging/guides/webhook-request):
# application/x-www-form-urlencoded parameters.
def twilio_mo(
    sid: str = "SM1f0e5a6b2c3d4e5f60718293a4b5c6d7",
    body: str = "Streetlight out on Changsin-dong alley, Jongno-gu. Please fix",
    sender: str = CITIZEN_INTL,
) -> dict[str, str]:
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": "+12025550100",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": TWILIO_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def twilio_signature(params: dict[str, str], token: str = TWILIO_TOKEN, url: str = "") -> str:
    return RequestValidator(token).compute_signature(url or settings.PUBLIC_URL + URL, params)


def post_twilio(client: Client, params: dict[str, str], signature: str | None = "sign"):
    body = urlencode(params).encode()
    headers: dict[str, Any] = {}
    if signature == "sign":
        headers["HTTP_X_TWILIO_SIGNATURE"] = twilio_signature(params)
    elif signature is not None:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    return client.generic(
        "POST", URL, body, content_type="application/x-www-form-urlencoded", **headers
    )
