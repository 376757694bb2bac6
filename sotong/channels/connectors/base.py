"""What every connector does, whatever the platform: describe its settings, answer a
webhook handshake, verify and parse a webhook delivery, fetch new items since a cursor,
send a reply, and report its health. Adding a platform is adding one module with a class
that implements these verbs; nothing else changes.

Connectors are pure over plain data: the caller gives them the account's settings
(credentials already decrypted) and the raw request or cursor; they return normalized
messages, cursors and reply receipts, and raise the errors below. They never touch the
database; the hooks view, the poller and the outbox do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sotong.inbox.normalize import NormalizedMessage


@dataclass(frozen=True)
class SettingField:
    """One setting an account of this platform needs (shown on the account settings page)."""

    name: str  # e.g. "app_secret"
    label: str  # Korean first, e.g. "앱 시크릿 (App Secret)"
    secret: bool = False  # stored encrypted, never shown again after entry, never logged
    required: bool = True
    help: str = ""


@dataclass(frozen=True)
class AccountConfig:
    """What a connector knows of one account: its handle and its settings (decrypted)."""

    platform: str
    handle: str
    settings: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.settings.get(name, default) or default


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook delivery as it arrived: method, query, headers (lower-case names) and the
    raw body, byte for byte (signatures are computed over it)."""

    method: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class HandshakeResponse:
    """What to answer to a platform's verification request (Meta's hub.challenge, X's CRC)."""

    status: int
    body: bytes
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Withdrawal:
    """The platform says an item was deleted: withdraw it from every public output."""

    external_id: str


@dataclass(frozen=True)
class ParsedDelivery:
    """What one webhook delivery or one fetch carried. Unknown event types are counted in
    `ignored` (stored with the raw delivery, never a crash)."""

    messages: Sequence[NormalizedMessage] = ()
    withdrawals: Sequence[Withdrawal] = ()
    ignored: int = 0


@dataclass(frozen=True)
class FetchResult:
    """New items since the cursor, and the cursor to store for next time."""

    delivery: ParsedDelivery
    cursor: str


@dataclass(frozen=True)
class OutgoingReply:
    """A reply to post: where (the thread of the citizen's message), what, and the
    idempotency key of its delivery (the same key on every attempt)."""

    in_reply_to: str  # the platform id of the citizen's message (tweet, comment, Message-ID)
    text: str  # already fitted to the platform's limit (see `fit`)
    idempotency_key: str
    thread_parts: Sequence[str] = ()  # a numbered thread, where the platform allows it
    author: str = ""  # the citizen's handle or address, for channels that need it
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. subject, references
    # The citizen's message as the platform sent it (its raw payload) and when they wrote
    # it: for reply windows (Meta's 24 hours) and for the kind of reply (comment or DM).
    raw: Mapping[str, Any] = field(default_factory=dict)
    sent_at: datetime | None = None


@dataclass(frozen=True)
class SentReply:
    """The platform accepted the reply: its id there (for 'check before re-send')."""

    platform_id: str
    url: str = ""


# After a failure that may pass (a network error, a 5xx), the outbox and the poller wait
# 1, 2, 4 … minutes, at most an hour.
MAX_RETRY_DELAY = timedelta(hours=1)


def retry_delay(failures: int) -> timedelta:
    """How long to wait after the `failures`-th failure in a row (1 → one minute)."""
    return min(timedelta(minutes=2 ** min(max(failures - 1, 0), 10)), MAX_RETRY_DELAY)


class ConnectorError(Exception):
    """A connector failed; subclasses say whether and when to try again."""

    def __init__(self, message: str, *, platform_error: str = "") -> None:
        super().__init__(message)
        self.platform_error = platform_error  # the platform's own error, shown to officers


class SignatureInvalid(ConnectorError):
    """A webhook delivery's signature is missing or wrong: refuse it, store nothing."""


class RateLimited(ConnectorError):
    """Try again at `retry_at` (from the platform's reset headers), not before."""

    def __init__(self, message: str, *, retry_at: datetime, platform_error: str = "") -> None:
        super().__init__(message, platform_error=platform_error)
        self.retry_at = retry_at


class TransientError(ConnectorError):
    """A network error or a 5xx: try again with backoff."""


class PermanentError(ConnectorError):
    """The platform refused for good (deleted thread, text refused): mark the delivery failed."""


class OutsideReplyWindow(PermanentError):
    """The platform takes no reply to this message now (Meta's 24-hour messaging window
    has closed, a thread was locked): the delivery becomes "reply elsewhere" with this
    reason, and an officer replies by another way and records it."""


class NeedsReauthorization(ConnectorError):
    """The token expired or was revoked: sends to this account stop until it is renewed."""


class Connector:
    """Base of every platform's connector. A subclass sets `platform` and `settings_fields`
    and overrides the verbs it supports; the defaults say the verb is not supported."""

    platform: ClassVar[str] = ""
    label: ClassVar[str] = ""  # the platform's name as people know it
    settings_fields: ClassVar[tuple[SettingField, ...]] = ()
    # Reply length: the platform's own limit and counting rule (see `fit`).
    max_reply_length: ClassVar[int] = 0
    # The directory channels (codes in channels.yaml) whose accounts this connector serves;
    # empty means the one channel whose code is the platform name. Meta serves two.
    channels: ClassVar[tuple[str, ...]] = ()
    # Where the platform allows it, an answer longer than the limit goes out as a numbered
    # thread of at most this many posts ("(1/3) …", each in reply to the one before);
    # 1 means one post, cut to the limit with the public case link.
    max_thread_parts: ClassVar[int] = 1
    # The status a webhook delivery with a missing or wrong signature is refused with.
    rejected_status: ClassVar[int] = 401
    # How often a polled account is fetched while all is well (the platform's rate limit
    # or daily quota may ask for less often than every minute: YouTube's does).
    poll_interval: ClassVar[timedelta] = timedelta(minutes=1)

    def channel_codes(self) -> tuple[str, ...]:
        return self.channels or (self.platform,)

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> HandshakeResponse:
        """Answer a verification GET (Meta's hub.challenge, X's CRC)."""
        return HandshakeResponse(405, b"this platform sends no verification request")

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        """Raise SignatureInvalid unless the delivery is signed as the platform signs."""
        raise SignatureInvalid(f"{self.platform} does not deliver webhooks")

    def parse(self, account: AccountConfig, request: WebhookRequest) -> ParsedDelivery:
        """The messages (and deletions) a verified delivery carries."""
        raise NotImplementedError(f"{self.platform} does not deliver webhooks")

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        """New items since `cursor` (empty: start from now), by polling."""
        raise NotImplementedError(f"{self.platform} is not polled")

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        """Post the reply in the citizen's thread, from `account` (the reply account).

        With `reply.thread_parts`, post each part in reply to the one before (the first in
        reply to the citizen) and return the first part's id. Raise OutsideReplyWindow when
        the platform takes no reply to this message now."""
        raise PermanentError(f"{self.platform} cannot send replies")

    def find_sent(self, account: AccountConfig, reply: OutgoingReply) -> SentReply | None:
        """After a crash mid-send: the reply if the platform already has it (None: not
        there, or the platform cannot tell; the outbox then decides by the platform's
        idempotency support)."""
        return None

    def reply_limit(self, raw: Mapping[str, Any]) -> int:
        """The limit for a reply to this message (by its raw payload): some platforms
        allow longer comments than direct messages. 0: no limit."""
        return self.max_reply_length

    def length(self, text: str) -> int:
        """The text's length as the platform counts it (characters by default)."""
        return len(text)

    def health(self, account: AccountConfig) -> Mapping[str, Any]:
        """What the connector can tell about the account without side effects."""
        return {}
