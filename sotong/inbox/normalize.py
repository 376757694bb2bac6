"""Turning what a connector sends into one normalized message, or a clear error.

Pure validation over decoded JSON: every problem names its field. Texts are kept as the
citizen wrote them (HTML and scripts included; they are escaped wherever shown), only
NFC-composed and stripped of control characters that databases refuse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sotong.errors import InvalidInput
from sotong.lib.korean_text import clean_text

MAX_ID = 255
MAX_ATTACHMENTS = 20
MAX_URL = 2000


@dataclass(frozen=True)
class NormalizedMessage:
    channel: str
    external_id: str
    text: str
    sent_at: datetime | None = None
    account: str = ""
    author: str = ""
    in_reply_to: str = ""
    attachments: list[dict[str, str]] = field(default_factory=list)
    raw: Any = None


def decode_json_body(body: bytes) -> Any:
    """The request body as JSON, refusing broken encodings with a clear message."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _check_unicode(value: str, name: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"'{name}' holds an invalid character (a lone surrogate)", field=name
        ) from None
    return value


def _string(data: dict[str, Any], name: str, *, required: bool = False, limit: int = MAX_ID) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"'{name}' is required", field=name)
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be a string, not {type(value).__name__}", field=name)
    value = clean_text(_check_unicode(value, name)).strip()
    if required and not value:
        raise InvalidInput(f"'{name}' is empty", field=name)
    if len(value) > limit:
        raise InvalidInput(f"'{name}' is longer than {limit} characters", field=name)
    return value


def _timestamp(data: dict[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be an ISO 8601 string", field=name)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"'{name}' is not an ISO 8601 date-time: {value[:40]!r}", field=name
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"'{name}' needs a time zone (e.g. +09:00 or Z)", field=name)
    return moment


def _attachments(data: dict[str, Any]) -> list[dict[str, str]]:
    value = data.get("attachments")
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("'attachments' must be a list", field="attachments")
    if len(value) > MAX_ATTACHMENTS:
        raise InvalidInput(f"at most {MAX_ATTACHMENTS} attachments", field="attachments")
    cleaned = []
    for index, item in enumerate(value):
        where = f"attachments[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"'{where}' must be an object with a url", field=where)
        url = _string(item, "url", required=True, limit=MAX_URL)
        if not url.lower().startswith(("https://", "http://")):
            raise InvalidInput(f"'{where}.url' must be an http(s) URL", field=where)
        cleaned.append(
            {"url": url, "type": _string(item, "type", limit=80), "name": _string(item, "name")}
        )
    return cleaned


def clean_raw(value: Any, path: str = "raw") -> Any:
    """The raw payload as JSON that every database accepts: NUL characters removed from
    strings (PostgreSQL's jsonb refuses them), lone surrogates refused."""
    if isinstance(value, str):
        return _check_unicode(value, path).replace("\x00", "")
    if isinstance(value, list):
        return [clean_raw(v, path) for v in value]
    if isinstance(value, dict):
        return {clean_raw(str(k), path): clean_raw(v, path) for k, v in value.items()}
    return value


def normalize_message(data: Any, *, max_text: int) -> NormalizedMessage:
    """Validate one decoded JSON message; raise InvalidInput naming the first problem."""
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    unknown = set(data) - {
        "channel",
        "account",
        "external_id",
        "author",
        "text",
        "sent_at",
        "attachments",
        "in_reply_to",
        "raw",
    }
    if unknown:
        raise InvalidInput(
            f"unknown field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0]
        )
    return NormalizedMessage(
        channel=_string(data, "channel", required=True, limit=32),
        external_id=_string(data, "external_id", required=True),
        text=_string(data, "text", required=True, limit=max_text),
        sent_at=_timestamp(data, "sent_at"),
        account=_string(data, "account"),
        author=_string(data, "author"),
        in_reply_to=_string(data, "in_reply_to"),
        attachments=_attachments(data),
        raw=clean_raw(data.get("raw")),
    )
