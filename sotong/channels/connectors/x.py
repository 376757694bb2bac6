"""X (Twitter): mentions of each account polled with a `since_id` cursor, the Account
Activity webhook (CRC challenge, `x-twitter-webhooks-signature`) where an account has it,
and replies posted in the citizen's thread, as a numbered thread when the answer is long.

Shapes, as X documents them:
- GET /2/users/:id/mentions (API v2 user mention timeline): `data[]` tweets with id, text,
  author_id, created_at, conversation_id, in_reply_to_user_id, referenced_tweets
  [{type: replied_to|quoted|retweeted, id}], note_tweet.text for long posts;
  `includes.users[]` (expansions=author_id) with id, username; `meta` with newest_id,
  oldest_id, result_count, next_token (pass it back as pagination_token). Text is
  HTML-escaped (&amp; &lt; &gt;).
- Account Activity API deliveries: {"for_user_id": "…", "tweet_create_events": [v1.1 Tweet
  objects: id_str, text / extended_tweet.full_text, created_at "Wed Oct 10 20:19:24 +0000
  2018", in_reply_to_status_id_str, user {id_str, screen_name}, entities.user_mentions,
  retweeted_status]}, {"for_user_id": "…", "tweet_delete_events": [{"status": {"id",
  "user_id"}, "timestamp_ms"}]}, and other `*_events` (favorites, follows, DMs…), ignored.
  CRC: GET ?crc_token=… answered with {"response_token": "sha256=" + base64(HMAC-SHA256(
  consumer secret, crc_token))}; each POST carries `x-twitter-webhooks-signature:
  sha256=` + base64(HMAC-SHA256(consumer secret, raw body)).
- POST /2/tweets {"text", "reply": {"in_reply_to_tweet_id"}} with OAuth 1.0a user context
  of the reply account; answers {"data": {"id", "text"}}. The same text twice is refused
  (403 "You are not allowed to create a Tweet with duplicate content.").
- Length: the twitter-text weighting (config v3: most CJK and Hangul count 2, a URL 23,
  an emoji 2; 280 in all), counted by the `twitter_text` package, not by hand.

Calls go through tweepy.Client (X API v2) with `return_type=dict`, so the payloads stored
are X's JSON as it came.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import unicodedata
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import tweepy
from django.conf import settings

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    ConnectorError,
    FetchResult,
    HandshakeResponse,
    NeedsReauthorization,
    OutgoingReply,
    OutsideReplyWindow,
    ParsedDelivery,
    PermanentError,
    RateLimited,
    SentReply,
    SettingField,
    SignatureInvalid,
    TransientError,
    WebhookRequest,
    Withdrawal,
)
from sotong.channels.connectors.fields import as_dict, as_id, as_list, as_text, iso_moment
from sotong.errors import InvalidInput
from sotong.inbox.normalize import NormalizedMessage, clean_raw, decode_json_body

with warnings.catch_warnings():
    # twitter_text imports pkg_resources, which warns that it is deprecated; the warning is
    # the package's, not ours, and says nothing about what we use of it.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*pkg_resources.*", category=UserWarning)
    from twitter_text import parse_tweet

# tweepy logs every request at DEBUG with its headers, the app's bearer token among them:
# credentials are never logged, whatever level a deployment sets for its root logger.
logging.getLogger("tweepy.client").setLevel(logging.INFO)

CHANNEL = "x"
SIGNATURE_HEADER = "x-twitter-webhooks-signature"
TWEET_FIELDS = "created_at,conversation_id,in_reply_to_user_id,referenced_tweets,note_tweet"
PAGE_SIZE = 100  # the mention timeline's largest page
# X serves at most the 800 most recent mentions through since_id; ten pages of 100 cover
# them, and bound one poll whatever X answers.
MAX_PAGES = 10
# Our own recent posts read to find a reply already made (after a crash, or when X refuses
# a retry as duplicate content): three pages since the citizen's post.
SENT_PAGES = 3
TIMEOUT = 30.0  # seconds; tweepy sets none, and a hung request would hold a worker
# X ids are Snowflakes: milliseconds since this epoch, shifted left 22 bits.
SNOWFLAKE_EPOCH_MS = 1288834974657
# "From now" when an account has no mention yet: a since_id this much before the clock,
# so that a clock a little ahead of X's loses nothing.
CLOCK_MARGIN = timedelta(minutes=1)
# Without a reset header, a rate limit is waited out for X's usual window.
RATE_WINDOW = timedelta(minutes=15)
MAX_ERROR = 500
DUPLICATE = "duplicate content"


# --- plain data ---------------------------------------------------------------------------


def _post_text(value: Any) -> str:
    # X escapes &, < and > in post texts; the inbox keeps the text as the citizen wrote it.
    return as_text(html.unescape(value) if isinstance(value, str) else value)


def _v1_time(tweet: dict[str, Any]) -> datetime | None:
    """A v1.1 Tweet's time: `created_at` ("Wed Oct 10 20:19:24 +0000 2018") or
    `timestamp_ms` (a string of milliseconds)."""
    try:
        return datetime.strptime(str(tweet.get("created_at")), "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        pass
    millis = str(tweet.get("timestamp_ms", ""))
    if millis.isdigit():
        try:
            return datetime.fromtimestamp(int(millis) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def snowflake_at(moment: datetime) -> str:
    """The smallest X id of a post made at `moment` (ids grow with time)."""
    millis = int(moment.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS
    return str(max(millis, 0) << 22)


def _newest(ids: list[str], cursor: str) -> str:
    numeric = [int(i) for i in [*ids, cursor] if i.isdigit()]
    return str(max(numeric)) if numeric else cursor


def _names(value: str) -> set[str]:
    """User ids and @names, comma- or space-separated, lower-case and without the @."""
    return {v.lstrip("@").lower() for v in re.split(r"[\s,]+", value) if v.strip("@ ")}


_URL = re.compile(r"https?://\S+")
_LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")


def _fingerprint(text: str) -> str:
    """A post's text as compared with what we sent: X shortens links to t.co and puts the
    reply's @names in front; neither is ours to compare."""
    text = unicodedata.normalize("NFC", html.unescape(text))
    text = _LEADING_MENTIONS.sub("", _URL.sub("", text).strip())
    return " ".join(text.split())


def _platform_error(exc: Exception) -> str:
    return " ".join(str(exc).split())[:MAX_ERROR]


def _header_time(headers: Mapping[str, str], name: str) -> datetime | None:
    value = str(headers.get(name, "")).strip()
    if not value.isdigit():
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def retry_at(headers: Mapping[str, str]) -> datetime:
    """When a rate-limited call may be made again: the 15-minute window's reset
    (`x-rate-limit-reset`), or the 24-hour cap's (`x-user-limit-24hour-reset`,
    `x-app-limit-24hour-reset`) when that cap is the one spent; the latest of those spent."""
    spent = []
    for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"):
        reset = _header_time(headers, f"{prefix}-reset")
        if reset is not None and str(headers.get(f"{prefix}-remaining", "0")).strip() == "0":
            spent.append(reset)
    if spent:
        return max(spent)
    window = _header_time(headers, "x-rate-limit-reset")
    return window or datetime.now(UTC) + RATE_WINDOW


class _DuplicateContent(PermanentError):
    """X refused a post as the same text as one of ours: a retry of a half-done send."""


class ReplyAccountNotConfigured(OutsideReplyWindow):
    """The reply account has no tokens to post with (none entered yet): the answer is
    replied elsewhere, by hand, or retried once the tokens are entered; nothing failed."""


@contextmanager
def _calling(what: str) -> Iterator[None]:
    """X's answers as the connector's errors (base.py says what each makes the caller do)."""
    try:
        yield
    except tweepy.TooManyRequests as exc:
        headers = getattr(exc.response, "headers", {}) or {}
        raise RateLimited(
            f"X rate limit reached ({what})",
            retry_at=retry_at({k.lower(): v for k, v in headers.items()}),
            platform_error=_platform_error(exc),
        ) from exc
    except tweepy.Unauthorized as exc:
        raise NeedsReauthorization(
            f"X refused the credentials ({what})", platform_error=_platform_error(exc)
        ) from exc
    except tweepy.Forbidden as exc:
        messages = " ".join(str(m) for m in exc.api_messages).lower()
        kind = _DuplicateContent if DUPLICATE in messages else PermanentError
        raise kind(f"X refused {what}", platform_error=_platform_error(exc)) from exc
    except (tweepy.NotFound, tweepy.BadRequest) as exc:
        raise PermanentError(f"X refused {what}", platform_error=_platform_error(exc)) from exc
    except tweepy.TwitterServerError as exc:
        raise TransientError(f"X failed ({what})", platform_error=_platform_error(exc)) from exc
    except tweepy.HTTPException as exc:  # another status: 402 (credits spent), 409…
        status = getattr(exc.response, "status_code", 0)
        error: type[ConnectorError] = PermanentError if 400 <= status < 500 else TransientError
        raise error(f"X answered {status} ({what})", platform_error=_platform_error(exc)) from exc
    except (requests.RequestException, ValueError) as exc:  # network, or not JSON
        raise TransientError(f"cannot reach X ({what})", platform_error=str(exc)) from exc


class _Session(requests.Session):
    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(method, url, *args, **kwargs)


# --- the connector ------------------------------------------------------------------------


class XConnector(Connector):
    platform = "x"
    label = "X (Twitter)"
    channels = (CHANNEL,)
    max_reply_length = 280
    max_thread_parts = 5
    # X documents no status for a delivery refused by its receiver; anything but 200 is a
    # failed delivery to X, which it retries. 401: the request did not authenticate.
    rejected_status = 401
    # Basic access allows 10 mention reads a user and 15 an app per 15 minutes; rate limits
    # beyond that are waited out by their reset headers.
    poll_interval = timedelta(minutes=2)
    settings_fields = (
        SettingField(
            "user_id",
            "사용자 ID (User ID)",
            help="이 계정의 숫자 사용자 ID(예: 2244994945). 사용자 이름은 바뀔 수 있어 ID로 "
            "언급(멘션)을 가져옵니다. GET /2/users/by/username/:이름 으로 확인할 수 있습니다.",
        ),
        SettingField(
            "bearer_token",
            "베어러 토큰 (Bearer Token)",
            secret=True,
            help="X 개발자 포털(developer.x.com)의 프로젝트 앱 → Keys and tokens의 Bearer "
            "Token. 이 계정의 언급(GET /2/users/:id/mentions)을 2분마다 가져올 때 씁니다.",
        ),
        SettingField(
            "consumer_key",
            "API 키 (API Key / Consumer Key)",
            secret=True,
            required=False,
            help="같은 앱의 API Key. 이 계정이 답변을 게시할 때(OAuth 1.0a) 필요합니다.",
        ),
        SettingField(
            "consumer_secret",
            "API 키 시크릿 (API Key Secret / Consumer Secret)",
            secret=True,
            required=False,
            help="같은 앱의 API Key Secret. 답변 게시와, Account Activity 웹훅"
            "(/hooks/x/<계정 핸들>/)의 CRC 응답과 서명(x-twitter-webhooks-signature) "
            "확인에 씁니다.",
        ),
        SettingField(
            "access_token",
            "액세스 토큰 (Access Token)",
            secret=True,
            required=False,
            help="답변을 게시하는 계정(예: @seoul_smc)으로 앱을 승인해 받은 Access Token. "
            "앱 권한은 읽기·쓰기(Read and write)여야 합니다.",
        ),
        SettingField(
            "access_token_secret",
            "액세스 토큰 시크릿 (Access Token Secret)",
            secret=True,
            required=False,
            help="위 Access Token의 시크릿.",
        ),
        SettingField(
            "city_accounts",
            "시의 다른 계정 (City's own accounts)",
            required=False,
            help="이 계정을 언급하는 시의 계정(예: 답변 계정 @seoul_smc)의 이름이나 숫자 ID를 "
            "쉼표로 구분해 입력합니다. 그 계정들이 쓴 글(우리 답변)은 시민 메시지로 받지 "
            "않습니다.",
        ),
    )

    # --- clients ------------------------------------------------------------------------

    def _client(self, account: AccountConfig) -> Any:
        client = tweepy.Client(
            bearer_token=account.get("bearer_token") or None,
            consumer_key=account.get("consumer_key") or None,
            consumer_secret=account.get("consumer_secret") or None,
            access_token=account.get("access_token") or None,
            access_token_secret=account.get("access_token_secret") or None,
            return_type=dict,
            wait_on_rate_limit=False,  # a worker never sleeps; the poller and outbox wait
        )
        client.session = _Session()
        return client

    def _user_id(self, account: AccountConfig) -> str:
        user_id = account.get("user_id").strip()
        if not user_id.isdigit():
            raise PermanentError(f"the X account {account.handle} has no numeric user ID")
        return user_id

    def _writer(self, account: AccountConfig) -> Any:
        names = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        missing = [name for name in names if not account.get(name)]
        if missing:
            raise ReplyAccountNotConfigured(
                f"the X account {account.handle} cannot post: missing {', '.join(missing)}"
            )
        return self._client(account)

    # --- polling ------------------------------------------------------------------------

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        """Mentions newer than the cursor (a tweet id), every page of them; the new cursor
        is the newest id seen.

        An empty cursor starts from now: the newest mention's id is stored and nothing
        before it is taken (an account connected for the first time may hold years of
        mentions, which would open stale cases and bury the triage queue; the call center
        import is the way in for history). With no mention at all, the cursor is the id X
        would give a post made a minute ago."""
        if not account.get("bearer_token"):
            raise PermanentError(f"the X account {account.handle} has no bearer token")
        user_id = self._user_id(account)
        client = self._client(account)
        started = datetime.now(UTC)
        if not cursor.isdigit():
            with _calling("reading mentions"):
                page = client.get_users_mentions(user_id, max_results=5)
            ids = [as_id(as_dict(t).get("id")) for t in as_list(as_dict(page).get("data"))]
            newest = _newest(ids, "")
            return FetchResult(ParsedDelivery(), newest or snowflake_at(started - CLOCK_MARGIN))
        tweets: list[dict[str, Any]] = []
        users: dict[str, dict[str, Any]] = {}
        token = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {
                "since_id": cursor,
                "expansions": "author_id",
                "tweet_fields": TWEET_FIELDS,
                "max_results": PAGE_SIZE,
            }
            if token:
                params["pagination_token"] = token
            with _calling("reading mentions"):
                page = as_dict(client.get_users_mentions(user_id, **params))
            tweets += [as_dict(t) for t in as_list(page.get("data"))]
            for user in as_list(as_dict(page.get("includes")).get("users")):
                users[as_id(as_dict(user).get("id"))] = as_dict(user)
            token = as_dict(page.get("meta")).get("next_token")
            if not token:
                break
        own = self._own(account)
        messages, ignored = [], 0
        for tweet in tweets:
            message = self._mention(account, tweet, users, own)
            if message is None:
                ignored += 1
            else:
                messages.append(message)
        newest = _newest([as_id(t.get("id")) for t in tweets], cursor)
        return FetchResult(ParsedDelivery(messages=messages, ignored=ignored), newest)

    def _own(self, account: AccountConfig) -> set[str]:
        """The city's accounts (ids and names, lower-case): their posts are ours."""
        own = _names(account.get("city_accounts")) | _names(account.handle)
        if account.get("user_id"):
            own.add(account.get("user_id").strip())
        return own

    def _mention(
        self,
        account: AccountConfig,
        tweet: dict[str, Any],
        users: dict[str, dict[str, Any]],
        own: set[str],
    ) -> NormalizedMessage | None:
        author_id = as_id(tweet.get("author_id"))
        author = users.get(author_id, {})
        username = as_id(author.get("username"))
        references = [as_dict(r) for r in as_list(tweet.get("referenced_tweets"))]
        if author_id in own or username.lower() in own:
            return None  # one of our replies, which mention the account they answer for
        if any(r.get("type") == "retweeted" for r in references):
            return None
        external_id = as_id(tweet.get("id"))
        text = _post_text(as_dict(tweet.get("note_tweet")).get("text")) or _post_text(
            tweet.get("text")
        )
        if not external_id or not text:
            return None
        replied_to = [as_id(r.get("id")) for r in references if r.get("type") == "replied_to"]
        return NormalizedMessage(
            channel=CHANNEL,
            external_id=external_id,
            text=text[: settings.SOTONG_MAX_TEXT_CHARS],
            # X's times always end in Z: one without an offset is not X's, so not taken as UTC.
            sent_at=iso_moment(tweet.get("created_at"), naive_zone=None),
            account=account.handle,
            author=f"@{username}" if username else author_id,
            in_reply_to=replied_to[0] if replied_to else "",
            raw=clean_raw({"data": tweet, "includes": {"users": [author] if author else []}}),
        )

    # --- the Account Activity webhook ---------------------------------------------------

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> HandshakeResponse:
        token = request.query.get("crc_token", "")
        secret = account.get("consumer_secret")
        if not token:
            return HandshakeResponse(400, b'{"error": "crc_token is missing"}', "application/json")
        if not secret:
            return HandshakeResponse(403, b'{"error": "no consumer secret"}', "application/json")
        digest = hmac.new(secret.encode(), token.encode(), hashlib.sha256).digest()
        body = {"response_token": "sha256=" + base64.b64encode(digest).decode("ascii")}
        return HandshakeResponse(200, json.dumps(body).encode(), "application/json")

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        secret = account.get("consumer_secret")
        if not secret:
            raise SignatureInvalid("no consumer secret is set for this account")
        header = request.headers.get(SIGNATURE_HEADER, "")
        scheme, _, given = header.partition("=")  # base64 ends in "=": split at the first
        if scheme.strip().lower() != "sha256" or not given.strip():
            raise SignatureInvalid(f"missing or malformed {SIGNATURE_HEADER} header")
        digest = hmac.new(secret.encode(), request.body, hashlib.sha256).digest()
        expected = base64.b64encode(digest)
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected):
            raise SignatureInvalid("the signature does not match the body")

    def parse(self, account: AccountConfig, request: WebhookRequest) -> ParsedDelivery:
        data = decode_json_body(request.body)
        if not isinstance(data, dict):
            raise InvalidInput("the delivery is not a JSON object")
        for_user = as_id(data.get("for_user_id"))
        own = self._own(account) | ({for_user} if for_user else set())
        messages: list[NormalizedMessage] = []
        withdrawals: list[Withdrawal] = []
        ignored = 0
        for key, value in data.items():
            if key == "tweet_create_events":
                for tweet in as_list(value):
                    message = self._created(account, as_dict(tweet), for_user, own)
                    if message is None:
                        ignored += 1
                    else:
                        messages.append(message)
            elif key == "tweet_delete_events":
                for event in as_list(value):
                    deleted = as_id(as_dict(as_dict(event).get("status")).get("id"))
                    if deleted:
                        withdrawals.append(Withdrawal(deleted))
                    else:
                        ignored += 1
            elif key.endswith("_events") or key == "user_event":
                # Likes, follows, direct messages, typing, read receipts, revokes: not
                # messages to triage (direct messages would need X's DM permissions).
                ignored += len(value) if isinstance(value, list) else 1
        return ParsedDelivery(messages, withdrawals, ignored)

    def _created(
        self, account: AccountConfig, tweet: dict[str, Any], for_user: str, own: set[str]
    ) -> NormalizedMessage | None:
        user = as_dict(tweet.get("user"))
        author_id = as_id(user.get("id_str")) or as_id(user.get("id"))
        name = as_id(user.get("screen_name"))
        if author_id in own or name.lower() in own or "retweeted_status" in tweet:
            return None  # our own posts and replies, and retweets
        handle = self._subscribed_handle(account, tweet, for_user)
        external_id = as_id(tweet.get("id_str")) or as_id(tweet.get("id"))
        extended = as_dict(tweet.get("extended_tweet"))
        text = _post_text(extended.get("full_text")) or _post_text(tweet.get("full_text"))
        text = text or _post_text(tweet.get("text"))
        if not handle or not external_id or not text:
            return None
        return NormalizedMessage(
            channel=CHANNEL,
            external_id=external_id,
            text=text[: settings.SOTONG_MAX_TEXT_CHARS],
            sent_at=_v1_time(tweet),
            account=handle,
            author=f"@{name}" if name else author_id,
            in_reply_to=as_id(tweet.get("in_reply_to_status_id_str")),
            raw=clean_raw(tweet),
        )

    def _subscribed_handle(
        self, account: AccountConfig, tweet: dict[str, Any], for_user: str
    ) -> str:
        """The account the event is for. An X app has one webhook URL for all its
        subscribed accounts, so a delivery to one account's URL may be for another: it is
        named by the @name the post gives for `for_user_id` (ingest refuses a name the
        directory does not have, and the delivery shows as failed)."""
        if not for_user or for_user == account.get("user_id").strip():
            return account.handle
        mentions = as_list(as_dict(tweet.get("entities")).get("user_mentions"))
        for mention in mentions:
            mention = as_dict(mention)
            if as_id(mention.get("id_str")) == for_user and as_id(mention.get("screen_name")):
                return "@" + as_id(mention.get("screen_name"))
        if as_id(tweet.get("in_reply_to_user_id_str")) == for_user:
            name = as_id(tweet.get("in_reply_to_screen_name"))
            return f"@{name}" if name else ""
        return ""

    # --- replies ------------------------------------------------------------------------

    def length(self, text: str) -> int:
        return int(parse_tweet(text).weightedLength) if text else 0

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        """Post the reply (each part of a thread in reply to the one before). A retry of a
        send that failed halfway is refused by X as duplicate content at its first part:
        the parts already there are found and the thread goes on from the first missing."""
        parts = list(reply.thread_parts) or [reply.text]
        client = self._writer(account)
        posted: list[str] = []
        while len(posted) < len(parts):
            parent = posted[-1] if posted else reply.in_reply_to
            try:
                posted.append(self._post(client, parts[len(posted)], parent))
            except _DuplicateContent:
                found = self._already_posted(client, account, reply, parts)
                if len(found) <= len(posted):
                    raise
                posted = found
        return SentReply(platform_id=posted[0], url=self._url(account, posted[0]))

    def _post(self, client: Any, text: str, in_reply_to: str) -> str:
        with _calling("the reply"):
            answer = as_dict(client.create_tweet(text=text, in_reply_to_tweet_id=in_reply_to))
        tweet_id = as_id(as_dict(answer.get("data")).get("id"))
        if not tweet_id:
            raise TransientError("X answered without the new post's id", platform_error="")
        return tweet_id

    def find_sent(self, account: AccountConfig, reply: OutgoingReply) -> SentReply | None:
        """X honours no idempotency key: after a crash, our recent posts are read for the
        reply (every part of it) in the citizen's thread. A thread found only in part is
        not 'sent': the send goes on, and X's duplicate refusal leads it past the parts
        that are there."""
        parts = list(reply.thread_parts) or [reply.text]
        client = self._writer(account)
        found = self._already_posted(client, account, reply, parts)
        if len(found) < len(parts):
            return None
        return SentReply(platform_id=found[0], url=self._url(account, found[0]))

    def _already_posted(
        self, client: Any, account: AccountConfig, reply: OutgoingReply, parts: list[str]
    ) -> list[str]:
        """The ids of the reply's parts already posted, in order, as far as they go."""
        user_id = self._user_id(account)
        replies: dict[str, list[dict[str, Any]]] = {}
        params: dict[str, Any] = {
            "tweet_fields": "referenced_tweets,created_at",
            "max_results": PAGE_SIZE,
            "exclude": "retweets",
            "user_auth": True,
        }
        if reply.in_reply_to.isdigit():
            params["since_id"] = reply.in_reply_to  # our reply is newer than its target
        for _ in range(SENT_PAGES):
            with _calling("reading our recent posts"):
                page = as_dict(client.get_users_tweets(user_id, **params))
            for tweet in as_list(page.get("data")):
                tweet = as_dict(tweet)
                for ref in as_list(tweet.get("referenced_tweets")):
                    if as_dict(ref).get("type") == "replied_to":
                        replies.setdefault(as_id(as_dict(ref).get("id")), []).append(tweet)
            token = as_dict(page.get("meta")).get("next_token")
            if not token:
                break
            params["pagination_token"] = token
        posted: list[str] = []
        parent = reply.in_reply_to
        for part in parts:
            wanted = _fingerprint(part)
            match = next(
                (t for t in replies.get(parent, []) if _fingerprint(str(t.get("text"))) == wanted),
                None,
            )
            if match is None:
                break
            parent = as_id(match.get("id"))
            posted.append(parent)
        return posted

    def _url(self, account: AccountConfig, tweet_id: str) -> str:
        return f"https://x.com/{account.handle.lstrip('@')}/status/{tweet_id}"

    def health(self, account: AccountConfig) -> dict[str, Any]:
        writer = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        return {
            "user_id": account.get("user_id"),
            "polls_mentions": bool(account.get("bearer_token") and account.get("user_id")),
            "webhook": bool(account.get("consumer_secret")),
            "can_reply": all(account.get(name) for name in writer),
        }
