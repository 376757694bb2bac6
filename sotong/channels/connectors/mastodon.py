"""The Mastodon connector: mentions of the city's account polled from its server's
notifications by a `since_id` cursor, and answers posted in the citizen's thread, with the
citizen's visibility and an Idempotency-Key, through Mastodon.py.

Shapes follow the Mastodon API documentation (docs.joinmastodon.org): `GET
/api/v1/notifications` (`types[]=mention`, `since_id`, `max_id`, `limit` up to 80; a
Notification `{id, type, created_at, account, status}` whose Status carries `id`, `content`
as HTML, `spoiler_text`, `account.acct`, `in_reply_to_id`, `visibility`, `mentions`,
`media_attachments`), `POST /api/v1/statuses` (form fields `status`, `in_reply_to_id`,
`visibility`; the `Idempotency-Key` header), `GET /api/v1/statuses/:id/context`, and the
`X-RateLimit-Reset` header (ISO 8601) on a 429.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import regex
import requests
from django.conf import settings
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    FetchResult,
    NeedsReauthorization,
    OutgoingReply,
    ParsedDelivery,
    PermanentError,
    RateLimited,
    SentReply,
    SettingField,
    TransientError,
)
from sotong.channels.connectors.email import html_to_text
from sotong.channels.connectors.fields import as_id, as_list, as_mapping, as_str, iso_moment
from sotong.inbox.normalize import MAX_ID, NormalizedMessage, clean_raw
from sotong.lib.korean_text import clean_text

with warnings.catch_warnings():
    # twitter_text imports pkg_resources, which warns that it is deprecated (see x.py).
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*pkg_resources.*", category=UserWarning)
    from twitter_text.extract_urls import extract_urls_with_indices

log = logging.getLogger(__name__)

CHANNEL = "mastodon"
MENTION = "mention"
PAGE = 80  # Mastodon's largest page of notifications (4.1 and later; older servers give 30)
MAX_PAGES = 10  # one fetch stays short; a minute's mentions never come near 800
TIMEOUT = 30.0  # seconds per request, well under the outbox's STALE_SENDING
# Mastodon's rate-limit windows are five minutes: the wait when the server names no reset.
RATE_WINDOW = timedelta(minutes=5)
VISIBILITIES = ("public", "unlisted", "private", "direct")
MAX_CLIENTS = 64  # clients kept per worker thread (one per instance and token)
_clients = threading.local()

# Mastodon's own counting rule (app/validators/status_length_validator.rb): the text's
# grapheme clusters after every URL is replaced by 23 characters and every mention by its
# username part ("@kim@mastodon.social" counts as "@kim"). Mastodon.py's get_status_length
# implements it but needs the `grapheme` package, which is not in the lock; so the rule is
# written here from the same parts: twitter-text's URL extractor (the one Mastodon runs,
# without protocol-less URLs), Mastodon's Account::MENTION_RE, and `regex`'s \X.
URL_CHARS = 23
_MENTION = regex.compile(
    r"(?<![=/\w])@(([a-z0-9_]+(?:[a-z0-9_.\-]+[a-z0-9_]+)?)(?:@[\w.\-]+\w)?)", regex.IGNORECASE
)
_GRAPHEME = regex.compile(r"\X")
_BREAK = regex.compile(r"<br\s*/?>", regex.IGNORECASE)


def countable_text(text: str) -> str:
    """The text as Mastodon measures it: URLs as 23 x's, mentions without their domain."""
    entities = [
        (url["indices"][0], url["indices"][1], "x" * URL_CHARS)
        for url in extract_urls_with_indices(text, extract_urls_without_protocol=False)
    ]
    entities += [(m.start(), m.end(), "@" + m.group(2)) for m in _MENTION.finditer(text)]
    # As twitter-text's remove_overlapping_entities: by start, a later overlapping one goes.
    parts, last = [], 0
    for start, end, replacement in sorted(entities):
        if start < last:
            continue
        parts += [text[last:start], replacement]
        last = end
    parts.append(text[last:])
    return "".join(parts)


def status_length(text: str) -> int:
    return len(_GRAPHEME.findall(countable_text(text)))


def _id_key(value: str) -> tuple[int, str]:
    # Mastodon's ids are decimal strings of varying length; other servers' (Pleroma's
    # flake ids) are fixed-length strings: length first, then the string, orders both.
    return (len(value), value)


def _moment(value: Any) -> datetime | None:
    # Mastodon.py hands times over parsed; a status kept as JSON has them as strings.
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return iso_moment(value)


def _iso(value: Any) -> str:
    moment = _moment(value)
    return moment.isoformat() if moment else as_str(value)


def plain_text(content: Any) -> str:
    """A status's HTML content as plain text: paragraphs and line breaks kept, every tag
    dropped, scripts and styles with their content; Mastodon's hidden URL parts
    (`<span class="invisible">https://</span>`) are text, so links come out whole."""
    if not isinstance(content, str) or not content.strip():
        return ""
    # A <br> is one line break (the shared converter gives a line break a blank line).
    return clean_text(html_to_text(_BREAK.sub("\n", content))).strip()


def _acct(value: Any) -> str:
    """An acct as stored and compared: no leading @, lower case."""
    return as_str(value).lstrip("@").lower()


def _same_account(acct: str, own: str) -> bool:
    """Whether an acct as the server shows it ("seoul" for its own users) is `own`
    ("seoul@mastodon.example")."""
    user, _, domain = _acct(acct).partition("@")
    own_user, _, own_domain = _acct(own).partition("@")
    return (
        bool(user) and user == own_user and (not domain or not own_domain or domain == own_domain)
    )


def _raw_status(notification: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a mention: the status's own fields, as JSON, with the HTML as sent."""
    author = as_mapping(status.get("account"))
    return {
        "notification_id": as_id(notification.get("id")),
        "type": as_str(notification.get("type")),
        "id": as_id(status.get("id")),
        "uri": as_str(status.get("uri"), 2000),
        "url": as_str(status.get("url"), 2000),
        "created_at": _iso(status.get("created_at")),
        "visibility": as_str(status.get("visibility")),
        "in_reply_to_id": as_id(status.get("in_reply_to_id")),
        "in_reply_to_account_id": as_id(status.get("in_reply_to_account_id")),
        "language": as_str(status.get("language")),
        "spoiler_text": as_str(status.get("spoiler_text"), 5000),
        "content": status.get("content") if isinstance(status.get("content"), str) else "",
        "account": {
            "id": as_id(author.get("id")),
            "acct": as_str(author.get("acct")),
            "username": as_str(author.get("username")),
            "display_name": as_str(author.get("display_name")),
            "url": as_str(author.get("url"), 2000),
        },
        "mentions": [
            {"id": as_id(m.get("id")), "acct": as_str(m.get("acct"))}
            for m in map(as_mapping, as_list(status.get("mentions"), tuples=True))
        ],
        "media_attachments": [
            {
                "type": as_str(m.get("type")),
                "url": as_str(m.get("url"), 2000),
                "description": as_str(m.get("description"), 1500),
            }
            for m in map(as_mapping, as_list(status.get("media_attachments"), tuples=True))
        ],
    }


class _Session(requests.Session):
    """Remembers the server's message in its last error answer: Mastodon.py passes it on
    for some calls only (not for lists such as notifications)."""

    last_error = ""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = super().send(request, **kwargs)
        if not response.ok:
            try:
                body = response.json()
            except ValueError:
                body = None
            message = body.get("error") if isinstance(body, dict) else None
            self.last_error = as_str(message, 300) if message else as_str(response.text, 300)
        return response


def _platform_error(exc: Exception, api: Mastodon) -> str:
    # Mastodon.py raises MastodonAPIError('Mastodon API returned error', status, reason,
    # the server's `error` or None); the token is never part of it.
    if not isinstance(exc, MastodonAPIError):
        return str(exc)
    args = [str(a) for a in exc.args[1:] if a]
    session = getattr(api, "session", None)
    if len(exc.args) > 3 and not exc.args[3] and isinstance(session, _Session):
        args.append(session.last_error)
    return " ".join(a for a in args if a) or str(exc)


def _status(exc: MastodonAPIError) -> int:
    code = exc.args[1] if len(exc.args) > 1 else 0
    return code if isinstance(code, int) else 0


class MastodonConnector(Connector):
    platform = "mastodon"
    label = "Mastodon"
    max_reply_length = 500  # Mastodon's default; counted by `length` (Mastodon's rule)
    max_thread_parts = 5
    settings_fields = (
        SettingField(
            "api_base_url",
            "인스턴스 주소 (Instance URL)",
            help="시의 계정이 있는 마스토돈 서버 주소. 예: https://mastodon.social",
        ),
        SettingField(
            "access_token",
            "액세스 토큰 (Access token)",
            secret=True,
            help=(
                "마스토돈의 [환경설정 → 개발 → 새 애플리케이션]에서 앱을 만들고 "
                "read:notifications, read:statuses, read:accounts, write:statuses 권한을 준 뒤 "
                "받은 액세스 토큰. 웹훅은 쓰지 않고 1분마다 멘션 알림을 가져옵니다."
            ),
        ),
        SettingField(
            "acct",
            "계정 (acct)",
            required=False,
            help="시 계정의 acct. 예: seoul@mastodon.social. 비우면 토큰으로 확인합니다.",
        ),
    )

    # --- the client ---------------------------------------------------------------------

    def _api(self, account: AccountConfig) -> Mastodon:
        """The account's client, kept per worker thread so that its HTTP connection is
        reused from one call to the next (a new token or URL makes a new one)."""
        base = account.get("api_base_url").strip().rstrip("/")
        if not base:
            raise PermanentError("no instance URL (api_base_url) is set for this account")
        token = account.get("access_token")
        key = (base, hashlib.sha256(token.encode()).hexdigest())
        kept: dict[tuple[str, str], Mastodon] = _clients.__dict__.setdefault("by_key", {})
        if key in kept:
            return kept[key]
        try:
            # "throw": Mastodon.py would otherwise sleep in the worker until the limit resets.
            api = Mastodon(
                api_base_url=base,
                access_token=token or None,
                ratelimit_method="throw",
                request_timeout=TIMEOUT,
                session=_Session(),
                version_check_mode="none",
                user_agent="Sotong",
            )
        except MastodonError as exc:
            raise PermanentError("cannot use the instance URL", platform_error=str(exc)) from exc
        if len(kept) >= MAX_CLIENTS:
            kept.clear()
        kept[key] = api
        return api

    @contextmanager
    def _errors(self, api: Mastodon, doing: str) -> Iterator[None]:
        """Mastodon.py's errors as the connector's: when to try again, and whether to stop."""
        try:
            yield
        except MastodonRatelimitError as exc:
            reset = getattr(api, "ratelimit_reset", None)
            now = datetime.now(UTC)
            retry_at = now + RATE_WINDOW
            if isinstance(reset, int | float) and reset > now.timestamp():
                retry_at = datetime.fromtimestamp(reset, tz=UTC)
            session = getattr(api, "session", None)
            said = session.last_error if isinstance(session, _Session) else ""
            raise RateLimited(
                f"{doing}: rate limited", retry_at=retry_at, platform_error=said or str(exc)
            ) from exc
        except MastodonUnauthorizedError as exc:
            raise NeedsReauthorization(
                f"{doing}: the access token was refused", platform_error=_platform_error(exc, api)
            ) from exc
        except MastodonNotFoundError as exc:
            raise PermanentError(
                f"{doing}: not found (deleted, or not visible to the account)",
                platform_error=_platform_error(exc, api),
            ) from exc
        except MastodonServerError as exc:
            raise TransientError(
                f"{doing}: the server failed", platform_error=_platform_error(exc, api)
            ) from exc
        except MastodonNetworkError as exc:
            raise TransientError(
                f"{doing}: cannot reach the server", platform_error=str(exc)
            ) from exc
        except MastodonAPIError as exc:
            status, error = _status(exc), _platform_error(exc, api)
            if status == 403 and any(w in error.lower() for w in ("scope", "login", "token")):
                raise NeedsReauthorization(f"{doing}: not allowed", platform_error=error) from exc
            if status in {408, 409, 425} or not status:
                raise TransientError(f"{doing}: try again", platform_error=error) from exc
            raise PermanentError(f"{doing}: refused", platform_error=error) from exc
        except MastodonIllegalArgumentError as exc:
            raise PermanentError(f"{doing}: bad request", platform_error=str(exc)) from exc
        except MastodonError as exc:
            raise TransientError(f"{doing}: failed", platform_error=str(exc)) from exc

    # --- fetching -----------------------------------------------------------------------

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        """Mentions newer than the cursor (the last notification id seen). An empty cursor
        starts from now: the newest mention's id, or "0" when there is none yet (then every
        mention is new). A poll pages back with `max_id` until it meets the cursor."""
        api = self._api(account)
        with self._errors(api, "fetching mentions"):
            if not cursor:
                newest = api.notifications(types=[MENTION], limit=1)
                ids = [as_id(as_mapping(n).get("id")) for n in as_list(newest, tuples=True)]
                return FetchResult(
                    ParsedDelivery(), max(filter(None, ids), key=_id_key, default="0")
                )
            found: dict[str, Mapping[str, Any]] = {}
            max_id: str | None = None
            for _ in range(MAX_PAGES):
                page = api.notifications(
                    types=[MENTION], since_id=cursor, max_id=max_id, limit=PAGE
                )
                fresh = {}
                for item in map(as_mapping, as_list(page, tuples=True)):
                    item_id = as_id(item.get("id"))
                    # A server that ignores since_id or max_id must not bring old ones back.
                    if item_id and _id_key(item_id) > _id_key(cursor) and item_id not in found:
                        fresh[item_id] = item
                if not fresh:
                    break
                found.update(fresh)
                max_id = min(fresh, key=_id_key)
            else:
                log.warning(
                    "mastodon %s: more than %d mentions in one poll",
                    account.handle,
                    PAGE * MAX_PAGES,
                )
        ordered = sorted(found, key=_id_key)
        delivery = self.normalize(account, [found[i] for i in ordered])
        return FetchResult(delivery, ordered[-1] if ordered else cursor)

    def normalize(
        self, account: AccountConfig, notifications: list[Mapping[str, Any]]
    ) -> ParsedDelivery:
        """Mention notifications as messages; others, and our own posts, are ignored."""
        own = account.get("acct")
        messages, ignored = [], 0
        for notification in notifications:
            status = as_mapping(notification.get("status"))
            author = as_mapping(status.get("account"))
            acct = as_str(author.get("acct"))
            if notification.get("type") != MENTION or not status or not acct:
                ignored += 1
                continue
            if own and _same_account(acct, own):
                ignored += 1
                continue
            text = plain_text(status.get("content"))
            warning = clean_text(as_str(status.get("spoiler_text"), 5000))
            text = f"{warning}\n\n{text}".strip() if warning else text
            external_id = as_id(status.get("id"))
            if not external_id or not text:
                ignored += 1
                continue
            raw = _raw_status(notification, status)
            messages.append(
                NormalizedMessage(
                    channel=CHANNEL,
                    external_id=external_id,
                    text=text[: settings.SOTONG_MAX_TEXT_CHARS],
                    sent_at=_moment(status.get("created_at")),
                    account=account.handle,
                    author="@" + acct.lstrip("@"),
                    in_reply_to=as_id(status.get("in_reply_to_id")),
                    attachments=[
                        {"url": m["url"], "type": m["type"], "name": m["description"][:MAX_ID]}
                        for m in raw["media_attachments"]
                        if m["url"]
                    ],
                    raw=clean_raw(raw),
                )
            )
        return ParsedDelivery(messages=messages, ignored=ignored)

    # --- replying -----------------------------------------------------------------------

    def reply_limit(self, raw: Mapping[str, Any]) -> int:
        """500, less the citizen's mention that send_reply puts before every post."""
        acct = as_str(as_mapping(raw.get("account")).get("acct"))
        if not acct:
            return self.max_reply_length
        return self.max_reply_length - self.length(f"@{acct} ")

    def length(self, text: str) -> int:
        return status_length(text)

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        """Each post starts with the citizen's @acct (a direct mention is seen only by those
        it mentions) and has the citizen's visibility; a thread's parts reply each to the
        one before, with the delivery's key and the part's number as Idempotency-Key."""
        raw = reply.raw
        acct = as_str(as_mapping(raw.get("account")).get("acct")) or reply.author.lstrip("@")
        visibility = as_str(raw.get("visibility"))
        # Unknown: the narrowest, so a private complaint is never answered in public.
        visibility = visibility if visibility in VISIBILITIES else "direct"
        parts = list(reply.thread_parts) or [reply.text]
        api = self._api(account)
        first: SentReply | None = None
        parent = reply.in_reply_to
        for number, part in enumerate(parts, start=1):
            key = reply.idempotency_key if number == 1 else f"{reply.idempotency_key}-{number}"
            with self._errors(
                api, "posting the reply" if number == 1 else f"posting part {number}"
            ):
                posted = api.status_post(
                    _with_mention(part, acct),
                    in_reply_to_id=parent,
                    visibility=visibility,
                    idempotency_key=key,
                )
            parent = as_id(as_mapping(posted).get("id"))
            if first is None:
                first = SentReply(
                    platform_id=parent, url=as_str(as_mapping(posted).get("url"), 2000)
                )
        assert first is not None
        return first

    def find_sent(self, account: AccountConfig, reply: OutgoingReply) -> SentReply | None:
        """The account's reply among the citizen's status's descendants, if it is there
        (the Idempotency-Key covers a resend for an hour only)."""
        api = self._api(account)
        with self._errors(api, "looking for the reply"):
            own = account.get("acct") or as_str(
                as_mapping(api.account_verify_credentials()).get("acct")
            )
            context = as_mapping(api.status_context(reply.in_reply_to))
        for status in map(as_mapping, as_list(context.get("descendants"), tuples=True)):
            author = as_str(as_mapping(status.get("account")).get("acct"))
            if as_id(status.get("in_reply_to_id")) == reply.in_reply_to and _same_account(
                author, own
            ):
                return SentReply(as_id(status.get("id")), url=as_str(status.get("url"), 2000))
        return None

    def health(self, account: AccountConfig) -> dict[str, Any]:
        return {"instance": account.get("api_base_url"), "acct": account.get("acct")}


def _with_mention(text: str, acct: str) -> str:
    if not acct:
        return text
    mention = "@" + acct.lstrip("@")
    if text.lower().startswith(mention.lower()):
        return text
    return f"{mention} {text}"
