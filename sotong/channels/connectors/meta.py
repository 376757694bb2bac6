"""Meta (Facebook Pages and Instagram) webhooks: the `hub.challenge` handshake, the
`X-Hub-Signature-256` check over the raw body, and the page feed, Messenger, Instagram
comment and Instagram direct-message events turned into normalized messages; and the
answers posted back by the Graph API, as a comment reply or a message.

Payload shapes follow Meta's Graph API webhooks reference (page `feed`, Instagram
`comments`/`mentions`) and the Messenger Platform webhook events (`messages`).

Replies (Graph API, `GRAPH_VERSION`, with the reply account's page access token):
- a page post or comment: `POST /{object-id}/comments` with `message` (Graph API
  reference, Comments edge); a reply to a reply goes to its top-level comment, since Page
  comments nest one level;
- an Instagram comment: `POST /{ig-comment-id}/replies` with `message` (IG Comment
  Replies reference: Instagram files a reply to a reply under the top-level comment;
  comments on a live video take no reply);
- a Messenger message: the Send API, `POST /{page-id}/messages` with `recipient={"id":
  PSID}`, `messaging_type=RESPONSE` and `message={"text": …}` (text up to 2,000
  characters);
- an Instagram direct message: the Instagram Messaging Send API (Messenger Platform),
  `POST /{page-id}/messages` with `recipient={"id": IGSID}` and `message={"text": …}`
  (text UTF-8, at most 1,000 bytes).
Both kinds of message are answered only within Meta's 24-hour standard messaging window
from the citizen's message; after it the delivery becomes "reply elsewhere".

Errors are Graph API error objects (`{"error": {"code", "error_subcode", "message",
…}}`, Graph API "Handling Errors"); rate-limit waits come from the
X-Business-Use-Case-Usage / X-Page-Usage / X-App-Usage headers'
`estimated_time_to_regain_access` (minutes; Graph API "Rate Limits").
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
from django.conf import settings

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    ConnectorError,
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
from sotong.channels.connectors.fields import as_dict, as_id, as_list, as_text, unix_moment
from sotong.errors import InvalidInput
from sotong.inbox.normalize import MAX_ID, NormalizedMessage, clean_raw, decode_json_body

SIGNATURE_HEADER = "x-hub-signature-256"
# Meta's `object` → the directory's channel code.
CHANNEL_OF_OBJECT = {"page": "facebook", "instagram": "instagram"}
TIMEOUT = 30.0  # seconds; well below the outbox's STALE_SENDING
GRAPH_URL = "https://graph.facebook.com"


# What a citizen's message is, from its stored raw payload: it decides how the answer goes
# back and how long it may be.
FACEBOOK_COMMENT = "facebook_comment"  # a comment on, or a visitor post to, the page
MESSENGER = "messenger"
INSTAGRAM_COMMENT = "instagram_comment"
INSTAGRAM_LIVE_COMMENT = "instagram_live_comment"
INSTAGRAM_DM = "instagram_dm"

# Reply limits by kind, in characters. Messenger: "text … 2000 character limit" (Send API
# reference). Instagram DM: "UTF-8 and 1000 bytes or less" (Instagram Messaging, Send a
# Message); 333 characters of the Basic Multilingual Plane (Hangul, Latin, ☎) are at most
# 999 bytes, and send_reply refuses the rare text that still exceeds 1,000 bytes (emoji
# take 4). Instagram comment: 2,200, Instagram's limit for captions and comments. Page
# comment: 8,000, Facebook's comment limit (the Graph API reference names no figure).
REPLY_LIMITS = {
    FACEBOOK_COMMENT: 8000,
    MESSENGER: 2000,
    INSTAGRAM_COMMENT: 2200,
    INSTAGRAM_LIVE_COMMENT: 2200,
    INSTAGRAM_DM: 333,
}
INSTAGRAM_DM_MAX_BYTES = 1000
# Meta's standard messaging window: a page may answer a message within 24 hours of it.
MESSAGING_WINDOW = timedelta(hours=24)

# Graph API error codes (Graph API "Handling Errors"; Business Use Case rate limits 80001
# Pages, 80002 Instagram, 80006 Messenger).
RATE_LIMIT_CODES = {4, 17, 32, 613, 80001, 80002, 80006}
TOKEN_CODES = {102, 190}  # session or access token expired, revoked, invalid
TEMPORARY_CODES = {1, 2}  # "API Unknown", "API Service": downtime, retry later
# `(#10) This message is sent outside of allowed window`: Messenger's and Instagram's
# subcodes for a send after the 24-hour window (our clock and Meta's may differ).
OUTSIDE_WINDOW_SUBCODES = {2018278, 2534022}
OBJECT_DELETED_SUBCODE = 33
# When a rate limit names no time to regain access: Meta's windows roll over an hour.
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=15)
USAGE_HEADERS = ("x-business-use-case-usage", "x-page-usage", "x-app-usage", "x-ad-account-usage")


# --- Meta's webhook scheme, shared with Threads -----------------------------------------


def hub_handshake(verify_token: str, request: WebhookRequest) -> HandshakeResponse:
    """Meta's verification request: echo `hub.challenge` when `hub.verify_token` is ours."""
    given = request.query.get("hub.verify_token", "")
    if (
        request.query.get("hub.mode") == "subscribe"
        and verify_token
        and hmac.compare_digest(given.encode(), verify_token.encode())
    ):
        return HandshakeResponse(200, request.query.get("hub.challenge", "").encode())
    return HandshakeResponse(403, b"verification failed")


def check_hub_signature(app_secret: str, request: WebhookRequest) -> None:
    """`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body with the app secret>`."""
    if not app_secret:
        raise SignatureInvalid("no app secret is set for this account")
    header = request.headers.get(SIGNATURE_HEADER, "")
    scheme, _, given = header.partition("=")
    if scheme != "sha256" or not given:
        raise SignatureInvalid(f"missing or malformed {SIGNATURE_HEADER} header")
    expected = hmac.new(app_secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
        raise SignatureInvalid("the signature does not match the body")


# --- Graph API errors, shared with Threads ----------------------------------------------


def _regain_minutes(value: Any) -> float:
    """The largest `estimated_time_to_regain_access` anywhere in a usage header's JSON
    (X-App-Usage is flat; X-Business-Use-Case-Usage maps ids to lists of entries)."""
    if isinstance(value, dict):
        here = value.get("estimated_time_to_regain_access")
        own = float(here) if isinstance(here, int | float) and not isinstance(here, bool) else 0
        return max([own, *(_regain_minutes(v) for v in value.values())])
    if isinstance(value, list):
        return max([0.0, *(_regain_minutes(v) for v in value)])
    return 0.0


def rate_limit_reset(headers: Mapping[str, str], now: datetime) -> datetime:
    """When Meta says calls will be accepted again, from its usage headers; without a
    figure, DEFAULT_RATE_LIMIT_WAIT from now."""
    minutes = 0.0
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in USAGE_HEADERS:
        try:
            minutes = max(minutes, _regain_minutes(json.loads(lowered.get(name) or "null")))
        except (ValueError, TypeError):
            continue  # a header we cannot read is no reason to lose the error
    return now + (timedelta(minutes=minutes) if minutes > 0 else DEFAULT_RATE_LIMIT_WAIT)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def graph_error(response: requests.Response, *, now: datetime | None = None) -> ConnectorError:
    """The connector error for a failed Graph API (or Threads API) response."""
    now = now or datetime.now(UTC)
    try:
        body = response.json()
    except ValueError:
        body = None
    error = as_dict(as_dict(body).get("error"))
    code, subcode = _as_int(error.get("code")), _as_int(error.get("error_subcode"))
    message = str(error.get("error_user_msg") or error.get("message") or "")[:500]
    where = f"#{code}" + (f"/{subcode}" if subcode else "") if code is not None else ""
    trace = (
        f" (fbtrace_id {error['fbtrace_id']})" if isinstance(error.get("fbtrace_id"), str) else ""
    )
    platform_error = f"HTTP {response.status_code} {where} {message}".strip() + trace
    if code in RATE_LIMIT_CODES or (code is None and response.status_code == 429):
        return RateLimited(
            "Meta rate limit reached",
            retry_at=rate_limit_reset(response.headers, now),
            platform_error=platform_error,
        )
    if code in TOKEN_CODES or (code is None and response.status_code == 401):
        return NeedsReauthorization(
            "the access token expired or was revoked", platform_error=platform_error
        )
    if subcode in OUTSIDE_WINDOW_SUBCODES:
        return OutsideReplyWindow(
            "Meta's 24-hour messaging window has closed: reply by comment or elsewhere",
            platform_error=platform_error,
        )
    if response.status_code >= 500 or code in TEMPORARY_CODES or error.get("is_transient") is True:
        return TransientError("Meta is unavailable for now", platform_error=platform_error)
    if code == 100 and subcode == OBJECT_DELETED_SUBCODE:
        return PermanentError(
            "the citizen's post or comment no longer exists", platform_error=platform_error
        )
    if code == 10 or (code is not None and 200 <= code <= 299):
        return PermanentError(
            "the access token lacks the permission for this reply", platform_error=platform_error
        )
    return PermanentError("Meta refused the reply", platform_error=platform_error)


def graph_call(
    method: str,
    url: str,
    *,
    data: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One Graph API (or Threads API) call; its JSON object, or the mapped error.

    Network errors are reported by type only: their text may quote the URL, and a GET
    carries the access token in its query."""
    try:
        response = requests.request(method, url, data=data, params=params, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise TransientError("could not reach Meta", platform_error=type(exc).__name__) from None
    if response.status_code >= 400:
        raise graph_error(response)
    try:
        body = response.json()
    except ValueError:
        raise TransientError(
            "Meta answered with something other than JSON",
            platform_error=f"HTTP {response.status_code}",
        ) from None
    if not isinstance(body, dict):
        raise TransientError("Meta answered with an unexpected shape")
    if "error" in body:  # the Graph API has answered 200 with an error object
        raise graph_error(response)
    return body


def reply_kind(raw: Mapping[str, Any]) -> str:
    """What the citizen's message was, from the raw payload `parse` stored for it ("" when
    it is none of the kinds Meta can answer)."""
    field = raw.get("field")
    if field == "feed":
        return FACEBOOK_COMMENT
    if field == "comments":
        return INSTAGRAM_COMMENT
    if field == "live_comments":
        return INSTAGRAM_LIVE_COMMENT
    if isinstance(raw.get("messaging"), dict):
        return {"page": MESSENGER, "instagram": INSTAGRAM_DM}.get(str(raw.get("object")), "")
    return ""


class Collector:
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
    # The Graph API version replies are posted with (Meta's "latest" in its docs, 2026);
    # each version lives about two years.
    graph_version: ClassVar[str] = "v25.0"
    max_reply_length = max(REPLY_LIMITS.values())  # by kind: see reply_limit
    settings_fields = (
        SettingField(
            "app_secret",
            "앱 시크릿 (App Secret)",
            secret=True,
            help=(
                "Meta 앱 대시보드(앱 설정 > 기본)의 앱 시크릿. 웹훅 주소 "
                "/hooks/meta/<계정 핸들>/ 로 오는 전달의 서명(X-Hub-Signature-256)을 "
                "확인하고, 답변 호출에 appsecret_proof를 붙입니다."
            ),
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
            help=(
                "답변을 게시할 페이지의 액세스 토큰(만료되지 않는 시스템 사용자 토큰 권장). "
                "권한: 페이스북 댓글 답글 pages_manage_engagement·pages_read_engagement, "
                "메신저 pages_messaging, 인스타그램 댓글 instagram_manage_comments, "
                "인스타그램 DM instagram_manage_messages. 메신저·DM 답변은 시민의 메시지 "
                "후 24시간 안에만 보낼 수 있고, 그 뒤에는 '다른 방법으로 답변'이 됩니다."
            ),
        ),
        SettingField(
            "page_id",
            "페이지 ID (Page ID)",
            required=False,
            help=(
                "답변을 보내는 페이스북 페이지의 ID(인스타그램 계정은 연결된 페이지의 ID). "
                "메시지 답변과, 장애 뒤 이미 게시된 댓글 답글을 찾는 데 씁니다."
            ),
        ),
    )

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> HandshakeResponse:
        return hub_handshake(account.get("verify_token"), request)

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        check_hub_signature(account.get("app_secret"), request)

    def parse(self, account: AccountConfig, request: WebhookRequest) -> ParsedDelivery:
        data = decode_json_body(request.body)
        if not isinstance(data, dict):
            raise InvalidInput("the delivery is not a JSON object")
        channel = CHANNEL_OF_OBJECT.get(data.get("object"))  # type: ignore[arg-type]
        if channel is None:
            raise InvalidInput(f"unknown object {str(data.get('object'))[:40]!r}")
        found = Collector(account)
        for entry in as_list(data.get("entry")):
            entry = as_dict(entry)
            for change in as_list(entry.get("changes")):
                self._change(found, channel, as_dict(change), entry)
            for event in as_list(entry.get("messaging")):
                self._messaging(found, channel, as_dict(event), str(data["object"]))
        return ParsedDelivery(found.messages, found.withdrawals, found.ignored)

    # --- events -----------------------------------------------------------------------

    def _change(
        self, found: Collector, channel: str, change: dict[str, Any], entry: dict[str, Any]
    ) -> None:
        field, value = change.get("field"), as_dict(change.get("value"))
        if channel == "facebook" and field == "feed":
            self._feed(found, value)
        elif channel == "instagram" and field in {"comments", "live_comments"}:
            author = as_dict(value.get("from"))
            found.message(
                "instagram",
                as_id(value.get("id")),
                as_text(value.get("text")),
                author=as_text(author.get("username")) or as_id(author.get("id")),
                in_reply_to=as_id(value.get("parent_id"))
                or as_id(as_dict(value.get("media")).get("id")),
                sent_at=unix_moment(value.get("timestamp")) or unix_moment(entry.get("time")),
                raw=change,
            )
        else:
            # Instagram `mentions` carry only ids (the text needs a Graph API call), and
            # reactions, shares, ratings… are not messages.
            found.ignored += 1

    def _feed(self, found: Collector, value: dict[str, Any]) -> None:
        item, verb = value.get("item"), value.get("verb")
        if item not in {"comment", "post", "status"}:
            found.ignored += 1
            return
        external_id = (
            as_id(value.get("comment_id")) if item == "comment" else as_id(value.get("post_id"))
        )
        if verb == "remove":
            found.withdrawal(external_id)
        elif verb == "add":
            author = as_dict(value.get("from"))
            found.message(
                "facebook",
                external_id,
                as_text(value.get("message")),
                author=as_text(author.get("name")) or as_id(author.get("id")),
                in_reply_to=as_id(value.get("parent_id")) if item == "comment" else "",
                sent_at=unix_moment(value.get("created_time")),
                raw={"field": "feed", "value": value},
            )
        else:  # edited, hide, unhide…: the first version stays the one on record
            found.ignored += 1

    def _messaging(
        self, found: Collector, channel: str, event: dict[str, Any], meta_object: str
    ) -> None:
        message = as_dict(event.get("message"))
        if not message or message.get("is_echo"):  # reads, deliveries, our own sends
            found.ignored += 1
            return
        mid = as_id(message.get("mid"))
        if message.get("is_deleted"):  # Instagram: the citizen unsent the message
            found.withdrawal(mid)
            return
        found.message(
            channel,
            mid,
            as_text(message.get("text")),
            author=as_id(as_dict(event.get("sender")).get("id")),
            in_reply_to=as_id(as_dict(message.get("reply_to")).get("mid")),
            sent_at=unix_moment(event.get("timestamp")),
            # With Meta's `object`: a reply goes by the Messenger or the Instagram Send API.
            raw={"object": meta_object, "messaging": event},
        )

    # --- replies ----------------------------------------------------------------------
    # By the Graph API over `requests`: Meta maintains no Python SDK for the Pages,
    # Messenger and Instagram endpoints (its facebook-business SDK covers the Marketing
    # API; the community facebook-sdk is unmaintained), and each reply is one POST.

    def reply_limit(self, raw: Mapping[str, Any]) -> int:
        return REPLY_LIMITS.get(reply_kind(raw), min(REPLY_LIMITS.values()))

    def _url(self, *path: str) -> str:
        return "/".join([GRAPH_URL, self.graph_version, *path])

    def _auth(self, account: AccountConfig) -> dict[str, str]:
        """The access token (in the POST body, never the URL) and, when the app secret is
        set, the appsecret_proof that apps with "Require App Secret" demand."""
        token = account.get("page_access_token")
        if not token:
            raise NeedsReauthorization("no page access token is set for the reply account")
        auth = {"access_token": token}
        secret = account.get("app_secret")
        if secret:
            auth["appsecret_proof"] = hmac.new(
                secret.encode(), token.encode(), hashlib.sha256
            ).hexdigest()
        return auth

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        kind = reply_kind(reply.raw)
        if not kind:
            # E.g. a message stored without Meta's payload (imported, typed in): the
            # Graph API has no way back to it.
            raise OutsideReplyWindow(
                "not a Meta comment or message this account can answer: reply elsewhere"
            )
        if kind == INSTAGRAM_LIVE_COMMENT:
            raise OutsideReplyWindow(
                "Instagram takes no comment reply on a live video: reply by direct message "
                "or elsewhere"
            )
        auth = self._auth(account)
        if kind in {MESSENGER, INSTAGRAM_DM}:
            return self._send_message(account, reply, kind, auth)
        if kind == INSTAGRAM_COMMENT:
            url = self._url(reply.in_reply_to, "replies")
        else:
            url = self._url(self._comment_target(reply), "comments")
        body = graph_call("POST", url, data={"message": reply.text, **auth})
        return SentReply(platform_id=as_id(body.get("id")))

    def _comment_target(self, reply: OutgoingReply) -> str:
        """A page post, or the top-level comment of the citizen's comment (Page comments
        nest one level: a reply to a reply is filed under its parent)."""
        value = as_dict(reply.raw.get("value"))
        if value.get("item") != "comment":
            return reply.in_reply_to
        parent, post = as_id(value.get("parent_id")), as_id(value.get("post_id"))
        return parent if parent and parent != post else reply.in_reply_to

    def _send_message(
        self, account: AccountConfig, reply: OutgoingReply, kind: str, auth: dict[str, str]
    ) -> SentReply:
        event = as_dict(reply.raw.get("messaging"))
        recipient = reply.author or as_id(as_dict(event.get("sender")).get("id"))
        written = reply.sent_at or unix_moment(event.get("timestamp"))
        if written is None or datetime.now(UTC) - written > MESSAGING_WINDOW:
            end = (written + MESSAGING_WINDOW).astimezone(UTC) if written else None
            closed = f" (since {end:%Y-%m-%d %H:%M} UTC)" if end else ""
            raise OutsideReplyWindow(
                f"Meta's 24-hour messaging window has closed{closed}: reply by comment or elsewhere"
            )
        if kind == INSTAGRAM_DM and len(reply.text.encode("utf-8")) > INSTAGRAM_DM_MAX_BYTES:
            raise PermanentError(
                f"the reply is longer than Instagram's {INSTAGRAM_DM_MAX_BYTES} bytes for a "
                "direct message (emoji take 4 bytes each): shorten it and reply by hand"
            )
        data = {
            "recipient": json.dumps({"id": recipient}),
            "message": json.dumps({"text": reply.text}, ensure_ascii=False),
            **auth,
        }
        if kind == MESSENGER:
            data["messaging_type"] = "RESPONSE"
        page = account.get("page_id") or as_id(as_dict(event.get("recipient")).get("id")) or "me"
        body = graph_call("POST", self._url(page, "messages"), data=data)
        return SentReply(platform_id=as_id(body.get("message_id")))

    def find_sent(self, account: AccountConfig, reply: OutgoingReply) -> SentReply | None:
        """After a crash mid-send: our comment reply, if the thread already has it (the
        page's or the Instagram account's reply with the same text). Meta honours no
        idempotency key, so this look-up is the only guard against a second post.

        Messages are not looked up: finding one would need the conversations API (another
        permission, paged history), and the outbox then sends again — a rare second
        message is better than a lost answer."""
        kind = reply_kind(reply.raw)
        text = (reply.thread_parts[0] if reply.thread_parts else reply.text).strip()
        if kind == FACEBOOK_COMMENT:
            page_id = account.get("page_id")
            if not page_id:
                return None
            url = self._url(self._comment_target(reply), "comments")
            fields, ours = (
                "id,message,from",
                lambda c: as_id(as_dict(c.get("from")).get("id")) == page_id,
            )
        elif kind == INSTAGRAM_COMMENT:
            username = account.handle.lstrip("@").lower()
            url = self._url(reply.in_reply_to, "replies")
            fields, ours = (
                "id,text,username",
                lambda c: as_text(c.get("username")).lower() == username,
            )
        else:
            return None
        params = {"fields": fields, "limit": "100", **self._auth(account)}
        if kind == FACEBOOK_COMMENT:
            params["order"] = "reverse_chronological"
        body = graph_call("GET", url, params=params)
        for comment in as_list(body.get("data")):
            comment = as_dict(comment)
            said = as_text(comment.get("message") or comment.get("text"))
            if ours(comment) and said == text and as_id(comment.get("id")):
                return SentReply(platform_id=as_id(comment.get("id")))
        return None
