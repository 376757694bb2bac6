"""The Bluesky connector: mentions, replies and quotes of the city's account polled from
its notifications (newest first, paged back to the last one seen), and answers posted in
the citizen's thread with root and parent references and the link as a facet, through the
atproto SDK.

Shapes follow the lexicons: app.bsky.notification.listNotifications (`reasons`, `cursor`;
`{notifications: [{uri, cid, author: {did, handle}, reason, reasonSubject, record,
indexedAt}], cursor}`), app.bsky.feed.post (`text` at most 300 graphemes and 3,000 UTF-8
bytes, `reply: {root, parent}` strong refs `{uri, cid}`, `facets` over byte slices),
app.bsky.feed.getPosts, app.bsky.feed.getAuthorFeed and com.atproto.server.createSession
(rate limited per handle, 30 per 5 minutes and 300 a day); a 429 carries `ratelimit-reset`
in Unix seconds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import regex
from atproto import Client, Session, client_utils, models
from atproto_client.exceptions import (
    BadRequestError,
    LoginRequiredError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    RequestException,
    UnauthorizedError,
)
from atproto_client.models.common import XrpcError
from atproto_client.request import Request
from atproto_core.exceptions import AtProtocolError
from django.conf import settings

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    FetchResult,
    NeedsReauthorization,
    OutgoingReply,
    OutsideReplyWindow,
    ParsedDelivery,
    PermanentError,
    RateLimited,
    SentReply,
    SettingField,
    TransientError,
)
from sotong.channels.connectors.fields import as_list, as_mapping, as_str, iso_moment
from sotong.inbox.normalize import MAX_ID, NormalizedMessage, clean_raw
from sotong.lib.korean_text import clean_text

log = logging.getLogger(__name__)

CHANNEL = "bluesky"
DEFAULT_SERVICE = "https://bsky.social"
REASONS = ("mention", "reply", "quote")
POST = "app.bsky.feed.post"
PAGE = 100  # listNotifications' largest page
MAX_PAGES = 20  # one fetch stays short: 2,000 notifications
FEED_PAGE = 50  # recent posts searched for a reply sent before a crash
TIMEOUT = 30.0  # seconds per request, well under the outbox's STALE_SENDING
RATE_WINDOW = timedelta(minutes=5)  # the wait when a 429 names no reset
# Nothing seen yet: every notification is newer than this.
BEGINNING = "1970-01-01T00:00:00.000Z"
# Bluesky refuses a post over 300 graphemes or 3,000 bytes (app.bsky.feed.post's
# maxGraphemes and maxLength).
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
_GRAPHEME = regex.compile(r"\X")
# The access token expired or was revoked: sign in again (once) and repeat the call.
SESSION_ERRORS = {"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing"}

T = TypeVar("T")


def post_length(text: str) -> int:
    """The text's length against the 300 limit: its grapheme clusters (a Hangul syllable,
    an emoji with its modifiers and joiners are one each). Over the 3,000-byte limit
    (only long emoji sequences get there first) it counts as over 300 too."""
    graphemes = len(_GRAPHEME.findall(text))
    if len(text.encode("utf-8")) > MAX_BYTES:
        return max(graphemes, MAX_GRAPHEMES + 1)
    return graphemes


def rich_text(text: str) -> client_utils.TextBuilder:
    """The text with every link as a link facet, so that it is clickable: the links the
    atproto SDK's own detection finds (a port of the official TypeScript SDK's)."""
    data = text.encode("utf-8")
    builder = client_utils.TextBuilder()
    at = 0
    for facet in client_utils.detect_facets(text):
        links = [f for f in facet.features if isinstance(f, models.AppBskyRichtextFacet.Link)]
        start, end = facet.index.byte_start, facet.index.byte_end
        if not links or start < at:
            continue
        if start > at:
            builder.text(data[at:start].decode("utf-8"))
        builder.link(data[start:end].decode("utf-8"), links[0].uri)
        at = end
    if at < len(data):
        builder.text(data[at:].decode("utf-8"))
    return builder


def _id(value: Any) -> str:
    """An at:// URI as an id the inbox keeps whole ("" when too long to keep)."""
    uri = as_str(value, 2000)
    return uri if len(uri) <= MAX_ID else ""


def _newest(notifications: list[Mapping[str, Any]]) -> str:
    """The cursor of the newest of these notifications: "<indexedAt> <uri>" ("" if none
    has a readable time)."""
    best, best_at = "", None
    for item in notifications:
        at = iso_moment(item.get("indexedAt"))
        if at is not None and (best_at is None or at > best_at):
            best = f"{as_str(item.get('indexedAt'))} {as_str(item.get('uri'), 2000)}".strip()
            best_at = at
    return best


def _strong_ref(value: Any) -> models.ComAtprotoRepoStrongRef.Main | None:
    ref = as_mapping(value)
    uri, cid = as_str(ref.get("uri"), 2000), as_str(ref.get("cid"), 2000)
    return models.ComAtprotoRepoStrongRef.Main(uri=uri, cid=cid) if uri and cid else None


def _error_code(exc: RequestErrorBase) -> str:
    content = exc.response.content if exc.response is not None else None
    return content.error if isinstance(content, XrpcError) else ""


def _status(exc: RequestErrorBase) -> int:
    return exc.response.status_code if exc.response is not None else 0


class _SessionExpired(Exception):
    """The stored session's token was refused: sign in again."""


@dataclass
class _Login:
    client: Client
    did: str
    password_digest: str  # to notice a new app password


# createSession is rate limited per handle (30 per 5 minutes, 300 a day): the session of
# each handle is kept for the life of the process and used until its token is refused.
# The SDK refreshes the access token itself before it expires.
_logins: dict[tuple[str, str], _Login] = {}
_logins_lock = threading.Lock()


def forget_sessions() -> None:
    """Drop every kept session (tests; a process that wants to sign in afresh)."""
    with _logins_lock:
        _logins.clear()


class BlueskyConnector(Connector):
    platform = "bluesky"
    label = "Bluesky"
    max_reply_length = MAX_GRAPHEMES  # counted by `length` (graphemes)
    max_thread_parts = 5
    settings_fields = (
        SettingField(
            "handle",
            "핸들 (Handle)",
            required=False,
            help="로그인에 쓰는 블루스카이 핸들. 예: seoul.bsky.social. 비우면 계정 핸들을 씁니다.",
        ),
        SettingField(
            "app_password",
            "앱 비밀번호 (App password)",
            secret=True,
            help=(
                "블루스카이 [설정 → 개인정보 및 보안 → 앱 비밀번호]에서 만든 앱 비밀번호. "
                "계정 비밀번호는 넣지 마세요. 웹훅은 쓰지 않고 1분마다 멘션·답글·인용 알림을 "
                "가져옵니다."
            ),
        ),
        SettingField(
            "service_url",
            "서비스 주소 (Service URL)",
            required=False,
            help="계정이 있는 PDS 주소. 비우면 https://bsky.social",
        ),
    )

    # --- the session --------------------------------------------------------------------

    def _key(self, account: AccountConfig) -> tuple[str, str]:
        service = (account.get("service_url") or DEFAULT_SERVICE).strip().rstrip("/")
        handle = (account.get("handle") or account.handle).strip().lstrip("@").lower()
        return service, handle

    def _login(self, account: AccountConfig) -> _Login:
        service, handle = self._key(account)
        password = account.get("app_password")
        if not password:
            raise NeedsReauthorization("no app password is set for this account")
        digest = hashlib.sha256(password.encode()).hexdigest()
        # One sign-in at a time, under the lock: two threads never both spend one of the
        # handle's few createSession calls.
        with _logins_lock:
            kept = _logins.get((service, handle))
            if kept is not None and kept.password_digest == digest:
                return kept
            client = Client(base_url=service, request=Request(timeout=TIMEOUT))
            with self._errors("signing in", signing_in=True):
                client.login(handle, password, fetch_bsky_profile=False)
                did = Session.decode(client.export_session_string()).did
            login = _Login(client, did, digest)
            _logins[(service, handle)] = login
            return login

    def _forget(self, account: AccountConfig, login: _Login) -> None:
        with _logins_lock:
            if _logins.get(self._key(account)) is login:
                del _logins[self._key(account)]

    def _call(self, account: AccountConfig, doing: str, call: Callable[[_Login], T]) -> T:
        """`call` with the account's session; a refused token signs in again, once."""
        login = self._login(account)
        try:
            with self._errors(doing):
                return call(login)
        except _SessionExpired:
            self._forget(account, login)
        login = self._login(account)
        with self._errors(doing, retried=True):
            return call(login)

    @contextmanager
    def _errors(
        self, doing: str, *, signing_in: bool = False, retried: bool = False
    ) -> Iterator[None]:
        """The SDK's errors as the connector's: when to try again, and whether to stop."""
        try:
            yield
        except RateLimitExceededError as exc:
            now = datetime.now(UTC)
            retry_at = exc.reset_at
            if retry_at is None and exc.retry_after is not None:
                retry_at = now + timedelta(seconds=exc.retry_after)
            if retry_at is None or retry_at <= now:
                retry_at = now + RATE_WINDOW
            raise RateLimited(
                f"{doing}: rate limited", retry_at=retry_at, platform_error=str(exc)
            ) from exc
        except (UnauthorizedError, BadRequestError) as exc:
            code = _error_code(exc)
            session_error = isinstance(exc, UnauthorizedError) or code in SESSION_ERRORS
            if signing_in and (session_error or _status(exc) == 400):
                # Wrong handle or app password, a revoked app password, a taken-down account.
                raise NeedsReauthorization(f"{doing}: refused", platform_error=str(exc)) from exc
            if session_error and not retried:
                raise _SessionExpired from exc
            if session_error:
                raise NeedsReauthorization(
                    f"{doing}: the session was refused", platform_error=str(exc)
                ) from exc
            raise PermanentError(f"{doing}: refused", platform_error=str(exc)) from exc
        except LoginRequiredError as exc:  # the refresh token is gone
            if signing_in or retried:
                raise NeedsReauthorization(
                    f"{doing}: not signed in", platform_error=str(exc)
                ) from exc
            raise _SessionExpired from exc
        except NetworkError as exc:  # also 409, 413, 502 and timeouts
            raise TransientError(f"{doing}: the service failed", platform_error=str(exc)) from exc
        except RequestException as exc:
            if _status(exc) >= 500 or not _status(exc):
                raise TransientError(
                    f"{doing}: the service failed", platform_error=str(exc)
                ) from exc
            raise PermanentError(f"{doing}: refused", platform_error=str(exc)) from exc
        except AtProtocolError as exc:  # e.g. a response of an unexpected shape
            raise TransientError(f"{doing}: failed", platform_error=str(exc)) from exc
        except httpx.InvalidURL as exc:
            raise PermanentError(f"{doing}: bad service URL", platform_error=str(exc)) from exc
        except httpx.HTTPError as exc:
            raise TransientError(f"{doing}: the service failed", platform_error=str(exc)) from exc

    # --- fetching -----------------------------------------------------------------------

    def _notifications(
        self, account: AccountConfig, *, limit: int, cursor: str | None
    ) -> Mapping[str, Any]:
        # The query is made through the SDK's client (session, refresh, errors), but read
        # as plain JSON: one notification of an unexpected shape must not fail the page.
        params = models.AppBskyNotificationListNotifications.Params(
            reasons=list(REASONS), limit=limit, cursor=cursor
        )

        def call(login: _Login) -> Any:
            return login.client.invoke_query(
                "app.bsky.notification.listNotifications",
                params=params,
                output_encoding="application/json",
            ).content

        content = self._call(account, "reading notifications", call)
        if not isinstance(content, Mapping):
            raise TransientError("reading notifications: the answer is not JSON")
        return content

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        """Mentions, replies and quotes indexed since the cursor: "<indexedAt> <uri>" of
        the newest notification seen (its uri tells it from another indexed in the same
        millisecond). The list comes newest first: pages are read with the API's cursor
        until one reaches what was seen. An empty cursor starts from now."""
        if not cursor:
            page = self._notifications(account, limit=1, cursor=None)
            newest = _newest([as_mapping(n) for n in as_list(page.get("notifications"))])
            return FetchResult(ParsedDelivery(), newest or BEGINNING)
        seen_time, _, seen_uri = cursor.partition(" ")
        seen = iso_moment(seen_time) or datetime.min.replace(tzinfo=UTC)
        found: dict[str, Mapping[str, Any]] = {}
        api_cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = self._notifications(account, limit=PAGE, cursor=api_cursor)
            items = [as_mapping(n) for n in as_list(page.get("notifications"))]
            reached = False
            for item in items:
                uri = as_str(item.get("uri"), 2000)
                at = iso_moment(item.get("indexedAt"))
                if at is not None and at <= seen:
                    reached = True
                    if at < seen or uri == seen_uri:
                        continue
                if uri:
                    found.setdefault(uri, item)
            api_cursor = as_str(page.get("cursor"), 2000) or None
            if reached or not items or api_cursor is None:
                break
        else:
            log.warning(
                "bluesky %s: over %d notifications in one poll", account.handle, PAGE * MAX_PAGES
            )
        notifications = sorted(found.values(), key=lambda n: iso_moment(n.get("indexedAt")) or seen)
        own = self._login(account).did if notifications else ""
        delivery = self.normalize(account, notifications, own_did=own)
        return FetchResult(delivery, _newest(notifications) or cursor)

    def normalize(
        self, account: AccountConfig, notifications: list[Mapping[str, Any]], *, own_did: str = ""
    ) -> ParsedDelivery:
        """Posts that mention, reply to or quote the account, as messages. Likes, follows,
        records of other types, posts with no text and our own posts are ignored."""
        messages, ignored = [], 0
        for item in notifications:
            record = as_mapping(item.get("record"))
            author = as_mapping(item.get("author"))
            uri = as_str(item.get("uri"), 2000)
            text = clean_text(as_str(record.get("text"), 100_000))
            handle = as_str(author.get("handle"))
            if (
                item.get("reason") not in REASONS
                or record.get("$type", POST) != POST
                or not uri.startswith("at://")
                or len(uri) > MAX_ID  # the inbox's limit: a cut id could not be replied to
                or not text
                or not handle
                or (own_did and author.get("did") == own_did)
            ):
                ignored += 1
                continue
            reply = as_mapping(record.get("reply"))
            messages.append(
                NormalizedMessage(
                    channel=CHANNEL,
                    external_id=uri,
                    text=text[: settings.SOTONG_MAX_TEXT_CHARS],
                    sent_at=iso_moment(record.get("createdAt"))
                    or iso_moment(item.get("indexedAt")),
                    account=account.handle,
                    author="@" + handle.lstrip("@"),
                    in_reply_to=_id(as_mapping(reply.get("parent")).get("uri")),
                    raw=clean_raw(dict(item)),
                )
            )
        return ParsedDelivery(messages=messages, ignored=ignored)

    # --- replying -----------------------------------------------------------------------

    def length(self, text: str) -> int:
        return post_length(text)

    def _thread_refs(
        self, account: AccountConfig, reply: OutgoingReply
    ) -> tuple[models.ComAtprotoRepoStrongRef.Main, models.ComAtprotoRepoStrongRef.Main]:
        """(root, parent) of a reply to the citizen's post, read afresh: a deleted post, or
        one whose thread takes no replies from us, is found before anything is posted."""

        def call(login: _Login) -> models.AppBskyFeedGetPosts.Response:
            return login.client.app.bsky.feed.get_posts(
                models.AppBskyFeedGetPosts.Params(uris=[reply.in_reply_to])
            )

        found = self._call(account, "reading the citizen's post", call)
        if not found.posts:
            raise PermanentError("the citizen's post was deleted", platform_error=reply.in_reply_to)
        post = found.posts[0]
        if post.viewer is not None and post.viewer.reply_disabled:
            raise OutsideReplyWindow("the post's author allows no replies from this account")
        parent = models.ComAtprotoRepoStrongRef.Main(uri=post.uri, cid=post.cid)
        own_reply = getattr(post.record, "reply", None)
        root = own_reply.root if own_reply is not None else None
        if root is None:  # the raw payload's refs, as the notification carried them
            root = _strong_ref(
                as_mapping(as_mapping(reply.raw.get("record")).get("reply")).get("root")
            )
        return root or parent, parent

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        """A post replying to the citizen's (root: their thread's root, else their post);
        a thread's parts each reply to the one before, under the same root."""
        root, parent = self._thread_refs(account, reply)
        language = settings.LANGUAGE_CODE.split("-")[0]
        first: SentReply | None = None
        parts = list(reply.thread_parts) or [reply.text]
        for number, part in enumerate(parts, start=1):
            reply_to = models.AppBskyFeedPost.ReplyRef(root=root, parent=parent)

            def call(login: _Login, text: str = part, reply_to: Any = reply_to) -> Any:
                return login.client.send_post(
                    rich_text(text), profile_identify=login.did, reply_to=reply_to, langs=[language]
                )

            doing = "posting the reply" if number == 1 else f"posting part {number}"
            posted = self._call(account, doing, call)
            parent = models.ComAtprotoRepoStrongRef.Main(uri=posted.uri, cid=posted.cid)
            if first is None:
                first = SentReply(platform_id=posted.uri, url=web_url(posted.uri))
        assert first is not None
        return first

    def find_sent(self, account: AccountConfig, reply: OutgoingReply) -> SentReply | None:
        """The account's recent post that replies to the citizen's, if there is one."""

        def call(login: _Login) -> models.AppBskyFeedGetAuthorFeed.Response:
            return login.client.app.bsky.feed.get_author_feed(
                models.AppBskyFeedGetAuthorFeed.Params(
                    actor=login.did, filter="posts_with_replies", limit=FEED_PAGE
                )
            )

        feed = self._call(account, "looking for the reply", call)
        for item in feed.feed:
            post = item.post
            reply_ref = getattr(post.record, "reply", None)
            if reply_ref is not None and reply_ref.parent.uri == reply.in_reply_to:
                return SentReply(platform_id=post.uri, url=web_url(post.uri))
        return None

    def health(self, account: AccountConfig) -> dict[str, Any]:
        service, handle = self._key(account)
        with _logins_lock:
            signed_in = (service, handle) in _logins
        return {"service": service, "handle": handle, "signed_in": signed_in}


def web_url(uri: str) -> str:
    """at://did/app.bsky.feed.post/rkey as its page on bsky.app."""
    prefix = "at://"
    if not uri.startswith(prefix):
        return ""
    did, _, rest = uri[len(prefix) :].partition("/")
    collection, _, rkey = rest.partition("/")
    return f"https://bsky.app/profile/{did}/post/{rkey}" if collection == POST and rkey else ""
