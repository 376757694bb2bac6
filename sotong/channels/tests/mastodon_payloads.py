"""Mastodon API payloads for the tests, in the shapes docs.joinmastodon.org documents:
the Notification and Status entities (GET /api/v1/notifications, "Sample call with
limit=2"), the Status returned by POST /api/v1/statuses, the Context of GET
/api/v1/statuses/:id/context, and the error bodies (`{"error": …}`)."""

from __future__ import annotations

from typing import Any

import pytest

from sotong.channels.credentials import set_account_setting
from sotong.directory.models import Account

INSTANCE = "https://mastodon.example"
NOTIFICATIONS = f"{INSTANCE}/api/v1/notifications"
STATUSES = f"{INSTANCE}/api/v1/statuses"
HANDLE = "@seoul@mastodon.example"  # the directory's account (channels.yaml)
OWN_ACCT = "seoul@mastodon.example"
OWN_ID = "109000000000000001"
TOKEN = "mastodon-token-do-not-leak-8d1f"
CITIZEN = "kim@social.example"
CITIZEN_ID = "110000000000000042"

CITY_TEXT = (
    "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. 빨리 고쳐주세요"
)


def citizen_account(acct: str = CITIZEN, account_id: str = CITIZEN_ID) -> dict[str, Any]:
    username, _, domain = acct.partition("@")
    return {
        "id": account_id,
        "username": username,
        "acct": acct,
        "display_name": "김시민",
        "url": f"https://{domain or 'mastodon.example'}/@{username}",
        "avatar": f"https://{domain or 'mastodon.example'}/avatars/original/missing.png",
        "bot": False,
        "created_at": "2024-03-01T00:00:00.000Z",
    }


def mention_html(text: str) -> str:
    """Content as Mastodon renders a post that starts with the city's account's mention."""
    return (
        '<p><span class="h-card" translate="no"><a href="https://mastodon.example/@seoul" '
        'class="u-url mention">@<span>seoul</span></a></span> '
        f"{text}</p>"
    )


def status(
    status_id: str,
    content: str,
    *,
    visibility: str = "public",
    in_reply_to_id: str | None = None,
    author: dict[str, Any] | None = None,
    spoiler_text: str = "",
    media: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    author = author or citizen_account()
    return {
        "id": status_id,
        "created_at": "2026-11-25T00:30:00.000Z",
        "in_reply_to_id": in_reply_to_id,
        "in_reply_to_account_id": OWN_ID if in_reply_to_id else None,
        "sensitive": bool(spoiler_text),
        "spoiler_text": spoiler_text,
        "visibility": visibility,
        "language": "ko",
        "uri": f"https://social.example/users/kim/statuses/{status_id}",
        "url": f"https://social.example/@kim/{status_id}",
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "content": content,
        "reblog": None,
        "account": author,
        "media_attachments": media or [],
        "mentions": [
            {
                "id": OWN_ID,
                "username": "seoul",
                "url": "https://mastodon.example/@seoul",
                "acct": "seoul",
            }
        ],
        "tags": [],
        "emojis": [],
        "card": None,
        "poll": None,
    }


def mention(notification_id: str, the_status: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": notification_id,
        "type": "mention",
        "created_at": the_status["created_at"],
        "account": the_status["account"],
        "status": the_status,
    }


def favourite(notification_id: str) -> dict[str, Any]:
    ours = status("109999", "<p>서울시 공지</p>", author=own_account())
    return {
        "id": notification_id,
        "type": "favourite",
        "created_at": "2026-11-25T00:31:00.000Z",
        "account": citizen_account(),
        "status": ours,
    }


def own_account() -> dict[str, Any]:
    return {
        "id": OWN_ID,
        "username": "seoul",
        "acct": "seoul",
        "display_name": "서울특별시",
        "url": "https://mastodon.example/@seoul",
    }


def posted(status_id: str, text: str, in_reply_to_id: str, visibility: str) -> dict[str, Any]:
    """The Status that POST /api/v1/statuses returns: the city's reply."""
    reply = status(
        status_id,
        f"<p>{text}</p>",
        visibility=visibility,
        in_reply_to_id=in_reply_to_id,
        author=own_account(),
    )
    reply["url"] = f"https://mastodon.example/@seoul/{status_id}"
    return reply


def error(message: str) -> dict[str, str]:
    return {"error": message}


def configure(account: Account, **overrides: str) -> Account:
    values = {"api_base_url": INSTANCE, "access_token": TOKEN, "acct": OWN_ACCT, **overrides}
    for name, value in values.items():
        set_account_setting(account, name, value)
    return account


@pytest.fixture
def city(directory) -> Account:
    """The city's Mastodon account from the directory, with its settings entered."""
    return configure(Account.objects.get(channel__code="mastodon", handle=HANDLE))
