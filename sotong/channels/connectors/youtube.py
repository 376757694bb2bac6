"""YouTube comments: new comment threads on the city's channel, polled through the YouTube
Data API v3 within its daily quota, and replies posted in the thread.

Calls go through google-api-python-client, the service built offline from its bundled
discovery document (static_discovery=True), authorised with the city's OAuth 2 user
credentials (client id, client secret, refresh token; scope youtube.force-ssl).
commentThreads.list (allThreadsRelatedToChannelId, order=time, textFormat=plainText) returns
`items[]` of commentThread: snippet.videoId, snippet.topLevelComment {id, snippet
{textOriginal, textDisplay, authorDisplayName, authorChannelId.value, publishedAt}},
and nextPageToken; comments.insert takes snippet {parentId, textOriginal}
(developers.google.com/youtube/v3/docs/commentThreads/list, …/comments/insert).

The quota (developers.google.com/youtube/v3/determine_quota_cost): 10,000 units a day
per Google Cloud project, a list call 1 unit a page, comments.insert 50. Polled every
2 minutes, one page each, an account costs 24 × 30 = 720 units a day, 7.2% of the quota,
and leaves 9,280 units for about 185 replies a day. A busy poll reads more pages (1 unit
each, at most MAX_PAGES); accounts sharing one Cloud project share its quota.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import google_auth_httplib2
import httplib2
from django.conf import settings
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

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
from sotong.channels.connectors.fields import as_dict, as_text, iso_moment
from sotong.inbox.normalize import MAX_ID, NormalizedMessage, clean_raw

CHANNEL = "youtube"
SCOPES = ("https://www.googleapis.com/auth/youtube.force-ssl",)
TOKEN_URI = "https://oauth2.googleapis.com/token"
PAGE_SIZE = 100
MAX_PAGES = 10  # one poll costs at most 10 units
MAX_REPLY_CHARS = 10_000
TIMEOUT = 30
PACIFIC = ZoneInfo("America/Los_Angeles")
RATE_LIMIT_WAIT = timedelta(minutes=5)
QUOTA_REASONS = {"quotaExceeded", "dailyLimitExceeded"}
RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
REAUTH_REASONS = {"authError", "insufficientPermissions", "forbidden_scope"}


def next_quota_reset(now: datetime | None = None) -> datetime:
    """The daily quota resets at midnight Pacific time."""
    local = (now or datetime.now(UTC)).astimezone(PACIFIC)
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=PACIFIC)


def _reason(exc: HttpError) -> str:
    try:
        error = as_dict(json.loads(exc.content.decode("utf-8", "replace")).get("error"))
    except (ValueError, AttributeError):
        return ""
    errors = error.get("errors")
    first = as_dict(errors[0]) if isinstance(errors, list) and errors else {}
    return str(first.get("reason") or error.get("status") or "")


def _platform_error(exc: HttpError) -> str:
    return f"{exc.status_code} {_reason(exc)}: {exc.reason}".strip()


def mapped_error(exc: Exception) -> Exception:
    """The connector error for what the client library raised."""
    if isinstance(exc, HttpError):
        status, reason, detail = exc.status_code, _reason(exc), _platform_error(exc)
        if status == 403 and reason in QUOTA_REASONS:
            return RateLimited(
                "YouTube daily quota used up", retry_at=next_quota_reset(), platform_error=detail
            )
        if status in {403, 429} and reason in RATE_REASONS:
            return RateLimited(
                "YouTube rate limit",
                retry_at=datetime.now(UTC) + RATE_LIMIT_WAIT,
                platform_error=detail,
            )
        if status == 401 or (status == 403 and reason in REAUTH_REASONS):
            return NeedsReauthorization("YouTube refused the credentials", platform_error=detail)
        if status >= 500:
            return TransientError(f"YouTube error {status}", platform_error=detail)
        return PermanentError(f"YouTube refused the request ({status})", platform_error=detail)
    if isinstance(exc, RefreshError):
        if getattr(exc, "retryable", False):
            return TransientError("Google's token endpoint failed", platform_error=str(exc)[:300])
        # invalid_grant: the refresh token expired or was revoked; invalid_client: the
        # OAuth client was deleted or its secret changed.
        return NeedsReauthorization("the OAuth token was refused", platform_error=str(exc)[:300])
    return TransientError(f"YouTube unreachable: {type(exc).__name__}")


NETWORK_ERRORS = (httplib2.HttpLib2Error, TransportError, OSError, socket.timeout)


class YouTubeConnector(Connector):
    platform = "youtube"
    label = "YouTube"
    channels = (CHANNEL,)
    max_reply_length = MAX_REPLY_CHARS
    poll_interval: ClassVar[timedelta] = timedelta(minutes=2)  # 7.2% of the quota: see above
    settings_fields = (
        SettingField(
            "channel_id",
            "채널 ID (Channel ID)",
            help="UC로 시작하는 시의 유튜브 채널 ID. 이 채널의 모든 동영상 댓글을 2분마다 "
            "가져옵니다(하루 할당량 10,000단위 중 약 720단위).",
        ),
        SettingField(
            "client_id",
            "OAuth 클라이언트 ID (Client ID)",
            help="Google Cloud 콘솔에서 YouTube Data API v3를 사용 설정하고 만든 OAuth 2.0 "
            "클라이언트 ID.",
        ),
        SettingField("client_secret", "OAuth 클라이언트 보안 비밀 (Client Secret)", secret=True),
        SettingField(
            "refresh_token",
            "리프레시 토큰 (Refresh Token)",
            secret=True,
            help="채널 소유 계정으로 youtube.force-ssl 범위에 동의해 받은 리프레시 토큰. "
            "답글 게시(1건 50단위)에 씁니다.",
        ),
    )

    # --- the client -----------------------------------------------------------------

    def http(self) -> httplib2.Http:
        """The transport (tests put a googleapiclient.http.HttpMockSequence here)."""
        return httplib2.Http(timeout=TIMEOUT)

    def service(self, account: AccountConfig) -> Any:
        credentials = Credentials(
            token=None,
            refresh_token=account.get("refresh_token"),
            client_id=account.get("client_id"),
            client_secret=account.get("client_secret"),
            token_uri=TOKEN_URI,
            scopes=list(SCOPES),
        )
        authorized = google_auth_httplib2.AuthorizedHttp(credentials, http=self.http())
        return build("youtube", "v3", http=authorized, static_discovery=True, cache_discovery=False)

    def _call(self, request: Any) -> dict[str, Any]:
        try:
            result = request.execute()
        except (HttpError, RefreshError) as exc:
            raise mapped_error(exc) from None
        except NETWORK_ERRORS as exc:
            raise mapped_error(exc) from None
        return as_dict(result)

    def _require(self, account: AccountConfig) -> None:
        if not (
            account.get("refresh_token")
            and account.get("client_id")
            and account.get("client_secret")
        ):
            raise NeedsReauthorization("the OAuth client and refresh token are not set")

    # --- polling --------------------------------------------------------------------

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        """Threads newer than the cursor (the newest publishedAt and id seen), newest
        first, paging until a page reaches what was seen. An empty cursor starts from now:
        one page is read for its newest thread and nothing is returned."""
        self._require(account)
        channel_id = account.get("channel_id")
        if not channel_id:
            raise PermanentError("no channel id is set for this account")
        seen_at, seen_id = self._read_cursor(cursor)
        threads = self.service(account).commentThreads()
        messages: list[NormalizedMessage] = []
        newest: tuple[datetime, str] | None = None
        ignored = 0
        page_token: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {
                "part": "snippet",
                "allThreadsRelatedToChannelId": channel_id,
                "order": "time",
                "maxResults": PAGE_SIZE,
                "textFormat": "plainText",
            }
            if page_token:
                params["pageToken"] = page_token
            page = self._call(threads.list(**params))
            reached = not cursor
            for item in page.get("items") or []:
                thread = as_dict(item)
                comment = as_dict(as_dict(thread.get("snippet")).get("topLevelComment"))
                comment_id = str(comment.get("id") or thread.get("id") or "")[:MAX_ID]
                published = iso_moment(as_dict(comment.get("snippet")).get("publishedAt"))
                if not comment_id or published is None:
                    ignored += 1
                    continue
                if newest is None or (published, comment_id) > newest:
                    newest = (published, comment_id)
                if seen_at is not None and (
                    published < seen_at or (published == seen_at and comment_id == seen_id)
                ):
                    reached = True
                    continue
                if cursor:
                    message = self._normalize(account, thread, comment, comment_id, published)
                    if message is None:
                        ignored += 1
                    else:
                        messages.append(message)
            page_token = page.get("nextPageToken")
            if reached or not page_token:
                break
        if newest is None:
            new_cursor = cursor or self._cursor(datetime.now(UTC), "")
        elif seen_at is not None and (newest[0], newest[1]) <= (seen_at, seen_id):
            new_cursor = cursor
        else:
            new_cursor = self._cursor(*newest)
        messages.sort(key=lambda m: m.sent_at or datetime.min.replace(tzinfo=UTC))
        return FetchResult(ParsedDelivery(messages, ignored=ignored), new_cursor)

    @staticmethod
    def _cursor(published: datetime, comment_id: str) -> str:
        return f"{published.astimezone(UTC).isoformat()} {comment_id}".strip()

    @staticmethod
    def _read_cursor(cursor: str) -> tuple[datetime | None, str]:
        moment, _, comment_id = cursor.strip().partition(" ")
        return iso_moment(moment), comment_id

    def _normalize(
        self,
        account: AccountConfig,
        thread: dict[str, Any],
        comment: dict[str, Any],
        comment_id: str,
        published: datetime,
    ) -> NormalizedMessage | None:
        snippet = as_dict(comment.get("snippet"))
        text = as_text(snippet.get("textOriginal")) or as_text(snippet.get("textDisplay"))
        if not text:
            return None
        author = as_text(snippet.get("authorDisplayName")) or as_text(
            as_dict(snippet.get("authorChannelId")).get("value")
        )
        video_id = str(
            as_dict(thread.get("snippet")).get("videoId") or snippet.get("videoId") or ""
        )
        raw = {
            "thread_id": str(thread.get("id") or ""),
            "video_id": video_id,
            "author_channel_id": as_dict(snippet.get("authorChannelId")).get("value", ""),
            "snippet": snippet,
        }
        return NormalizedMessage(
            channel=CHANNEL,
            external_id=comment_id,
            text=text[: settings.SOTONG_MAX_TEXT_CHARS],
            sent_at=published,
            account=account.handle,
            author=author[:MAX_ID],
            in_reply_to=video_id[:MAX_ID],
            raw=clean_raw(raw),
        )

    # --- replies --------------------------------------------------------------------

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        self._require(account)
        body = {"snippet": {"parentId": reply.in_reply_to, "textOriginal": reply.text}}
        if len(reply.text) > MAX_REPLY_CHARS:
            raise PermanentError(f"the reply is longer than {MAX_REPLY_CHARS} characters")
        comments = self.service(account).comments()
        created = self._call(comments.insert(part="snippet", body=body))
        return SentReply(platform_id=str(created.get("id") or ""))

    def find_sent(self, account: AccountConfig, reply: OutgoingReply) -> SentReply | None:
        """After a crash mid-send: our channel's reply with this text in the thread (one
        comments.list call, 1 unit)."""
        self._require(account)
        listing = (
            self.service(account)
            .comments()
            .list(
                part="snippet",
                parentId=reply.in_reply_to,
                maxResults=PAGE_SIZE,
                textFormat="plainText",
            )
        )
        found = self._call(listing)
        channel_id = account.get("channel_id")
        for item in found.get("items") or []:
            snippet = as_dict(as_dict(item).get("snippet"))
            author = as_dict(snippet.get("authorChannelId")).get("value")
            text = as_text(snippet.get("textOriginal")) or as_text(snippet.get("textDisplay"))
            if author == channel_id and text == as_text(reply.text):
                return SentReply(platform_id=str(as_dict(item).get("id") or ""))
        return None

    def health(self, account: AccountConfig) -> dict[str, Any]:
        polls_a_day = int(timedelta(days=1) / self.poll_interval)
        return {
            "poll_interval_minutes": self.poll_interval.total_seconds() / 60,
            "quota_units_a_day_polling": polls_a_day,
            "daily_quota": 10_000,
        }
