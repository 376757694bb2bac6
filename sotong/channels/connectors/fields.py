"""Reading the fields of a platform's payload (webhook JSON, API answers), which nothing
guarantees: each function takes whatever a field holds and gives the type a connector
works with, or an empty value, so a missing or malformed field never raises."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from sotong.inbox.normalize import MAX_ID
from sotong.lib.korean_text import clean_text

# Unix times above this are milliseconds: as seconds it would be the year 5138.
_MILLISECONDS_FROM = 100_000_000_000


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object as a dict; {} for anything else."""
    return value if isinstance(value, dict) else {}


def as_mapping(value: Any) -> Mapping[str, Any]:
    """Any mapping as it is (a client library's dict-like model too); {} for anything else."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any, *, tuples: bool = False) -> list[Any]:
    """A JSON array as a list; [] for anything else. With `tuples`, a tuple too, as a new
    list (for client libraries that hand sequences over as tuples)."""
    if isinstance(value, list):
        return value
    if tuples and isinstance(value, tuple):
        return list(value)
    return []


def as_str(value: Any, limit: int = MAX_ID) -> str:
    """A string stripped and cut to `limit` characters; "" for anything else."""
    return value.strip()[:limit] if isinstance(value, str) else ""


def as_id(value: Any, limit: int = MAX_ID) -> str:
    """A platform id, given as a string or an integer, as a stripped string cut to `limit`
    characters (the inbox's id columns by default); "" for anything else. A bool is an
    int to Python but never an id."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return as_str(value, limit)


def as_text(value: Any) -> str:
    """A citizen's text as the inbox stores it (`clean_text`: NFC, no control
    characters), stripped; "" for anything but a string."""
    return clean_text(value).strip() if isinstance(value, str) else ""


def iso_moment(value: Any, *, naive_zone: tzinfo | None = UTC) -> datetime | None:
    """An ISO 8601 time ("2024-08-07T10:33:16Z", "…+0000", "…+09:00") as an aware
    datetime; None for anything that is not one. A time without an offset is taken in
    `naive_zone` (UTC unless the platform says otherwise), or refused when it is None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo:
        return moment
    return moment.replace(tzinfo=naive_zone) if naive_zone else None


def unix_moment(value: Any) -> datetime | None:
    """A Unix time in seconds or milliseconds (told apart by size) as an aware UTC
    datetime; None for anything else, for zero or less and for times out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    seconds = value / 1000 if value > _MILLISECONDS_FROM else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
