"""Meta (Facebook Pages and Instagram) webhooks: the `hub.challenge` handshake, the
`X-Hub-Signature-256` check over the raw body, and the page feed, Messenger, Instagram
comment and Instagram direct-message events turned into normalized messages.

Payload shapes follow Meta's Graph API webhooks reference (page `feed`, Instagram
`comments`/`mentions`) and the Messenger Platform webhook events (`messages`).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    HandshakeResponse,
    ParsedDelivery,
    SettingField,
    SignatureInvalid,
    WebhookRequest,
    Withdrawal,
)
from sotong.errors import InvalidInput
from sotong.inbox.normalize import NormalizedMessage, clean_raw, decode_json_body
from sotong.lib.korean_text import clean_text

SIGNATURE_HEADER = "x-hub-signature-256"
# Meta's `object` → the directory's channel code.
CHANNEL_OF_OBJECT = {"page": "facebook", "instagram": "instagram"}
MAX_ID = 255


def _text(value: Any) -> str:
    return clean_text(value).strip() if isinstance(value, str) else ""


def _id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value.strip()[:MAX_ID] if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _moment(value: Any) -> datetime | None:
    """Meta sends Unix time in seconds (feed) or milliseconds (Messenger)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    seconds = value / 1000 if value > 100_000_000_000 else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


class _Collector:
    """Gathers what one delivery carries; anything it cannot use is counted as ignored."""

    def __init__(self, account: AccountConfig) -> None:
        self.account = account
        self.messages: list[NormalizedMessage] = []
        self.withdrawals: list[Withdrawal] = []
        self.ignored = 0

    def message(
        self,
        channel: str,
        external_id: str,
        text: str,
        *,
        author: str,
        in_reply_to: str,
        sent_at: datetime | None,
        raw: Any,
    ) -> None:
        if not external_id or not text:  # e.g. a sticker or photo alone: nothing to triage
            self.ignored += 1
            return
        self.messages.append(
            NormalizedMessage(
                channel=channel,
                external_id=external_id,
                text=text[: settings.SOTONG_MAX_TEXT_CHARS],
                sent_at=sent_at,
                account=self.account.handle,
                author=author[:MAX_ID],
                in_reply_to=in_reply_to,
                raw=clean_raw(raw),
            )
        )

    def withdrawal(self, external_id: str) -> None:
        if external_id:
            self.withdrawals.append(Withdrawal(external_id))
        else:
            self.ignored += 1


class MetaConnector(Connector):
    platform = "meta"
    label = "Facebook · Instagram (Meta)"
    channels = ("facebook", "instagram")
    rejected_status = 403
    settings_fields = (
        SettingField(
            "app_secret",
            "앱 시크릿 (App Secret)",
            secret=True,
            help="Meta 앱 대시보드의 앱 시크릿. 웹훅 서명(X-Hub-Signature-256)을 확인합니다.",
        ),
        SettingField(
            "verify_token",
            "확인 토큰 (Verify Token)",
            secret=True,
            help="웹훅 등록 때 Meta에 입력한 확인 토큰과 같아야 합니다.",
        ),
        SettingField(
            "page_access_token",
            "페이지 액세스 토큰 (Page Access Token)",
            secret=True,
            required=False,
            help="답변을 게시할 때 씁니다.",
        ),
        SettingField("page_id", "페이지 ID (Page ID)", required=False),
    )

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> HandshakeResponse:
        expected = account.get("verify_token")
        given = request.query.get("hub.verify_token", "")
        if (
            request.query.get("hub.mode") == "subscribe"
            and expected
            and hmac.compare_digest(given.encode(), expected.encode())
        ):
            return HandshakeResponse(200, request.query.get("hub.challenge", "").encode())
        return HandshakeResponse(403, b"verification failed")

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        secret = account.get("app_secret")
        if not secret:
            raise SignatureInvalid("no app secret is set for this account")
        header = request.headers.get(SIGNATURE_HEADER, "")
        scheme, _, given = header.partition("=")
        if scheme != "sha256" or not given:
            raise SignatureInvalid(f"missing or malformed {SIGNATURE_HEADER} header")
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
            raise SignatureInvalid("the signature does not match the body")

    def parse(self, account: AccountConfig, request: WebhookRequest) -> ParsedDelivery:
        data = decode_json_body(request.body)
        if not isinstance(data, dict):
            raise InvalidInput("the delivery is not a JSON object")
        channel = CHANNEL_OF_OBJECT.get(data.get("object"))  # type: ignore[arg-type]
        if channel is None:
            raise InvalidInput(f"unknown object {str(data.get('object'))[:40]!r}")
        found = _Collector(account)
        for entry in _list(data.get("entry")):
            entry = _dict(entry)
            for change in _list(entry.get("changes")):
                self._change(found, channel, _dict(change), entry)
            for event in _list(entry.get("messaging")):
                self._messaging(found, channel, _dict(event))
        return ParsedDelivery(found.messages, found.withdrawals, found.ignored)

    # --- events -----------------------------------------------------------------------

    def _change(
        self, found: _Collector, channel: str, change: dict[str, Any], entry: dict[str, Any]
    ) -> None:
        field, value = change.get("field"), _dict(change.get("value"))
        if channel == "facebook" and field == "feed":
            self._feed(found, value)
        elif channel == "instagram" and field in {"comments", "live_comments"}:
            author = _dict(value.get("from"))
            found.message(
                "instagram",
                _id(value.get("id")),
                _text(value.get("text")),
                author=_text(author.get("username")) or _id(author.get("id")),
                in_reply_to=_id(value.get("parent_id")) or _id(_dict(value.get("media")).get("id")),
                sent_at=_moment(value.get("timestamp")) or _moment(entry.get("time")),
                raw=change,
            )
        else:
            # Instagram `mentions` carry only ids (the text needs a Graph API call), and
            # reactions, shares, ratings… are not messages.
            found.ignored += 1

    def _feed(self, found: _Collector, value: dict[str, Any]) -> None:
        item, verb = value.get("item"), value.get("verb")
        if item not in {"comment", "post", "status"}:
            found.ignored += 1
            return
        external_id = (
            _id(value.get("comment_id")) if item == "comment" else _id(value.get("post_id"))
        )
        if verb == "remove":
            found.withdrawal(external_id)
        elif verb == "add":
            author = _dict(value.get("from"))
            found.message(
                "facebook",
                external_id,
                _text(value.get("message")),
                author=_text(author.get("name")) or _id(author.get("id")),
                in_reply_to=_id(value.get("parent_id")) if item == "comment" else "",
                sent_at=_moment(value.get("created_time")),
                raw={"field": "feed", "value": value},
            )
        else:  # edited, hide, unhide…: the first version stays the one on record
            found.ignored += 1

    def _messaging(self, found: _Collector, channel: str, event: dict[str, Any]) -> None:
        message = _dict(event.get("message"))
        if not message or message.get("is_echo"):  # reads, deliveries, our own sends
            found.ignored += 1
            return
        mid = _id(message.get("mid"))
        if message.get("is_deleted"):  # Instagram: the citizen unsent the message
            found.withdrawal(mid)
            return
        found.message(
            channel,
            mid,
            _text(message.get("text")),
            author=_id(_dict(event.get("sender")).get("id")),
            in_reply_to=_id(_dict(message.get("reply_to")).get("mid")),
            sent_at=_moment(event.get("timestamp")),
            raw=event,
        )
