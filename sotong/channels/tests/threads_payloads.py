"""Threads webhook notifications for the tests, in the shape the Threads API documents
(developers.facebook.com/docs/threads/webhooks, "Sample replies payload" and "Sample
mentions payload"), signed as Meta signs them, and the Threads API's answers to a reply."""

from __future__ import annotations

from typing import Any

import pytest

from sotong.channels.credentials import set_account_setting
from sotong.channels.tests.meta_payloads import sign
from sotong.directory.models import Account

APP_SECRET = "test-threads-secret-9d41"
VERIFY_TOKEN = "test-threads-verify-5e0a"
ACCESS_TOKEN = "test-threads-token-THQVJ"
USER_ID = "17841400000000001"  # the city's Threads user id
HANDLE = "@seoul_official"
URL = "/hooks/threads/@seoul_official/"
API = "https://graph.threads.net/v1.0"

CITY_TEXT = (
    "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. 빨리 고쳐주세요"
)


def configure(account: Account, *, token: bool = True) -> Account:
    set_account_setting(account, "app_secret", APP_SECRET)
    set_account_setting(account, "verify_token", VERIFY_TOKEN)
    if token:
        set_account_setting(account, "access_token", ACCESS_TOKEN)
        set_account_setting(account, "user_id", USER_ID)
    return account


@pytest.fixture
def threads_account(directory) -> Account:
    return configure(Account.objects.get(channel__code="threads", handle=HANDLE))


def threads_sign(body: bytes) -> str:
    return sign(body, APP_SECRET)


# "Sample replies payload": topic "moderate", values.field "replies", values.value the
# reply (id, username, text, media_type, permalink, replied_to, root_post, shortcode,
# timestamp in ISO 8601 with +0000).
def reply_payload(
    media_id: str = "18050000000000001",
    text: str = CITY_TEXT,
    username: str = "seoul_citizen",
    replied_to: str = "18040000000000001",
    timestamp: str = "2026-11-25T00:00:00+0000",
) -> dict[str, Any]:
    return {
        "app_id": "123456",
        "topic": "moderate",
        "target_id": replied_to,
        "time": 1795564801,
        "subscription_id": "234567",
        "has_uid_field": False,
        "values": {
            "value": {
                "id": media_id,
                "username": username,
                "text": text,
                "media_type": "TEXT_POST",
                "permalink": f"https://www.threads.net/@{username}/post/DAbCdEf",
                "replied_to": {"id": replied_to},
                "root_post": {
                    "id": replied_to,
                    "owner_id": USER_ID,
                    "username": HANDLE.lstrip("@"),
                },
                "shortcode": "DAbCdEf",
                "timestamp": timestamp,
            },
            "field": "replies",
        },
    }


# "Sample mentions payload": topic "interaction", values.field "mentions", the post that
# tags the account.
def mention_payload(
    media_id: str = "18060000000000001", text: str = "@seoul_official 서울역 앞 신호등이 고장났어요"
) -> dict[str, Any]:
    return {
        "app_id": "123456",
        "topic": "interaction",
        "target_id": USER_ID,
        "time": 1795564900,
        "subscription_id": "234567",
        "has_uid_field": False,
        "values": {
            "value": {
                "id": media_id,
                "has_replies": False,
                "is_quote_post": False,
                "is_reply": False,
                "media_product_type": "THREADS",
                "media_type": "TEXT_POST",
                "permalink": "https://www.threads.net/@citizen_kim/post/DXyZ",
                "shortcode": "DXyZ",
                "text": text,
                "timestamp": "2026-11-25T00:01:40+0000",
                "username": "citizen_kim",
            },
            "field": "mentions",
        },
    }


# "Sample delete payload" and "Sample publish payload": the account's own posts.
def own_post_payload(field: str) -> dict[str, Any]:
    return {
        "app_id": "123456",
        "topic": "moderate" if field == "delete" else "interaction",
        "target_id": USER_ID,
        "time": 1795564900,
        "subscription_id": "234567",
        "has_uid_field": False,
        "values": {
            "value": {
                "id": "18070000000000001",
                "media_type": "TEXT_POST",
                "timestamp": "2026-11-25T00:01:40+0000",
                "username": HANDLE.lstrip("@"),
            },
            "field": field,
        },
    }
