"""KakaoTalk channel (카카오톡 채널) through a Kakao i OpenBuilder chatbot: the skill that the
chatbot's fallback block calls with each citizen's message, the skill response that answers
it within Kakao's five seconds (the receipt: case number, expected answer date, link), and
the published answer sent later through the chatbot's Event API.

Shapes, as Kakao documents them (kakaobusiness.gitbook.io/main/tool/chatbot):
- SkillPayload (skill_guide/answer_json_format#skillpayload): `intent` {id, name},
  `userRequest` {timezone, utterance, lang, block {id, name}, user {id, type "botUserKey",
  properties {botUserKey, plusfriendUserKey, appUserId …}}, params, callbackUrl?}, `bot`
  {id, name; a development channel's id ends in "!"}, `action` {id, name, params,
  detailParams, clientExtra}. Unknown fields may be added at any time and must be ignored.
  The payload carries no message id and no time: a message is identified by its body.
- SkillResponse (…#skillresponse): {"version": "2.0", "template": {"outputs": [
  {"simpleText": {"text": …}}]}}; simpleText holds at most 1,000 characters (longer text is
  folded behind "전체 보기"), and a link in it is clickable, so the receipt needs no card
  (a basicCard would need a thumbnail image).
- Skill requests carry no signature. The skill settings let the bot's builder add header
  values that Kakao sends with every call: the city adds a secret header there, compared here
  in constant time, and the payload's bot id must be the account's.
- Event API (main_notions/event-api): POST https://bot-api.kakao.com/v2/bots/{botId}/talk,
  `Authorization: KakaoAK {REST API key}`, body {"event": {"name": …, "data": {…}},
  "user": [{"type": "botUserKey", "id": …}]}; the block with that event name is sent to
  the user, and its speech bubble shows the event data. Answer: {"taskId", "status"}; the
  delivery result is looked up later with GET /v1/tasks/{taskId}. Each message is charged
  (15 won), and the API honours no idempotency key.

The Event API has no maintained Python client; it is one JSON POST, sent with `requests`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    ConnectorError,
    HandshakeResponse,
    NeedsReauthorization,
    OutgoingReply,
    ParsedDelivery,
    PermanentError,
    RateLimited,
    SentReply,
    SettingField,
    SignatureInvalid,
    TransientError,
    WebhookRequest,
)
from sotong.channels.connectors.fields import as_dict, as_str, as_text
from sotong.errors import InvalidInput
from sotong.inbox.normalize import NormalizedMessage, clean_raw, decode_json_body

# The header the city adds in the skill's settings (챗봇 관리자센터 > 스킬 > 헤더값 입력).
SECRET_HEADER = "x-sotong-skill-secret"
EVENT_API = "https://bot-api.kakao.com/v2/bots/{bot_id}/talk"
DEFAULT_EVENT_NAME = "sotong_answer"
SIMPLE_TEXT_LIMIT = 1000
USER_TYPES = ("botUserKey", "plusfriendUserKey", "appUserId")
TIMEOUT = 10  # seconds, for the Event API call (the outbox's job, not the skill answer)
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=1)
# The skill answer must reach Kakao within 5 seconds: the ingest gets this long, and the
# rest is left for rendering the answer and the network.
INLINE_BUDGET_SECONDS = 3.5


def bot_ids(account: AccountConfig) -> set[str]:
    """The bot ids a skill call of this account may carry: the bot's, and the same id with
    the "!" Kakao appends for its development channel."""
    bot_id = account.get("bot_id").strip().removesuffix("!")
    return {bot_id, bot_id + "!"} if bot_id else set()


def skill_response(text: str) -> dict[str, Any]:
    """A SkillResponse (version 2.0) with one simpleText bubble, cut to Kakao's limit."""
    text = text.strip() or "…"
    if len(text) > SIMPLE_TEXT_LIMIT:
        text = text[: SIMPLE_TEXT_LIMIT - 1] + "…"
    return {"version": "2.0", "template": {"outputs": [{"simpleText": {"text": text}}]}}


def _retry_at(headers: Mapping[str, str], now: datetime) -> datetime:
    value = (headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    if value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(when, now)
    return now + DEFAULT_RATE_LIMIT_WAIT


def event_api_error(response: requests.Response, *, now: datetime | None = None) -> ConnectorError:
    """The connector error for a failed Event API answer. Kakao's REST errors are
    {"code": -401, "msg": …}: -401 an invalid or revoked key, -10 and HTTP 429 the quota."""
    now = now or datetime.now(UTC)
    try:
        body = as_dict(response.json())
    except ValueError:
        body = {}
    code = body.get("code")
    message = str(body.get("msg") or body.get("message") or "")[:500]
    platform_error = f"HTTP {response.status_code} {code if code is not None else ''} {message}"
    platform_error = " ".join(platform_error.split())
    if response.status_code == 429 or code == -10:
        return RateLimited(
            "Kakao's Event API quota is used up",
            retry_at=_retry_at(response.headers, now),
            platform_error=platform_error,
        )
    if response.status_code == 401 or code == -401:
        return NeedsReauthorization(
            "the REST API key is invalid or was revoked", platform_error=platform_error
        )
    if response.status_code >= 500:
        return TransientError("Kakao is unavailable for now", platform_error=platform_error)
    return PermanentError("Kakao refused the message", platform_error=platform_error)


class KakaoConnector(Connector):
    platform = "kakao"
    label = "카카오톡 채널 (Kakao i 오픈빌더)"
    channels = ("kakao",)
    max_reply_length = SIMPLE_TEXT_LIMIT
    rejected_status = 401
    inline_budget = INLINE_BUDGET_SECONDS
    settings_fields = (
        SettingField(
            "skill_secret",
            "스킬 인증값 (Skill secret)",
            secret=True,
            help=(
                "카카오 i 오픈빌더(챗봇 관리자센터)에서 스킬을 만들고 URL에 "
                "/hooks/kakao/<계정 핸들>/ 을 입력한 뒤, 같은 스킬의 '헤더값 입력'에 "
                "X-Sotong-Skill-Secret 헤더와 이 값을 넣으세요. 헤더가 맞지 않는 요청은 "
                "거절합니다. 폴백 블록에 이 스킬을 연결하고 '스킬데이터 사용'을 고르세요."
            ),
        ),
        SettingField(
            "bot_id",
            "봇 ID (Bot ID)",
            help="챗봇 관리자센터 > 설정의 봇 ID. 다른 봇의 요청은 거절합니다.",
        ),
        SettingField(
            "rest_api_key",
            "REST API 키 (REST API key)",
            secret=True,
            required=False,
            help=(
                "답변을 이벤트 API로 보낼 때 씁니다: 카카오 디벨로퍼스 앱의 REST API 키를 "
                "챗봇에 연결하고 비즈월렛을 연결하세요 (메시지 1건당 과금). 비워 두면 "
                "답변은 '직접 답변'으로 표시됩니다."
            ),
        ),
        SettingField(
            "event_name",
            "이벤트 이름 (Event name)",
            required=False,
            help=(
                f"답변을 보낼 이벤트 블록의 이벤트 이름 (기본값 {DEFAULT_EVENT_NAME}). 그 "
                "블록의 말풍선이 이벤트 데이터 text를 보여 주도록 설정하세요 (최대 1,000자)."
            ),
        ),
    )

    # --- the skill call -----------------------------------------------------------------

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        secret = account.get("skill_secret")
        if not secret:
            raise SignatureInvalid("no skill secret is set for this account")
        given = request.headers.get(SECRET_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), secret.encode()):
            raise SignatureInvalid(f"missing or wrong {SECRET_HEADER} header")
        expected = bot_ids(account)
        if not expected:
            raise SignatureInvalid("no bot id is set for this account")
        try:
            data = json.loads(request.body)
        except (ValueError, RecursionError):
            return  # authenticated, but unreadable: stored, and answered as such
        bot = as_dict(data).get("bot") if isinstance(data, dict) else None
        if isinstance(bot, dict) and as_str(bot.get("id")) not in expected:
            raise SignatureInvalid("the skill call comes from another bot")

    def parse(self, account: AccountConfig, request: WebhookRequest) -> ParsedDelivery:
        data = decode_json_body(request.body)
        if not isinstance(data, dict):
            raise InvalidInput("the skill payload is not a JSON object")
        user_request = data.get("userRequest")
        if not isinstance(user_request, dict) or not isinstance(user_request.get("user"), dict):
            raise InvalidInput("the skill payload has no userRequest.user (an unknown version?)")
        user = user_request["user"]
        utterance = user_request.get("utterance")
        text = as_text(utterance)
        author = as_str(user.get("id"))
        if not text or not author:
            return ParsedDelivery(ignored=1)
        raw = {
            "bot": as_dict(data.get("bot")),
            "intent": as_dict(data.get("intent")),
            "userRequest": {
                key: user_request[key]
                for key in ("utterance", "user", "block", "lang", "timezone")
                if key in user_request
            },
        }
        return ParsedDelivery(
            [
                NormalizedMessage(
                    channel="kakao",
                    external_id=message_id(request.body),
                    text=text[: settings.SOTONG_MAX_TEXT_CHARS],
                    sent_at=None,  # the payload carries no time: the time it arrived
                    account=account.handle,
                    author=author,
                    raw=clean_raw(raw),
                )
            ]
        )

    def inline_answer(self, account: AccountConfig, text: str) -> HandshakeResponse:
        """The skill response Kakao shows the citizen at once."""
        body = json.dumps(skill_response(text), ensure_ascii=False).encode("utf-8")
        return HandshakeResponse(200, body, "application/json; charset=utf-8")

    # --- the published answer -----------------------------------------------------------

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        key = account.get("rest_api_key")
        if not key:
            raise PermanentError("no REST API key is set: reply in KakaoTalk by hand")
        user = as_dict(reply.raw.get("userRequest")).get("user")
        user = as_dict(user)
        user_type = user.get("type") if user.get("type") in USER_TYPES else "botUserKey"
        user_id = as_str(user.get("id")) or reply.author
        if not user_id:
            raise PermanentError("the citizen's botUserKey is unknown")
        # Answer on the bot the citizen wrote to (the development channel's id ends in "!").
        bot_id = as_str(as_dict(reply.raw.get("bot")).get("id"))
        if bot_id not in bot_ids(account):
            bot_id = account.get("bot_id").strip()
        body: dict[str, Any] = {
            "event": {
                "name": account.get("event_name", DEFAULT_EVENT_NAME).strip(),
                "data": {"text": reply.text},
            },
            "user": [{"type": user_type, "id": user_id}],
        }
        try:
            response = requests.post(
                EVENT_API.format(bot_id=quote(bot_id, safe="!")),
                json=body,
                headers={"Authorization": f"KakaoAK {key}"},
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            # By type only: the exception's text may quote the request.
            raise TransientError(
                "could not reach Kakao", platform_error=type(exc).__name__
            ) from None
        if response.status_code >= 400:
            raise event_api_error(response)
        try:
            answer = as_dict(response.json())
        except ValueError:
            raise TransientError(
                "Kakao answered with something other than JSON",
                platform_error=f"HTTP {response.status_code}",
            ) from None
        task_id = as_str(answer.get("taskId"))
        status = str(answer.get("status") or "")
        if not task_id or status.upper() not in {"SUCCESS", ""}:
            raise PermanentError(
                "Kakao did not accept the event",
                platform_error=f"{status} {str(answer.get('message') or '')[:300]}".strip(),
            )
        return SentReply(platform_id=task_id)

    def reply_limit(self, raw: Mapping[str, Any]) -> int:
        return SIMPLE_TEXT_LIMIT


def message_id(body: bytes) -> str:
    """The payload carries no message id: the body's digest is one, so the same skill call
    delivered again is the same message."""
    return "kakao-" + hashlib.sha256(body).hexdigest()[:40]
