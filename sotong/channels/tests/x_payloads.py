"""X payloads for the tests, each in the shape X documents (the source is named on each),
the city's X accounts configured, and a way to sign and post deliveries as X would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from django.test import Client

from sotong.channels.credentials import set_account_setting
from sotong.directory.models import Account

API = "https://api.twitter.com/2"
MAYOR = "@seoul_mayor"
MAYOR_ID = "1176543210987654321"
SMC = "@seoul_smc"
SMC_ID = "1176543210000000042"
CITIZEN_ID = "1498765432109876543"
CITIZEN = "seoul_citizen"
MAYOR_URL = f"/hooks/x/{MAYOR}/"

BEARER = "test-bearer-AAAAAAAAAAAAAAAAAAAAA-7d1e"
CONSUMER_KEY = "test-consumer-key-b4f2"
CONSUMER_SECRET = "test-consumer-secret-09aa"
ACCESS_TOKEN = f"{SMC_ID}-test-access-token-51c3"
ACCESS_SECRET = "test-access-secret-e8d0"

# Snowflake ids of posts made on 2026-11-25 (UTC), oldest first.
CURSOR = "2125378933355446272"
TWEET_1 = "2125378933355446273"
TWEET_2 = "2125379185013686274"
TWEET_3 = "2125379436671926275"
OUR_REPLY = "2125379688330166276"
RETWEET = "2125379939988406277"

CITY_TEXT = (
    "@seoul_mayor 종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. "
    "빨리 고쳐주세요 &amp; 확인 부탁드립니다"
)
CITY_TEXT_AS_WRITTEN = CITY_TEXT.replace("&amp;", "&")


def sign(body: bytes, secret: str = CONSUMER_SECRET) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def post(client: Client, url: str, body: bytes, signature: str | None = "sign") -> Any:
    headers = {}
    if signature is not None:
        headers["X-Twitter-Webhooks-Signature"] = sign(body) if signature == "sign" else signature
    return client.generic("POST", url, body, content_type="application/json", headers=headers)


def configure_mayor(account: Account) -> Account:
    """The mayor's account: mentions read with the app's bearer token, the webhook signed
    with the app's consumer secret; it does not post (the center answers for it)."""
    set_account_setting(account, "user_id", MAYOR_ID)
    set_account_setting(account, "bearer_token", BEARER)
    set_account_setting(account, "consumer_secret", CONSUMER_SECRET)
    set_account_setting(account, "city_accounts", f"{SMC}, 1176543210000000099")
    return account


def configure_smc(account: Account) -> Account:
    """The center's reply account: it posts, with OAuth 1.0a user context."""
    set_account_setting(account, "user_id", SMC_ID)
    set_account_setting(account, "bearer_token", BEARER)
    set_account_setting(account, "consumer_key", CONSUMER_KEY)
    set_account_setting(account, "consumer_secret", CONSUMER_SECRET)
    set_account_setting(account, "access_token", ACCESS_TOKEN)
    set_account_setting(account, "access_token_secret", ACCESS_SECRET)
    return account


@pytest.fixture
def mayor(directory) -> Account:
    return configure_mayor(Account.objects.get(channel__code="x", handle=MAYOR))


@pytest.fixture
def smc(directory) -> Account:
    return configure_smc(Account.objects.get(channel__code="x", handle=SMC))


# X API v2, GET /2/users/:id/mentions (docs.x.com/x-api/posts/timelines: user mention
# timeline; the Tweet object of the v2 data dictionary): `data` newest first, `includes`
# from expansions=author_id, `meta` with newest_id, oldest_id, result_count, next_token.
def v2_tweet(
    tweet_id: str,
    text: str = CITY_TEXT,
    *,
    author_id: str = CITIZEN_ID,
    created_at: str = "2026-11-25T00:00:00.000Z",
    replied_to: str = "",
    retweeted: str = "",
) -> dict[str, Any]:
    tweet: dict[str, Any] = {
        "id": tweet_id,
        "text": text,
        "author_id": author_id,
        "created_at": created_at,
        "conversation_id": replied_to or tweet_id,
        "edit_history_tweet_ids": [tweet_id],
    }
    if replied_to:
        tweet["in_reply_to_user_id"] = MAYOR_ID
        tweet["referenced_tweets"] = [{"type": "replied_to", "id": replied_to}]
    if retweeted:
        tweet["referenced_tweets"] = [{"type": "retweeted", "id": retweeted}]
    return tweet


def mentions_page(
    tweets: list[dict[str, Any]], *, next_token: str = "", users: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    if not tweets:
        return {"meta": {"result_count": 0}}
    ids = [t["id"] for t in tweets]
    meta: dict[str, Any] = {
        "newest_id": max(ids, key=int),
        "oldest_id": min(ids, key=int),
        "result_count": len(tweets),
    }
    if next_token:
        meta["next_token"] = next_token
    if users is None:
        users = [
            {"id": CITIZEN_ID, "name": "김시민", "username": CITIZEN},
            {"id": SMC_ID, "name": "서울시 소셜미디어센터", "username": "seoul_smc"},
        ]
    return {"data": tweets, "includes": {"users": users}, "meta": meta}


# Account Activity API, tweet_create_events for an @mention (docs.x.com/x-api/
# account-activity: "Account Activity data objects"): for_user_id and user_has_blocked,
# then v1.1 Tweet objects (developer.x.com …/data-dictionary/object-model/tweet): id_str,
# created_at, text (extended_tweet.full_text when truncated), user, entities.
def v1_tweet(
    tweet_id: str = TWEET_1,
    text: str = CITY_TEXT,
    *,
    user_id: str = CITIZEN_ID,
    screen_name: str = CITIZEN,
    in_reply_to: str = "",
) -> dict[str, Any]:
    long = len(text) > 140
    return {
        "created_at": "Wed Nov 25 00:00:00 +0000 2026",
        "id": int(tweet_id),
        "id_str": tweet_id,
        "text": text[:139] + "…" if long else text,
        "truncated": long,
        **({"extended_tweet": {"full_text": text}} if long else {}),
        "in_reply_to_status_id": int(in_reply_to) if in_reply_to else None,
        "in_reply_to_status_id_str": in_reply_to or None,
        "in_reply_to_user_id_str": MAYOR_ID if in_reply_to else None,
        "in_reply_to_screen_name": "seoul_mayor" if in_reply_to else None,
        "user": {
            "id": int(user_id),
            "id_str": user_id,
            "name": "김시민",
            "screen_name": screen_name,
        },
        "is_quote_status": False,
        "entities": {
            "hashtags": [],
            "urls": [],
            "user_mentions": [
                {"screen_name": "seoul_mayor", "id_str": MAYOR_ID, "indices": [0, 12]}
            ],
        },
        "lang": "ko",
        "timestamp_ms": "1795564800000",
    }


def tweet_create(*tweets: dict[str, Any], for_user: str = MAYOR_ID) -> dict[str, Any]:
    return {"for_user_id": for_user, "user_has_blocked": False, "tweet_create_events": list(tweets)}


# Account Activity API, tweet_delete_events (the same page; announced on
# twittercommunity.com "Adding Delete events to the Account Activity API").
def tweet_delete(tweet_id: str = TWEET_1, user_id: str = CITIZEN_ID) -> dict[str, Any]:
    return {
        "for_user_id": MAYOR_ID,
        "tweet_delete_events": [
            {"status": {"id": tweet_id, "user_id": user_id}, "timestamp_ms": "1795568400000"}
        ],
    }


# Account Activity API, favorite_events and follow_events: not messages.
def favorite_and_follow() -> dict[str, Any]:
    return {
        "for_user_id": MAYOR_ID,
        "favorite_events": [
            {
                "id": "a7ba59eab0bfcba386f7acedac279542",
                "created_at": "Wed Nov 25 00:00:00 +0000 2026",
                "timestamp_ms": 1795564800000,
                "favorited_status": v1_tweet(TWEET_2),
                "user": {"id_str": CITIZEN_ID, "screen_name": CITIZEN},
            }
        ],
        "follow_events": [
            {
                "type": "follow",
                "created_timestamp": "1795564800000",
                "target": {"id": MAYOR_ID, "screen_name": "seoul_mayor"},
                "source": {"id": CITIZEN_ID, "screen_name": CITIZEN},
            }
        ],
    }


# X API v2, POST /2/tweets (docs.x.com/x-api/posts/creation-of-a-post): 201 with the new
# post's id and text.
def created(tweet_id: str, text: str = "") -> dict[str, Any]:
    return {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}}


# X API v2 error bodies (problem+json) as X sends them.
def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": "about:blank", "status": status}
