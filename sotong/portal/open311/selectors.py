"""Open311 reads: the services (the active categories), a service's definition, service
requests (the public cases, masked text only) and the case number behind a token.

Requests are read from the public read model through `sotong.portal.selectors`, never from
the cases themselves, so Open311 shows exactly what the portal shows. Each returns plain
records in the spec's field order, ready for `formats`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from sotong.cases.models import case_number
from sotong.directory.models import Category, TriageRule, Unit
from sotong.inbox.models import Message
from sotong.lib.korean_text import shorten
from sotong.portal.models import PublicCase, PublicState
from sotong.portal.open311.formats import Record, w3_datetime
from sotong.portal.open311.params import MAX_REQUESTS, RequestQuery
from sotong.portal.selectors import CaseFilters, Entry, filtered_cases, public_directory

CHANNEL = "open311"
ACCOUNT = "open311"  # the Open311 account in the directory (data/seoul/channels.yaml)
TOKEN_PREFIX = "open311-"  # a posted request's message: external_id = prefix + token
CLOSED_STATES = (PublicState.ANSWERED, PublicState.MERGED)
OPEN_STATES = (PublicState.IN_PROGRESS, PublicState.ON_HOLD, PublicState.OVERDUE)
MAX_KEYWORDS = 12
MAX_STATUS_NOTES = 500
_ID_CHUNK = 500  # under SQLite's variable limit


def _name(obj: Category | Unit | Entry | None, english: bool) -> str | None:
    if obj is None:
        return None
    return (obj.name_en or obj.name) if english else obj.name


# --- Services ----------------------------------------------------------------------------


def _service(category: Category, keywords: list[str], english: bool) -> dict[str, Any]:
    case_type = category.case_type
    deadline = f"{case_type.deadline_amount} {case_type.get_deadline_unit_display()}"
    words = [w for w in [category.name_en if not english else category.name] if w]
    words += keywords[:MAX_KEYWORDS]
    return {
        "service_code": category.code,
        "service_name": _name(category, english),
        "description": _("%(case_type)s, handled by %(unit)s; answered within %(deadline)s.")
        % {
            "case_type": (case_type.name_en or case_type.name) if english else case_type.name,
            "unit": _name(category.owner, english),
            "deadline": deadline,
        },
        "metadata": False,
        "type": "batch",
        "keywords": ", ".join(dict.fromkeys(words)),
        "group": _name(category.owner, english),
    }


def _categories() -> QuerySet[Category]:
    return Category.objects.filter(active=True).select_related("owner", "case_type")


def service_list(*, english: bool) -> list[Record]:
    """Every active category as a service, by code."""
    categories = list(_categories().order_by("code"))
    keywords: dict[int, list[str]] = {}
    for category_id, text in (
        TriageRule.objects.filter(category__in=categories, kind=TriageRule.Kind.KEYWORD).order_by(
            "category_id", "pk"
        )
    ).values_list("category_id", "text"):
        keywords.setdefault(category_id, []).append(text)
    return [_service(c, keywords.get(c.pk, []), english) for c in categories]


def service_exists(code: str) -> bool:
    return _categories().filter(code=code).exists()


def service_definition(code: str) -> Record | None:
    """A service's definition: no attributes, as every service here has metadata=false."""
    if not service_exists(code):
        return None
    return {"service_code": code, "attributes": []}


# --- Service requests --------------------------------------------------------------------

_FIELDS = (
    "case_id",
    "state",
    "category_id",
    "unit_id",
    "district_name",
    "opened_at",
    "deadline_at",
    "answered_at",
    "updated_at",
    "text",
    "withdrawn",
    "answer_text",
    "hold_reason",
    "merged_into_id",
)


def _status_notes(row: dict[str, Any]) -> str | None:
    state = row["state"]
    if state == PublicState.MERGED and row["merged_into_id"]:
        return _("Merged into %(number)s, which reports the same matter.") % {
            "number": case_number(row["merged_into_id"])
        }
    if state == PublicState.ANSWERED:
        return shorten(row["answer_text"], MAX_STATUS_NOTES) or _("Answered.")
    if state == PublicState.ON_HOLD:
        return row["hold_reason"] or _("On hold.")
    if state == PublicState.OVERDUE:
        return _("Past its deadline and not yet answered.")
    return None


def _request(
    row: dict[str, Any],
    categories: dict[int, Entry],
    units: dict[int, Entry],
    english: bool,
) -> dict[str, Any]:
    category = categories.get(row["category_id"] or 0)
    unit = units.get(row["unit_id"] or 0)
    closed = row["state"] in CLOSED_STATES
    return {
        "service_request_id": case_number(row["case_id"]),
        "status": "closed" if closed else "open",
        "status_notes": _status_notes(row),
        "service_name": _name(category, english),
        "service_code": category.code if category else None,
        # Masked at ingest; empty once the citizen deleted it on the platform.
        "description": None if row["withdrawn"] else (row["text"] or None),
        "agency_responsible": _name(unit, english),
        "service_notice": None,
        "requested_datetime": w3_datetime(row["opened_at"]),
        "updated_datetime": w3_datetime(
            (row["answered_at"] or row["updated_at"]) if closed else row["updated_at"]
        ),
        "expected_datetime": w3_datetime(row["deadline_at"]),
        "address": row["district_name"] or None,
        "address_id": None,
        "zipcode": None,
        # No coordinates are kept, and photos are not public.
        "lat": None,
        "long": None,
        "media_url": None,
    }


def _records(rows: Iterable[dict[str, Any]], english: bool) -> list[Record]:
    # Categories and units are named from the portal's cached directory: no query.
    directory = public_directory().by_id
    return [_request(row, directory["category"], directory["unit"], english) for row in rows]


def _cases() -> QuerySet[PublicCase]:
    return filtered_cases(CaseFilters())


def service_requests(query: RequestQuery, *, english: bool) -> list[Record]:
    """The public cases the query asks for, newest first: all the ids asked for (at most
    1000), or one page of the others."""
    if query.ids:
        rows: list[dict[str, Any]] = []
        for start in range(0, len(query.ids), _ID_CHUNK):
            chunk = query.ids[start : start + _ID_CHUNK]
            rows += _cases().filter(case_id__in=chunk).values(*_FIELDS)
        rows.sort(key=lambda r: -r["case_id"])
        return _records(rows[:MAX_REQUESTS], english)
    cases = _cases()
    if query.service_codes:
        cases = cases.filter(category__code__in=query.service_codes)
    if query.statuses == {"open"}:
        cases = cases.filter(state__in=OPEN_STATES)
    elif query.statuses == {"closed"}:
        cases = cases.filter(state__in=CLOSED_STATES)
    if query.start:
        cases = cases.filter(opened_at__gte=query.start)
    if query.end:
        cases = cases.filter(opened_at__lte=query.end)
    size = min(query.page_size, MAX_REQUESTS)
    rows = list(cases.order_by("-case_id").values(*_FIELDS)[query.offset : query.offset + size])
    return _records(rows, english)


def service_request(case_id: int, *, english: bool) -> Record | None:
    rows = list(_cases().filter(case_id=case_id).values(*_FIELDS))
    return _records(rows, english)[0] if rows else None


# --- Tokens ------------------------------------------------------------------------------


def token_request(token: str) -> Record | None:
    """The case number behind a POST's token: null until triage opens (or joins) a case,
    and for good if triage finds nothing for the city in it."""
    found = list(
        Message.objects.filter(channel__code=CHANNEL, external_id=TOKEN_PREFIX + token).values_list(
            "case_link__case_id", flat=True
        )[:1]
    )
    if not found:
        return None
    case_id = found[0]
    return {
        "service_request_id": case_number(case_id) if case_id else None,
        "token": token,
    }
