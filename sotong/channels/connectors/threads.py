"""Threads (Meta's Threads API): replies and mentions of the city's Threads account by
webhook, turned into messages on the `threads` channel, and the answer posted in the
citizen's thread by the two-step publish; mentions are also polled, as a safety net.

Webhooks follow Meta's scheme (Threads API, "Webhooks"): a `hub.challenge` handshake,
then `X-Hub-Signature-256` over the raw body with the Threads app secret. A notification
is one object: `{"app_id", "topic": "moderate" | "interaction", "target_id", "time",
"subscription_id", "has_uid_field", "values": {"field": "replies" | "mentions" |
"delete" | "publish", "value": {"id", "username", "text", "media_type", "permalink",
"replied_to": {"id"}, "root_post": {"id", "owner_id", "username"}, "shortcode",
"timestamp": "2024-08-07T10:33:16+0000"}}}`. `delete` and `publish` concern the city's
own posts and are ignored, as are the city's own replies. The Mentions API (`GET
/{user-id}/mentions`) returns the same media fields for polling.

Replies (Threads API, "Posts" and "Reply Management"): `POST /{user-id}/threads` with
`media_type=TEXT`, `text` and `reply_to_id` creates a container (`{"id": creation id}`),
and `POST /{user-id}/threads_publish` with `creation_id` publishes it (`{"id": media
id}`). Text posts are limited to 500 characters, emojis counted as their UTF-8 bytes.
A longer answer goes out as a numbered thread, each part in reply to the one before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import regex

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    ConnectorError,
    FetchResult,
    HandshakeResponse,
    NeedsReauthorization,
    OutgoingReply,
    ParsedDelivery,
    PermanentError,
    SentReply,
    SettingField,
    WebhookRequest,
)
from sotong.channels.connectors.fields import as_dict, as_id, as_list, as_text, iso_moment
from sotong.channels.connectors.meta import (
    Collector,
    check_hub_signature,
    graph_call,
    hub_handshake,
)
from sotong.errors import InvalidInput
from sotong.inbox.normalize import decode_json_body

CHANNEL = "threads"
MESSAGE_FIELDS = {"replies", "mentions"}
# The Mentions API: `since` must be at least this Unix time (Threads' launch, July 2023).
MENTIONS_EPOCH = 1688540400
MENTION_FIELDS = "id,text,username,timestamp,permalink,media_type,replied_to,root_post"
MAX_PAGES = 5
# Emoji and the code points that build them (ZWJ, variation selectors, skin tones, flags,
# keycaps, tags) count as their UTF-8 bytes; digits, "#" and "*" are Emoji_Component too
# but count as the plain characters they are.
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Emoji_Component}--[0-9#*]]", regex.V1)


def threads_length(text: str) -> int:
    """The length Threads counts: one per character, emoji as their UTF-8 bytes."""
    return sum(len(ch.encode("utf-8")) if _EMOJI.match(ch) else 1 for ch in text)


class ThreadsConnector(Connector):
    platform = "threads"
    label = "Threads"
    channels = (CHANNEL,)
    rejected_status = 403
    api_url: ClassVar[str] = "https://graph.threads.net"
    api_version: ClassVar[str] = "v1.0"
    max_reply_length = 500
    # Each part is published with reply_to_id of the part before it.
    max_thread_parts = 3
    # Webhooks bring replies and mentions; the mentions poll only catches what they miss.
    poll_interval = timedelta(minutes=5)
    settings_fields = (
        SettingField(
            "app_secret",
            "Threads 앱 시크릿 (Threads App Secret)",
            secret=True,
            help=(
                "Meta 앱 대시보드(앱 설정 > 기본)의 Threads 앱 시크릿. 웹훅 주소 "
                "/hooks/threads/<계정 핸들>/ 로 오는 전달의 서명(X-Hub-Signature-256)을 "
                "확인합니다. 앱에 'Threads 웹훅' 하위 사용 사례를 추가하고 replies·mentions "
                "필드를 구독하세요(앱 라이브 모드, 비즈니스 인증 필요)."
            ),
        ),
        SettingField(
            "verify_token",
            "확인 토큰 (Verify Token)",
            secret=True,
            help="웹훅 등록 때 Meta에 입력한 확인 토큰과 같아야 합니다.",
        ),
        SettingField(
            "access_token",
            "Threads 액세스 토큰 (Access Token)",
            secret=True,
            required=False,
            help=(
                "답변을 게시할 Threads 계정의 장기 액세스 토큰(60일마다 갱신). 권한: "
                "threads_basic, threads_content_publish, threads_read_replies, "
                "threads_manage_mentions."
            ),
        ),
        SettingField(
            "user_id",
            "Threads 사용자 ID (Threads User ID)",
            required=False,
            help="답변을 게시하는 Threads 계정의 ID(GET /me 의 id).",
        ),
    )

    def length(self, text: str) -> int:
        return threads_length(text)

    def handshake(self, account: AccountConfig, request: WebhookRequest) -> HandshakeResponse:
        return hub_handshake(account.get("verify_token"), request)

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        check_hub_signature(account.get("app_secret"), request)

    def parse(self, account: AccountConfig, request: WebhookRequest) -> ParsedDelivery:
        data = decode_json_body(request.body)
        if not isinstance(data, dict) or "values" not in data:
            raise InvalidInput("the delivery is not a Threads webhook notification")
        # Documented as one object; a list of them is taken as well.
        values = data["values"]
        found = Collector(account)
        for item in values if isinstance(values, list) else [values]:
            item = as_dict(item)
            self._take(found, account, item.get("field"), as_dict(item.get("value")))
        return ParsedDelivery(found.messages, found.withdrawals, found.ignored)

    def _take(
        self, found: Collector, account: AccountConfig, field: Any, value: dict[str, Any]
    ) -> None:
        """One reply or mention (a webhook value, or a media object from the mentions
        endpoint, which has the same fields) as a message."""
        username = as_text(value.get("username"))
        own = account.handle.lstrip("@").lower()
        if field not in MESSAGE_FIELDS or (own and username.lower() == own):
            found.ignored += 1  # delete, publish, unknown fields, the city's own posts
            return
        found.message(
            CHANNEL,
            as_id(value.get("id")),
            as_text(value.get("text")),
            author=username,
            in_reply_to=as_id(as_dict(value.get("replied_to")).get("id")),
            sent_at=iso_moment(value.get("timestamp")),
            raw={"field": field, "value": value},
        )

    # --- polling ----------------------------------------------------------------------

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        """Mentions since the cursor (the Unix time of the newest one seen), by the
        Mentions API: `GET /{user-id}/mentions?since=…` (threads_manage_mentions), its
        pages followed up to MAX_PAGES. A safety net for webhooks Meta did not deliver;
        replies to the city's posts come by webhook only (the API lists them per post).
        An empty cursor starts from now."""
        token, user_id = account.get("access_token"), account.get("user_id")
        if not (token and user_id):
            raise NotImplementedError(
                "Threads mentions are polled only with an access token and a user ID"
            )
        now = int(datetime.now(UTC).timestamp())
        if not cursor.isdigit():
            return FetchResult(ParsedDelivery(), str(now))
        since = max(int(cursor), MENTIONS_EPOCH)
        found = Collector(account)
        newest = since
        url: str | None = self._url(user_id, "mentions")
        params: dict[str, str] | None = {
            "fields": MENTION_FIELDS,
            "since": str(since),
            "limit": "100",
            "access_token": token,
        }
        for _ in range(MAX_PAGES):
            if url is None:
                break
            body = graph_call("GET", url, params=params)
            for item in as_list(body.get("data")):
                item = as_dict(item)
                moment = iso_moment(item.get("timestamp"))
                if moment is not None:
                    newest = max(newest, int(moment.timestamp()))
                self._take(found, account, "mentions", item)
            # `next` carries every parameter, the token included.
            following = as_dict(body.get("paging")).get("next")
            url = (
                following
                if isinstance(following, str) and following.startswith(self.api_url)
                else None
            )
            params = None
        delivery = ParsedDelivery(found.messages, found.withdrawals, found.ignored)
        return FetchResult(delivery, str(newest))

    # --- replies ----------------------------------------------------------------------
    # Over `requests`: Meta publishes no Python client for the Threads API, and a reply
    # is two form POSTs.

    def _url(self, *path: str) -> str:
        return "/".join([self.api_url, self.api_version, *path])

    def _credentials(self, account: AccountConfig) -> tuple[str, str]:
        token, user_id = account.get("access_token"), account.get("user_id")
        if not token:
            raise NeedsReauthorization("no Threads access token is set for the reply account")
        if not user_id:
            raise PermanentError("the reply account's Threads user ID is not set")
        return token, user_id

    def _publish(self, token: str, user_id: str, text: str, reply_to: str) -> str:
        container = graph_call(
            "POST",
            self._url(user_id, "threads"),
            data={
                "media_type": "TEXT",
                "text": text,
                "reply_to_id": reply_to,
                "access_token": token,
            },
        )
        creation_id = as_id(container.get("id"))
        if not creation_id:
            raise PermanentError("Threads created no media container")
        published = graph_call(
            "POST",
            self._url(user_id, "threads_publish"),
            data={"creation_id": creation_id, "access_token": token},
        )
        media_id = as_id(published.get("id"))
        if not media_id:
            raise PermanentError("Threads published no post")
        return media_id

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        """Publish the answer in reply to the citizen's post; a thread part by part, each
        in reply to the one before. A container that is never published posts nothing, so
        a failure before the first publish is safe to retry. Once a part is published,
        a failure is final (the outbox would post the published parts again): the
        officer sees which parts went out and posts the rest by hand."""
        token, user_id = self._credentials(account)
        parts = list(reply.thread_parts) or [reply.text]
        published: list[str] = []
        reply_to = reply.in_reply_to
        for part in parts:
            try:
                reply_to = self._publish(token, user_id, part, reply_to)
            except ConnectorError as exc:
                if not published:
                    raise
                raise PermanentError(
                    f"only {len(published)} of {len(parts)} parts were posted "
                    f"({', '.join(published)}): post the rest by hand",
                    platform_error=exc.platform_error or str(exc),
                ) from exc
            published.append(reply_to)
        return SentReply(platform_id=published[0])

    def find_sent(self, account: AccountConfig, reply: OutgoingReply) -> SentReply | None:
        """After a crash mid-send: our reply under the citizen's post, found among its
        replies (`GET /{media-id}/replies`) by our username and the first part's text.
        Threads honours no idempotency key, so this is the only guard against a repeat."""
        token, _ = self._credentials(account)
        own = account.handle.lstrip("@").lower()
        text = (reply.thread_parts[0] if reply.thread_parts else reply.text).strip()
        body = graph_call(
            "GET",
            self._url(reply.in_reply_to, "replies"),
            params={"fields": "id,text,username,timestamp", "access_token": token},
        )
        for item in as_list(body.get("data")):
            item = as_dict(item)
            if (
                as_text(item.get("username")).lower() == own
                and as_text(item.get("text")) == text
                and as_id(item.get("id"))
            ):
                return SentReply(platform_id=as_id(item.get("id")))
        return None
