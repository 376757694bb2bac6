"""Reading Open311 parameters: the query of GET requests (comma lists, w3 dates, the
90-day window, pages) and the form of POST requests. Pure; every problem is an `InvalidInput`
that names the parameter, answered with the spec's 400 error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.http import QueryDict

from sotong.cases.models import parse_case_number
from sotong.errors import InvalidInput
from sotong.lib.korean_text import clean_text
from sotong.portal.open311.formats import parse_w3_datetime

MAX_REQUESTS = 1000  # the spec's cap on one GET requests
# Pages of GET requests: `page` and `page_size`, the extension Chicago's and other cities'
# Open311 servers document. The spec lets a server return fewer requests than match; a
# page of 100 keeps the common call (no arguments: the last 90 days) small and fast.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE = 10_000
WINDOW = timedelta(days=90)  # the spec's default and longest date range
MAX_DESCRIPTION = 4000  # the spec's limit on a description
MAX_FIELD = 255
MAX_URL = 2000
MAX_ATTRIBUTES = 50
STATUSES = ("open", "closed")
_CODE = re.compile(r"[-a-zA-Z0-9_]{1,64}", re.ASCII)
_ATTRIBUTE = re.compile(r"attribute\[([^\[\]]{1,64})\](\[\])?")


@dataclass(frozen=True)
class RequestQuery:
    """What GET requests asked for. With `ids`, every other filter is ignored (the spec:
    service_request_id "overrides all other arguments")."""

    ids: tuple[int, ...] = ()
    service_codes: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    statuses: frozenset[str] = frozenset()
    page: int = 1  # counted from 1, newest requests first
    page_size: int = DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def _comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def is_service_code(value: str) -> bool:
    return bool(_CODE.fullmatch(value))


def parse_service_code(value: str, name: str = "service_code") -> str:
    if not is_service_code(value):
        raise InvalidInput(f"'{name}' is not a service code: {value[:64]!r}", field=name)
    return value


def parse_request_id(value: str) -> int | None:
    """A service_request_id: a case number (S0000123) or the bare number."""
    return parse_case_number(value) if len(value) < 20 else None


def _date(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    try:
        return parse_w3_datetime(value)
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"'{name}' must be a w3 date-time such as 2010-01-01T00:00:00Z", field=name
        ) from None


def _whole_number(query: Mapping[str, str], name: str, default: int, largest: int) -> int:
    value = query.get(name, "").strip()
    if not value:
        return default
    if not value.isascii() or not value.isdigit() or not 1 <= int(value[:8]) <= largest:
        raise InvalidInput(f"'{name}' must be a whole number from 1 to {largest}", field=name)
    return int(value)


def request_query(query: Mapping[str, str], now: datetime) -> RequestQuery:
    """The filters of GET requests. Without dates, the last 90 days; with one date, the 90
    days from (or up to) it; with both, a range of at most 90 days. `page_size` requests
    (100 unless asked, at most 1000) from `page` (1 unless asked)."""
    raw_ids = _comma_list(query.get("service_request_id", ""))
    if raw_ids:
        if len(raw_ids) > MAX_REQUESTS:
            raise InvalidInput(
                f"at most {MAX_REQUESTS} service_request_id at once", field="service_request_id"
            )
        ids = []
        for raw in raw_ids:
            parsed = parse_request_id(raw)
            if parsed is None:
                raise InvalidInput(
                    f"'service_request_id' is not a case number: {raw[:30]!r}",
                    field="service_request_id",
                )
            ids.append(parsed)
        return RequestQuery(ids=tuple(dict.fromkeys(ids)))

    codes = tuple(parse_service_code(c) for c in _comma_list(query.get("service_code", "")))
    statuses = frozenset(_comma_list(query.get("status", "").lower()))
    if statuses - set(STATUSES):
        raise InvalidInput(
            "'status' must be open, closed or both (comma-separated)", field="status"
        )

    start, end = _date(query, "start_date"), _date(query, "end_date")
    try:
        if start and end:
            if end < start:
                raise InvalidInput("'end_date' is before 'start_date'", field="end_date")
            if end - start > WINDOW:
                raise InvalidInput(
                    "'start_date' and 'end_date' may not span more than 90 days",
                    field="end_date",
                )
        elif start:
            end = start + WINDOW
        elif end:
            start = end - WINDOW
        else:
            start = now - WINDOW
    except OverflowError:
        raise InvalidInput("the dates are out of range", field="start_date") from None
    return RequestQuery(
        service_codes=codes,
        start=start,
        end=end,
        statuses=statuses,
        page=_whole_number(query, "page", 1, MAX_PAGE),
        page_size=_whole_number(query, "page_size", DEFAULT_PAGE_SIZE, MAX_REQUESTS),
    )


# --- POST requests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """A POST requests form, checked. The location is one of lat & long, address_string or
    address_id; contact fields stay with the stored message and are never public."""

    service_code: str
    description: str
    lat: float | None = None
    long: float | None = None
    address_string: str = ""
    address_id: str = ""
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    device_id: str = ""
    account_id: str = ""
    media_url: str = ""
    attributes: dict[str, list[str]] = field(default_factory=dict)


def _text(form: Mapping[str, str], name: str, limit: int = MAX_FIELD) -> str:
    value = clean_text(form.get(name, "")).strip()
    if len(value) > limit:
        raise InvalidInput(f"'{name}' is longer than {limit} characters", field=name)
    return value


def _coordinate(form: Mapping[str, str], name: str, bound: float) -> float | None:
    value = form.get(name, "").strip()
    if not value:
        return None
    try:
        number = float(value[:40])
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or abs(number) > bound:
        raise InvalidInput(f"'{name}' must be a WGS84 coordinate in degrees", field=name)
    return number


def _attributes(form: QueryDict) -> dict[str, list[str]]:
    attributes: dict[str, list[str]] = {}
    for key in form:
        match = _ATTRIBUTE.fullmatch(key)
        if not match:
            continue
        if len(attributes) >= MAX_ATTRIBUTES:
            raise InvalidInput(f"at most {MAX_ATTRIBUTES} attributes", field="attribute")
        values = [clean_text(v).strip() for v in form.getlist(key)]
        if len(values) > MAX_ATTRIBUTES or any(len(v) > 1000 for v in values):
            raise InvalidInput(f"'{key[:80]}' is too long", field="attribute")
        attributes.setdefault(clean_text(match.group(1)), []).extend(values)
    return attributes


def submission(form: QueryDict) -> Submission:
    """The checked form of POST requests."""
    code = form.get("service_code", "").strip()
    if not code:
        raise InvalidInput("'service_code' is required", field="service_code")
    parse_service_code(code)
    description = _text(form, "description", MAX_DESCRIPTION)
    if not description:
        raise InvalidInput("'description' is required", field="description")
    lat = _coordinate(form, "lat", 90)
    long = _coordinate(form, "long", 180)
    if (lat is None) != (long is None):
        raise InvalidInput("send both 'lat' and 'long', or neither", field="lat")
    address_string = _text(form, "address_string", 500)
    address_id = _text(form, "address_id")
    if lat is None and not address_string and not address_id:
        raise InvalidInput(
            "a location is required: 'lat' and 'long', 'address_string' or 'address_id'",
            field="address_string",
        )
    media_url = _text(form, "media_url", MAX_URL)
    if media_url and not media_url.lower().startswith(("https://", "http://")):
        raise InvalidInput("'media_url' must be an http(s) URL", field="media_url")
    return Submission(
        service_code=code,
        description=description,
        lat=lat,
        long=long,
        address_string=address_string,
        address_id=address_id,
        email=_text(form, "email"),
        first_name=_text(form, "first_name"),
        last_name=_text(form, "last_name"),
        phone=_text(form, "phone"),
        device_id=_text(form, "device_id"),
        account_id=_text(form, "account_id"),
        media_url=media_url,
        attributes=_attributes(form),
    )
