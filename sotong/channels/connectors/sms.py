"""Text messages (문자메시지): citizens' texts to the city's number arrive by the gateway's
inbound (MO) webhook at /hooks/sms/<handle>/, and answers go back as SMS or LMS. Each
account says which gateway carries its number (`gateway`): SOLAPI (Korea) or Twilio.

Twilio documents its inbound webhook (twilio.com/docs/messaging/guides/webhook-request: a
form-encoded POST with MessageSid, AccountSid, From, To, Body, NumMedia …) and signs it
with X-Twilio-Signature, an HMAC-SHA1 of the full URL and the sorted POST parameters keyed
with the account's Auth Token; `twilio.request_validator.RequestValidator` checks it.

SOLAPI documents no signature for its webhooks: its webhook API takes an event, a URL and
an optional `secret` whose use is not described (solapi/documents, webhook/createOutgoing
Data.md), and the NHN Cloud and U+ 메시지허브 documents we found describe no signed MO
hook either. So a SOLAPI account is protected by a shared secret of its own: the city puts
it in the callback URL it gives the gateway (`…/hooks/sms/<handle>/?secret=<secret>`) or,
where the gateway lets it set headers, in `Authorization: Bearer <secret>`; it is compared
in constant time. A shared secret proves knowledge of the URL, not the body: a replayed
delivery is caught by the message id (ingest stores each id once), not by the secret.
The MO body is read in SOLAPI's webhook envelope (a JSON list of {eventDataId, data,
retryCount}, as the solapi SDK models its webhook reports in model/webhook/single_report.py)
with SOLAPI's message fields in `data` (messageId, from, to, text, type, dateReceived); a
bare object with those fields is read too. SOLAPI's delivery reports carry no text and
are ignored.

Korean replies: SMS when the text fits 90 bytes in EUC-KR, else LMS up to 2,000 bytes;
characters EUC-KR cannot encode become a close equivalent or "?", never a failed send.
The sender's phone number is personal data: it is stored as the message's author (masked
on every public surface) and never written to a log.
"""

from __future__ import annotations

import hmac
import json
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.http import QueryDict
from django.urls import reverse
from solapi.lib.authenticator import Authenticator
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client as TwilioClient

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
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
from sotong.channels.connectors.fields import as_id, as_text, iso_moment
from sotong.errors import InvalidInput
from sotong.inbox.normalize import MAX_ID, NormalizedMessage, clean_raw, decode_json_body

CHANNEL = "sms"
SOLAPI, TWILIO = "solapi", "twilio"
GATEWAYS = (SOLAPI, TWILIO)
SMS_BYTES = 90  # one Korean SMS, in EUC-KR bytes
LMS_BYTES = 2000  # one LMS
LMS_SUBJECT = "답변"  # LMS carry a subject line; SOLAPI allows 20 Hangul (40 bytes)
TWILIO_MAX_CHARS = 1600  # Twilio's limit for a message body
SOLAPI_SEND_URL = "https://api.solapi.com/messages/v4/send"
SOLAPI_ACCEPTED = "2000"  # SOLAPI's statusCode for a message taken for sending
TIMEOUT = 20.0
KST = timezone(timedelta(hours=9))
SECRET_QUERY = "secret"
TWILIO_SIGNATURE = "x-twilio-signature"

# Close equivalents for common characters outside EUC-KR (KS X 1001); anything else that
# NFKC does not turn into something encodable becomes "?".
CLOSE_EQUIVALENTS = {
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2212": "-",  # minus sign
    "\u00a0": " ",
    "\u200b": "",  # zero-width space
    "\u200d": "",  # zero-width joiner (inside emoji sequences)
    "\ufe0f": "",  # variation selector
    "\u20a9": "원",  # won sign (EUC-KR has only the full-width one)
}


# --- EUC-KR ---------------------------------------------------------------------------


def _encodable(ch: str) -> bool:
    # Python's codec writes a syllable outside KS X 1001 (똠, 햏) as an 8-byte jamo
    # make-up sequence that phones do not show: such a syllable counts as unencodable.
    try:
        return len(ch.encode("euc_kr")) <= 2
    except UnicodeEncodeError:
        return False


def euc_kr_text(text: str) -> str:
    """The text as a Korean phone can show it: each character EUC-KR cannot encode
    replaced by a close equivalent (its NFKC form, or one from CLOSE_EQUIVALENTS) or "?"."""
    out: list[str] = []
    for ch in text:
        if _encodable(ch):
            out.append(ch)
        elif ch in CLOSE_EQUIVALENTS:
            out.append(CLOSE_EQUIVALENTS[ch])
        else:
            folded = unicodedata.normalize("NFKC", ch)
            out.append(folded if folded != ch and all(map(_encodable, folded)) else "?")
    return "".join(out)


def euc_kr_length(text: str) -> int:
    """Bytes in EUC-KR once unencodable characters are replaced (Hangul 2, ASCII 1)."""
    return len(euc_kr_text(text).encode("euc_kr"))


def cut_to_bytes(text: str, limit: int) -> str:
    """The longest prefix of an EUC-KR-safe text within `limit` bytes, cut between
    characters (a two-byte syllable is never split)."""
    used = 0
    for index, ch in enumerate(text):
        used += len(ch.encode("euc_kr"))
        if used > limit:
            return text[:index]
    return text


def korean_message(text: str) -> tuple[str, str]:
    """(type, text) of a Korean reply: SMS within 90 bytes, else LMS cut to 2,000."""
    safe = euc_kr_text(text)
    if len(safe.encode("euc_kr")) <= SMS_BYTES:
        return "SMS", safe
    return "LMS", cut_to_bytes(safe, LMS_BYTES)


# --- inbound --------------------------------------------------------------------------


def gateway_of(account: AccountConfig) -> str:
    gateway = account.get("gateway").strip().lower()
    return gateway if gateway in GATEWAYS else ""


def hook_url(account: AccountConfig, query: Mapping[str, str]) -> str:
    """The public URL the gateway posted to, as Twilio signs it: PUBLIC_URL and the
    hook's path, with the query string as it came (in its order)."""
    path = reverse("hook", args=[SmsConnector.platform, account.handle])
    url = f"{settings.PUBLIC_URL}{path}"
    return f"{url}?{urlencode(dict(query))}" if query else url


def _form(body: bytes) -> QueryDict:
    try:
        return QueryDict(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput("the form body is not valid UTF-8") from None


class SmsConnector(Connector):
    platform = "sms"
    label = "문자메시지 (SOLAPI · Twilio)"
    channels = (CHANNEL,)
    rejected_status = 403
    max_reply_length = LMS_BYTES
    settings_fields = (
        SettingField(
            "gateway",
            "문자 중계사 (Gateway)",
            help="solapi(국내 번호) 또는 twilio(해외 번호). 시민이 문자를 보내는 번호를 "
            "제공하는 중계사입니다.",
        ),
        SettingField(
            "sender_number",
            "발신번호 (Sender number)",
            required=False,
            help="답변을 보낼 번호. SOLAPI는 사전 등록된 발신번호, Twilio는 E.164 형식"
            "(+1…)의 번호입니다.",
        ),
        SettingField(
            "webhook_secret",
            "웹훅 비밀값 (Webhook secret)",
            secret=True,
            required=False,
            help="SOLAPI: 추측할 수 없는 긴 임의 문자열. 중계사에 수신(MO) 웹훅 URL을 "
            "/hooks/sms/<handle>/?secret=<비밀값> 으로 등록하거나, 헤더 "
            "'Authorization: Bearer <비밀값>'으로 보내게 하십시오. SOLAPI는 웹훅 서명을 "
            "문서화하지 않아 이 값으로만 확인합니다.",
        ),
        SettingField(
            "solapi_api_key",
            "SOLAPI API 키 (API Key)",
            secret=True,
            required=False,
            help="SOLAPI 콘솔 > API Key 관리에서 발급(message:write 권한). 답변 발송에 씁니다.",
        ),
        SettingField(
            "solapi_api_secret",
            "SOLAPI API 시크릿 (API Secret)",
            secret=True,
            required=False,
        ),
        SettingField(
            "twilio_account_sid",
            "Twilio 계정 SID (Account SID)",
            required=False,
            help="Twilio 콘솔의 Account SID(AC…). 번호의 'A message comes in' 웹훅을 "
            "/hooks/sms/<handle>/ 로 POST 설정하십시오.",
        ),
        SettingField(
            "twilio_auth_token",
            "Twilio 인증 토큰 (Auth Token)",
            secret=True,
            required=False,
            help="X-Twilio-Signature 서명 확인과 답변 발송에 씁니다.",
        ),
    )

    # --- webhook ------------------------------------------------------------------

    def verify(self, account: AccountConfig, request: WebhookRequest) -> None:
        gateway = gateway_of(account)
        if gateway == TWILIO:
            self._verify_twilio(account, request)
        elif gateway == SOLAPI:
            self._verify_secret(account, request)
        else:
            raise SignatureInvalid("the account names no known gateway (solapi or twilio)")

    def _verify_secret(self, account: AccountConfig, request: WebhookRequest) -> None:
        expected = account.get("webhook_secret")
        if not expected:
            raise SignatureInvalid("no webhook secret is set for this account")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
        given = given or request.query.get(SECRET_QUERY, "")
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise SignatureInvalid("missing or wrong webhook secret")

    def _verify_twilio(self, account: AccountConfig, request: WebhookRequest) -> None:
        token = account.get("twilio_auth_token")
        signature = request.headers.get(TWILIO_SIGNATURE, "")
        if not token:
            raise SignatureInvalid("no Twilio auth token is set for this account")
        if not signature:
            raise SignatureInvalid(f"missing {TWILIO_SIGNATURE} header")
        try:
            params = _form(request.body)
        except InvalidInput as exc:
            raise SignatureInvalid(str(exc)) from None
        url = hook_url(account, request.query)
        if not RequestValidator(token).validate(url, params, signature):
            raise SignatureInvalid("the Twilio signature does not match the URL and body")

    def parse(self, account: AccountConfig, request: WebhookRequest) -> ParsedDelivery:
        if gateway_of(account) == TWILIO:
            return self._parse_twilio(account, request.body)
        return self._parse_solapi(account, request.body)

    def _message(
        self,
        account: AccountConfig,
        gateway: str,
        external_id: str,
        text: str,
        sender: str,
        sent_at: datetime | None,
        raw: dict[str, Any],
    ) -> NormalizedMessage:
        return NormalizedMessage(
            channel=CHANNEL,
            external_id=f"{gateway}:{external_id}",
            text=text[: settings.SOTONG_MAX_TEXT_CHARS],
            sent_at=sent_at,
            account=account.handle,
            author=sender[:MAX_ID],  # personal data: masked on public surfaces
            raw=clean_raw({"gateway": gateway, **raw}),
        )

    def _parse_twilio(self, account: AccountConfig, body: bytes) -> ParsedDelivery:
        form = _form(body)
        sid, sender = as_id(form.get("MessageSid")), as_id(form.get("From"))
        text = as_text(form.get("Body"))
        if not (sid and sender and text):  # a status callback, or a picture alone
            return ParsedDelivery(ignored=1)
        raw = {key: form.get(key, "") for key in form}
        message = self._message(account, TWILIO, sid, text, sender, None, raw)
        return ParsedDelivery([message])

    def _parse_solapi(self, account: AccountConfig, body: bytes) -> ParsedDelivery:
        data = decode_json_body(body)
        events = data if isinstance(data, list) else [data]
        messages: list[NormalizedMessage] = []
        ignored = 0
        for event in events:
            if not isinstance(event, dict):
                ignored += 1
                continue
            inner = event.get("data")
            item: dict[str, Any] = inner if isinstance(inner, dict) else event
            message_id, sender = as_id(item.get("messageId")), as_id(item.get("from"))
            text = as_text(item.get("text"))
            if not (message_id and sender and text):  # delivery reports and the like
                ignored += 1
                continue
            # SOLAPI's dates are ISO 8601, with a zone or (Korean local time) without one.
            sent_at = iso_moment(item.get("dateReceived"), naive_zone=KST) or iso_moment(
                item.get("dateCreated"), naive_zone=KST
            )
            raw = {"eventDataId": as_id(event.get("eventDataId")), "data": item}
            messages.append(self._message(account, SOLAPI, message_id, text, sender, sent_at, raw))
        if not messages and not ignored:
            raise InvalidInput("the delivery holds no event")
        return ParsedDelivery(messages, ignored=ignored)

    # --- replies ------------------------------------------------------------------

    def reply_limit(self, raw: Mapping[str, Any]) -> int:
        # `length` counts EUC-KR bytes for both gateways (it is not told the account);
        # bytes are never fewer than characters, so a Twilio reply within 1,600 "bytes"
        # is within Twilio's 1,600 characters.
        return TWILIO_MAX_CHARS if raw.get("gateway") == TWILIO else LMS_BYTES

    def length(self, text: str) -> int:
        return euc_kr_length(text)

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        if not reply.author:
            raise PermanentError("the citizen's number is not known")
        gateway = gateway_of(account)
        if gateway == TWILIO:
            return self._send_twilio(account, reply)
        if gateway == SOLAPI:
            return self._send_solapi(account, reply)
        raise PermanentError("the account names no known gateway (solapi or twilio)")

    def _send_solapi(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        """POST /messages/v4/send, SOLAPI's documented single-message API, signed with the
        SDK's own Authenticator. Not SolapiMessageService.send: the SDK raises a bare
        Exception without the HTTP status, so a rate limit, a revoked key and a server
        error could not be told apart."""
        key, secret = account.get("solapi_api_key"), account.get("solapi_api_secret")
        sender = account.get("sender_number").replace("-", "")
        if not (key and secret):
            raise NeedsReauthorization("the SOLAPI API key and secret are not set")
        if not sender:
            raise PermanentError("no sender number (발신번호) is set for this account")
        kind, text = korean_message(reply.text)
        message: dict[str, Any] = {
            "to": reply.author.replace("-", ""),
            "from": sender,
            "text": text,
            "type": kind,
            "autoTypeDetect": False,
        }
        if kind == "LMS":
            message["subject"] = LMS_SUBJECT
        headers = {"Authorization": Authenticator(key, secret).get_auth_info()}
        try:
            response = requests.post(
                SOLAPI_SEND_URL, json={"message": message}, headers=headers, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise TransientError(f"SOLAPI unreachable: {type(exc).__name__}") from None
        answer = _json(response)
        platform_error = f"{answer.get('errorCode', '')} {answer.get('errorMessage', '')}"
        platform_error = platform_error.strip() or response.text[:300]
        status = response.status_code
        if status == 429:
            raise RateLimited(
                "SOLAPI rate limit",
                retry_at=_retry_after(response.headers.get("Retry-After")),
                platform_error=platform_error,
            )
        if status == 401:
            raise NeedsReauthorization("SOLAPI refused the API key", platform_error=platform_error)
        if status >= 500:
            raise TransientError(f"SOLAPI error {status}", platform_error=platform_error)
        if status >= 400:
            raise PermanentError(
                f"SOLAPI refused the message ({status})", platform_error=platform_error
            )
        if str(answer.get("statusCode", "")) != SOLAPI_ACCEPTED:
            raise PermanentError(
                "SOLAPI did not accept the message",
                platform_error=f"{answer.get('statusCode', '')} {answer.get('statusMessage', '')}",
            )
        return SentReply(platform_id=f"{SOLAPI}:{answer.get('messageId', '')}")

    def _send_twilio(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        sid, token = account.get("twilio_account_sid"), account.get("twilio_auth_token")
        sender = account.get("sender_number")
        if not (sid and token):
            raise NeedsReauthorization("the Twilio account SID and auth token are not set")
        if not sender:
            raise PermanentError("no sender number is set for this account")
        client = TwilioClient(sid, token)
        try:
            sent = client.messages.create(
                to=reply.author, from_=sender, body=reply.text[:TWILIO_MAX_CHARS]
            )
        except TwilioRestException as exc:
            error = f"{exc.code or ''} {exc.msg}".strip()
            if exc.status == 429:
                raise RateLimited(
                    "Twilio rate limit",
                    retry_at=datetime.now(UTC) + timedelta(minutes=1),
                    platform_error=error,
                ) from None
            if exc.status in {401, 403} and exc.code in {20003, 20005}:
                raise NeedsReauthorization(
                    "Twilio refused the credentials", platform_error=error
                ) from None
            if exc.status >= 500:
                raise TransientError(f"Twilio error {exc.status}", platform_error=error) from None
            raise PermanentError(
                f"Twilio refused the message ({exc.status})", platform_error=error
            ) from None
        except requests.RequestException as exc:
            raise TransientError(f"Twilio unreachable: {type(exc).__name__}") from None
        return SentReply(platform_id=f"{TWILIO}:{sent.sid}")


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(value: str | None) -> datetime:
    now = datetime.now(UTC)
    if value:
        if value.strip().isdigit():
            return now + timedelta(seconds=int(value.strip()))
        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError):
            pass
    return now + timedelta(minutes=1)
