"""Kakao i OpenBuilder skill payloads for the tests, in the shape Kakao documents
(kakaobusiness.gitbook.io/main/tool/chatbot/skill_guide/answer_json_format#skillpayload),
and a way to post them to the skill endpoint with the secret header the city configures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from sotong.channels.credentials import set_account_setting
from sotong.directory.models import Account

SKILL_SECRET = "test-skill-secret-5d1e"
BOT_ID = "5f1e2d3c4b5a69788796a5b4"
REST_API_KEY = "test-rest-api-key-8c0b"
HANDLE = "@seoultalk"
KAKAO_URL = f"/hooks/kakao/{HANDLE}/"
BOT_USER_KEY = "6f8b2a5e0c1d4e3f9a7b"
EVENT_URL = f"https://bot-api.kakao.com/v2/bots/{BOT_ID}/talk"

CITY_TEXT = (
    "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. 빨리 고쳐주세요"
)


def skill_payload(
    utterance: str = CITY_TEXT,
    *,
    user_id: str = BOT_USER_KEY,
    bot_id: str = BOT_ID,
    block_name: str = "폴백 블록",
) -> dict[str, Any]:
    """A fallback block's skill call: intent, userRequest (utterance, user with type
    botUserKey and its properties), bot and action, as in Kakao's SkillPayload example."""
    block = {"id": "65a1b2c3d4e5f60718293a4b", "name": block_name}
    return {
        "intent": {"id": block["id"], "name": block_name, "extra": {"reason": {"code": 1}}},
        "userRequest": {
            "timezone": "Asia/Seoul",
            "params": {"ignoreMe": "true", "surface": "Kakaotalk.plusfriend"},
            "block": block,
            "utterance": utterance,
            "lang": "ko",
            "user": {
                "id": user_id,
                "type": "botUserKey",
                "properties": {
                    "botUserKey": user_id,
                    "plusfriendUserKey": "Lk3mN9pQ2rS7",
                    "isFriend": True,
                    "bot_user_key": user_id,
                    "plusfriend_user_key": "Lk3mN9pQ2rS7",
                },
            },
        },
        "bot": {"id": bot_id, "name": "서울톡"},
        "action": {
            "name": "sotong_skill",
            "clientExtra": None,
            "params": {},
            "id": "65a1b2c3d4e5f60718293a4c",
            "detailParams": {},
        },
        "contexts": [],
    }


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def post(
    client: Client, body: bytes, secret: str | None = SKILL_SECRET, url: str = KAKAO_URL
) -> Any:
    headers = {"X-Sotong-Skill-Secret": secret} if secret is not None else {}
    return client.generic("POST", url, body, content_type="application/json", headers=headers)


def configure(account: Account, *, rest_api_key: bool = True) -> Account:
    set_account_setting(account, "skill_secret", SKILL_SECRET)
    set_account_setting(account, "bot_id", BOT_ID)
    if rest_api_key:
        set_account_setting(account, "rest_api_key", REST_API_KEY)
    return account


@pytest.fixture
def kakao_account(directory) -> Account:
    return configure(Account.objects.get(channel__code="kakao", handle=HANDLE))
