"""Reading the public list's filters from a query string, the same way for the pages, the
open data and the live JSON: unknown values are dropped, never an error page."""

from __future__ import annotations

from datetime import date

from django.http import QueryDict

from sotong.cases.models import parse_case_number
from sotong.portal.models import PublicState
from sotong.portal.selectors import CaseFilters

STATES = {s.value for s in PublicState} | {"open"}
_MAX = 100  # longer values are not codes, names or search words


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()[:10]) if value.strip() else None
    except ValueError:
        return None


def filters_from_query(query: QueryDict) -> CaseFilters:
    def text(name: str) -> str:
        return query.get(name, "").strip()[:_MAX]

    state = text("state")
    return CaseFilters(
        channel=text("channel"),
        category=text("category"),
        unit=text("unit"),
        district=text("district"),
        state=state if state in STATES else "",
        since=_date(query.get("since", "")),
        until=_date(query.get("until", "")),
        query=query.get("q", "").strip()[:200],
    )


def case_key(value: str | None) -> int | None:
    """A keyset position (`before` / `after`): a case id or a case number ("S0000123")."""
    return parse_case_number(value) if value else None
