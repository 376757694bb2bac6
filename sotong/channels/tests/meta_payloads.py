"""Meta webhook payloads for the tests, each in the shape Meta documents (the source is
named on each), and a way to sign and post them as Meta would."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from django.test import Client

from sotong.channels.credentials import set_account_setting
from sotong.directory.models import Account

APP_SECRET = "test-app-secret-3f9a"
VERIFY_TOKEN = "test-verify-token-71c2"
PAGE_ACCESS_TOKEN = "test-page-token-EAAG9b"
PAGE_ID = "104512345678901"
GRAPH = "https://graph.facebook.com/v25.0"
FACEBOOK_URL = "/hooks/meta/seoulcity/"
INSTAGRAM_URL = "/hooks/meta/@seoul_official/"

CITY_TEXT = (
    "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. 빨리 고쳐주세요"
)


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def post(client: Client, url: str, body: bytes, signature: str | None = "sign") -> Any:
    headers: dict[str, Any] = {}
    if signature == "sign":
        headers["HTTP_X_HUB_SIGNATURE_256"] = sign(body)
    elif signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    return client.generic("POST", url, body, content_type="application/json", **headers)


def configure(account: Account) -> Account:
    set_account_setting(account, "app_secret", APP_SECRET)
    set_account_setting(account, "verify_token", VERIFY_TOKEN)
    set_account_setting(account, "page_id", PAGE_ID)
    set_account_setting(account, "page_access_token", PAGE_ACCESS_TOKEN)
    return account


@pytest.fixture
def facebook_account(directory) -> Account:
    return configure(Account.objects.get(channel__code="facebook", handle="seoulcity"))


@pytest.fixture
def instagram_account(directory) -> Account:
    return configure(Account.objects.get(channel__code="instagram", handle="@seoul_official"))


# Graph API webhooks reference, Page object, field `feed`
# (developers.facebook.com/docs/graph-api/webhooks/reference/page/#feed): entry[].changes[]
# with value.item "comment", verb "add"/"remove", comment_id, post_id, parent_id, from,
# message, created_time (Unix seconds).
def page_comment(
    comment_id: str = "778899_1200001",
    text: str = CITY_TEXT,
    verb: str = "add",
    item: str = "comment",
    created_time: int = 1795564800,  # 2026-11-25 09:00 KST
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "from": {"id": "6543210987654", "name": "김시민"},
        "post": {"status_type": "added_photos", "is_published": True, "id": f"{PAGE_ID}_778899"},
        "post_id": f"{PAGE_ID}_778899",
        "comment_id": comment_id,
        "parent_id": f"{PAGE_ID}_778899",
        "created_time": created_time,
        "item": item,
        "verb": verb,
    }
    if verb != "remove":
        value["message"] = text
    return {
        "object": "page",
        "entry": [
            {"id": PAGE_ID, "time": created_time, "changes": [{"field": "feed", "value": value}]}
        ],
    }


# Messenger Platform webhook events, `messages`
# (developers.facebook.com/docs/messenger-platform/reference/webhook-events/messages):
# entry[].messaging[] with sender.id (PSID), recipient.id (page), timestamp (ms),
# message.mid, message.text; `message_echoes` carry message.is_echo.
def messenger_message(
    mid: str = "m_AbCdEf0123456789",
    text: str = "시청 앞 버스정류장 안내판이 고장났어요",
    is_echo: bool = False,
    timestamp: int = 1795582859000,
) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid, "text": text}
    if is_echo:
        message["is_echo"] = True
        message["app_id"] = 1517776481860111
    return {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": 1795582860123,
                "messaging": [
                    {
                        "sender": {"id": "7012345678901234"},
                        "recipient": {"id": PAGE_ID},
                        "timestamp": timestamp,
                        "message": message,
                    }
                ],
            }
        ],
    }


# Instagram Platform webhook notification examples, `comments`
# (developers.facebook.com/docs/instagram-platform/webhooks/examples and the Graph API
# webhooks reference, Instagram `comments`): value.id, value.text, value.from.{id,username},
# value.media.{id,media_product_type}, value.parent_id on a reply.
def instagram_comment(comment_id: str = "17865799348089039", text: str = CITY_TEXT) -> dict:
    return {
        "object": "instagram",
        "entry": [
            {
                "id": "17841405309211844",
                "time": 1795582900,
                "changes": [
                    {
                        "field": "comments",
                        "value": {
                            "id": comment_id,
                            "from": {"id": "232323232", "username": "seoul_citizen"},
                            "text": text,
                            "media": {"id": "17887498072083520", "media_product_type": "FEED"},
                        },
                    }
                ],
            }
        ],
    }


# Same examples page, `mentions`: value carries only media_id and comment_id.
def instagram_mention() -> dict:
    return {
        "object": "instagram",
        "entry": [
            {
                "id": "17841405309211844",
                "time": 1795582900,
                "changes": [
                    {
                        "field": "mentions",
                        "value": {
                            "media_id": "17887498072083520",
                            "comment_id": "17895695668004550",
                        },
                    }
                ],
            }
        ],
    }


# Same examples page, messaging payload: entry[].messaging[] with sender.id (IGSID),
# recipient.id, timestamp (ms), message.mid, message.text; message.is_deleted on unsend.
def instagram_dm(
    mid: str = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1",
    deleted: bool = False,
    timestamp: int = 1795582999000,
):
    message: dict[str, Any] = {"mid": mid}
    if deleted:
        message["is_deleted"] = True
    else:
        message["text"] = "한강공원 화장실이 너무 더러워요. 청소 부탁드립니다"
    return {
        "object": "instagram",
        "entry": [
            {
                "id": "17841405309211844",
                "time": 1795583000000,
                "messaging": [
                    {
                        "sender": {"id": "987654321098765"},
                        "recipient": {"id": "17841405309211844"},
                        "timestamp": timestamp,
                        "message": message,
                    }
                ],
            }
        ],
    }


# Graph API error objects ("Handling Errors", developers.facebook.com/docs/graph-api/guides/
# error-handling): {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}.
def graph_error(code: int, subcode: int | None = None, message: str = "error") -> dict:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGhIjK",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


# Rate Limits (developers.facebook.com/docs/graph-api/overview/rate-limiting): the
# X-Business-Use-Case-Usage header maps a business object id to its usage, with
# estimated_time_to_regain_access in minutes.
def business_usage(minutes: int, object_id: str = PAGE_ID) -> str:
    return json.dumps(
        {
            object_id: [
                {
                    "type": "pages",
                    "call_count": 100,
                    "total_cputime": 12,
                    "total_time": 20,
                    "estimated_time_to_regain_access": minutes,
                }
            ]
        }
    )
