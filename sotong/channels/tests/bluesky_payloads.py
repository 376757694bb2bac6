"""Bluesky (AT Protocol) payloads for the tests, in the shapes the lexicons define:
com.atproto.server.createSession's output, app.bsky.notification.listNotifications'
`{notifications: [{uri, cid, author, reason, reasonSubject, record, isRead, indexedAt,
labels}], cursor}`, app.bsky.feed.getPosts' post views, app.bsky.feed.getAuthorFeed's feed
and com.atproto.repo.createRecord's `{uri, cid}`; errors as XRPC `{error, message}`."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from sotong.channels.credentials import set_account_setting
from sotong.directory.models import Account

SERVICE = "https://pds.bsky.example"
XRPC = f"{SERVICE}/xrpc"
HANDLE = "@seoul.example"  # the directory's account (channels.yaml)
LOGIN = "seoul.example"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
DID = "did:plc:seoulcity0000000000000a"
CITIZEN = "kim.bsky.social"
CITIZEN_DID = "did:plc:kimcitizen00000000000000"
OUR_POST = f"at://{DID}/app.bsky.feed.post/3lcity0000001"

CITY_TEXT = (
    "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. 빨리 고쳐주세요"
)


def jwt(expires_in: int, scope: str = "com.atproto.appPass") -> str:
    """A token shaped as the PDS issues them (the SDK reads `exp` to refresh in time)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {
        "scope": scope,
        "sub": DID,
        "iat": int(time.time()),
        "exp": int(time.time()) + expires_in,
    }
    return f"{part({'typ': 'at+jwt', 'alg': 'ES256K'})}.{part(claims)}.c2lnbmF0dXJl"


def session() -> dict[str, Any]:
    return {
        "accessJwt": jwt(7200),
        "refreshJwt": jwt(90 * 86400, "com.atproto.refresh"),
        "handle": LOGIN,
        "did": DID,
        "email": "sns@seoul.example",
        "emailConfirmed": True,
        "active": True,
    }


def post_uri(rkey: str, did: str = CITIZEN_DID) -> str:
    return f"at://{did}/app.bsky.feed.post/{rkey}"


def cid(seed: str) -> str:
    return "bafyreig" + (seed.encode().hex() + "a" * 52)[:52]


def author(handle: str = CITIZEN, did: str = CITIZEN_DID) -> dict[str, Any]:
    return {
        "did": did,
        "handle": handle,
        "displayName": "김시민",
        "avatar": f"https://cdn.bsky.app/img/avatar/plain/{did}/x@jpeg",
        "viewer": {"muted": False, "blockedBy": False},
        "labels": [],
        "createdAt": "2024-03-01T00:00:00.000Z",
    }


def written_before(indexed_at: str) -> str:
    """createdAt: the post was written two seconds before the AppView indexed it."""
    moment = datetime.fromisoformat(indexed_at.replace("Z", "+00:00")) - timedelta(seconds=2)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def strong_ref(uri: str) -> dict[str, str]:
    return {"uri": uri, "cid": cid(uri[-6:])}


def notification(
    rkey: str,
    text: str,
    *,
    reason: str = "mention",
    indexed_at: str = "2026-11-25T00:30:00.000Z",
    reply_to: str | None = None,
    root: str | None = None,
    who: dict[str, Any] | None = None,
) -> dict[str, Any]:
    uri = post_uri(rkey, (who or author())["did"])
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": written_before(indexed_at),
        "langs": ["ko"],
    }
    if reason == "mention":
        record["facets"] = [
            {
                "index": {"byteStart": 0, "byteEnd": len("@seoul.example")},
                "features": [{"$type": "app.bsky.richtext.facet#mention", "did": DID}],
            }
        ]
    if reply_to:
        record["reply"] = {"root": strong_ref(root or reply_to), "parent": strong_ref(reply_to)}
    if reason == "quote":
        record["embed"] = {"$type": "app.bsky.embed.record", "record": strong_ref(OUR_POST)}
    item: dict[str, Any] = {
        "uri": uri,
        "cid": cid(rkey),
        "author": who or author(),
        "reason": reason,
        "record": record,
        "isRead": False,
        "indexedAt": indexed_at,
        "labels": [],
    }
    if reason in {"reply", "quote"}:
        item["reasonSubject"] = reply_to or OUR_POST
    return item


def like(rkey: str, indexed_at: str = "2026-11-25T00:30:00.000Z") -> dict[str, Any]:
    return {
        "uri": f"at://{CITIZEN_DID}/app.bsky.feed.like/{rkey}",
        "cid": cid(rkey),
        "author": author(),
        "reason": "like",
        "reasonSubject": OUR_POST,
        "record": {
            "$type": "app.bsky.feed.like",
            "subject": strong_ref(OUR_POST),
            "createdAt": indexed_at,
        },
        "isRead": False,
        "indexedAt": indexed_at,
        "labels": [],
    }


def page(items: list[dict[str, Any]], cursor: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"notifications": items, "seenAt": "2026-11-25T00:00:00.000Z"}
    if cursor:
        body["cursor"] = cursor
    return body


def post_view(item: dict[str, Any], *, reply_disabled: bool = False) -> dict[str, Any]:
    """The citizen's post as app.bsky.feed.getPosts shows it."""
    view: dict[str, Any] = {
        "uri": item["uri"],
        "cid": item["cid"],
        "author": item["author"],
        "record": item["record"],
        "replyCount": 0,
        "repostCount": 0,
        "likeCount": 0,
        "quoteCount": 0,
        "indexedAt": item["indexedAt"],
        "viewer": {"threadMuted": False, "embeddingDisabled": False},
        "labels": [],
    }
    if reply_disabled:
        view["viewer"]["replyDisabled"] = True
    return view


def feed_item(uri: str, text: str, parent: str, root: str) -> dict[str, Any]:
    """A post of ours as app.bsky.feed.getAuthorFeed lists it."""
    return {
        "post": {
            "uri": uri,
            "cid": cid(uri[-6:]),
            "author": author(LOGIN, DID),
            "record": {
                "$type": "app.bsky.feed.post",
                "text": text,
                "createdAt": "2026-11-25T01:00:00.000Z",
                "reply": {"root": strong_ref(root), "parent": strong_ref(parent)},
            },
            "indexedAt": "2026-11-25T01:00:00.100Z",
            "labels": [],
        }
    }


def xrpc_error(error: str, message: str) -> dict[str, str]:
    return {"error": error, "message": message}


def configure(account: Account, **overrides: str) -> Account:
    values = {"handle": LOGIN, "app_password": APP_PASSWORD, "service_url": SERVICE, **overrides}
    for name, value in values.items():
        set_account_setting(account, name, value)
    return account


@pytest.fixture
def city(directory) -> Account:
    """The city's Bluesky account from the directory, with its settings entered."""
    return configure(Account.objects.get(channel__code="bluesky", handle=HANDLE))
