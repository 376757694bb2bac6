"""The demo's channels: demo accounts get published demo secrets, and demo messages arrive
as the platforms would deliver them — a webhook delivery in the platform's documented
format, signed with the account's secret, posted over HTTP to `/hooks/<platform>/<handle>/`
— so the demo runs the real connector code (signature check, stored delivery, parsing job,
ingest). The secrets are listed in the README so that anyone can sign a delivery by hand.

Only for the demo: `sotong setup-demo` sets the secrets on the demo directory's accounts
when their setting is empty or already the demo value, never over a city's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sotong.channels.connectors.registry import connector_for_channel
from sotong.channels.credentials import account_config, set_account_setting
from sotong.directory.models import Account

# Published in the README: demo data, never a city's secret.
DEMO_SECRETS: dict[str, dict[str, str]] = {
    "meta": {"app_secret": "sotong-demo-meta-app-secret", "verify_token": "sotong-demo-verify"},
    "x": {"consumer_secret": "sotong-demo-x-consumer-secret"},
}


@dataclass(frozen=True)
class SignedDelivery:
    """A webhook delivery ready to post: where, the raw body and its headers."""

    platform: str
    handle: str
    body: bytes
    headers: dict[str, str]

    def path(self) -> str:
        return f"/hooks/{self.platform}/{urllib.parse.quote(self.handle, safe='@')}/"


def configure_demo_accounts() -> int:
    """Give every active account of a demo-signed platform its demo secrets (only where
    the setting is unset or already the demo's); returns how many settings were written."""
    written = 0
    for account in Account.objects.filter(active=True).select_related("channel"):
        connector = connector_for_channel(account.channel.code)
        values = DEMO_SECRETS.get(connector.platform, {}) if connector else {}
        if not values:
            continue
        current = account_config(account)
        for name, value in values.items():
            if current.get(name) not in {"", value}:
                continue  # the city's own secret: never overwritten
            set_account_setting(account, name, value)
            written += 1
    return written


def _json(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def meta_delivery(
    channel: str, handle: str, author: str, text: str, item_id: str
) -> SignedDelivery:
    """A Facebook `feed` comment (or, for channel instagram, an Instagram `comments`
    change) as Meta delivers it, signed with the demo app secret."""
    now = int(datetime.now(UTC).timestamp())
    if channel == "instagram":
        # Instagram `comments` field (Graph API webhooks reference).
        data: dict[str, object] = {
            "object": "instagram",
            "entry": [
                {
                    "id": "17841400000000000",
                    "time": now,
                    "changes": [
                        {
                            "field": "comments",
                            "value": {
                                "from": {"id": f"ig-{author}", "username": author},
                                "media": {"id": "17900000000000000"},
                                "id": item_id,
                                "text": text,
                            },
                        }
                    ],
                }
            ],
        }
    else:
        # Facebook Page `feed` field, a comment on the page's post.
        data = {
            "object": "page",
            "entry": [
                {
                    "id": "100000000000000",
                    "time": now,
                    "changes": [
                        {
                            "field": "feed",
                            "value": {
                                "from": {"id": f"fb-{author}", "name": author},
                                "item": "comment",
                                "comment_id": item_id,
                                "post_id": "100000000000000_1",
                                "verb": "add",
                                "created_time": now,
                                "message": text,
                            },
                        }
                    ],
                }
            ],
        }
    body = _json(data)
    secret = DEMO_SECRETS["meta"]["app_secret"].encode()
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return SignedDelivery(
        "meta",
        handle,
        body,
        {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"},
    )


def _x(channel: str, handle: str, author: str, text: str, item_id: str) -> SignedDelivery:
    # Account Activity API: tweet_create_events, signed with the consumer secret.
    created = datetime.now(UTC).strftime("%a %b %d %H:%M:%S +0000 %Y")
    screen_name = author.lstrip("@")
    data = {
        "for_user_id": "1000000000000000001",
        "tweet_create_events": [
            {
                "created_at": created,
                "id": int(item_id),
                "id_str": item_id,
                "text": f"{handle} {text}",
                "user": {
                    "id": 2000000000000000000 + sum(map(ord, screen_name)),
                    "id_str": str(2000000000000000000 + sum(map(ord, screen_name))),
                    "screen_name": screen_name,
                    "name": screen_name,
                },
                "entities": {
                    "user_mentions": [
                        {
                            "screen_name": handle.lstrip("@"),
                            "id_str": "1000000000000000001",
                            "indices": [0, len(handle)],
                        }
                    ]
                },
                "in_reply_to_status_id_str": None,
            }
        ],
    }
    body = _json(data)
    secret = DEMO_SECRETS["x"]["consumer_secret"].encode()
    digest = hmac.new(secret, body, hashlib.sha256).digest()
    signature = "sha256=" + base64.b64encode(digest).decode()
    return SignedDelivery(
        "x",
        handle,
        body,
        {"Content-Type": "application/json", "X-Twitter-Webhooks-Signature": signature},
    )


BUILDERS: dict[str, Callable[[str, str, str, str, str], SignedDelivery]] = {
    "x": _x,
    "facebook": meta_delivery,
    "instagram": meta_delivery,
}


def signed_delivery(
    channel: str, handle: str, author: str, text: str, item_id: str
) -> SignedDelivery | None:
    """The delivery the platform would send for this message, or None for a channel the
    demo does not sign (it is ingested directly, as the web form or an import is)."""
    connector = connector_for_channel(channel)
    builder = BUILDERS.get(channel)
    if builder is None or connector is None or connector.platform not in DEMO_SECRETS:
        return None
    return builder(channel, handle, author, text, item_id)


def post(base_url: str, delivery: SignedDelivery, timeout: float = 10.0) -> int:
    """POST the delivery to the running server; returns the HTTP status."""
    request = urllib.request.Request(
        base_url.rstrip("/") + delivery.path(),
        data=delivery.body,
        headers=delivery.headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
