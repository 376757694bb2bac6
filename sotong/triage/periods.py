"""When a message was written, as features of the routing model.

A city's units are renamed and merged at every reorganisation: the same matter went to
교통행정과 in 2014, 교통지적과 in 2017 and 교통운수과 in 2020. A router that knows when each
of its training examples was written learns which unit owned a matter at that time, and
routes a new message as of its own date; one that does not spreads its votes over every
name the owner ever had. On the Incheon Jung-gu complaints the year of posting raised unit
top-1 from 0.44 to 0.51 in 5-fold cross-validation (function: 0.64 to 0.65).

Time enters as one column per calendar year of the training data: a message's own year
counts fully and the years next to it half (a reorganisation rarely falls on New Year's
day), each row at unit length and then scaled by a weight. A date before the first year
or after the last counts as that year: a message written today is routed as the latest
history was. A message without a date (most seed examples; any message at prediction time
when the caller gives none) counts as the last year: the present.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp

DateLike = date | datetime | str | None

# 2020.11.30, 2020-11-30, 2020/11/30, 20201130, 2020-11-30T09:00:00+09:00, 2020
_DATE = re.compile(r"^\s*(\d{4})(?:[.\-/]?(\d{1,2})(?:[.\-/]?(\d{1,2}))?)?(?:[ T].*)?\s*$")
FIRST_YEAR, LAST_YEAR = 1900, 2200


class PeriodError(ValueError):
    """A value is not a date."""


def year_of(value: DateLike) -> int | None:
    """The calendar year of a date, a datetime or a date string (YYYY-MM-DD, YYYY.MM.DD,
    YYYYMMDD, ISO 8601 with a time, or a bare year); None for None or an empty string."""
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.year
    if not isinstance(value, str):
        raise PeriodError(f"not a date: {value!r}")
    if not value.strip():
        return None
    match = _DATE.match(value)
    if match is None:
        raise PeriodError(f"not a date: {value!r} (use YYYY-MM-DD)")
    year = int(match.group(1))
    month = int(match.group(2) or 1)
    day = int(match.group(3) or 1)
    try:
        date(year, month, day)
    except ValueError as exc:
        raise PeriodError(f"not a date: {value!r} ({exc})") from exc
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise PeriodError(f"not a plausible year: {value!r}")
    return year


class PeriodFeatures:
    """One column per year of the training data (see the module's docstring)."""

    def __init__(self, weight: float = 0.5) -> None:
        self.weight = weight
        self.first: int | None = None
        self.last: int | None = None

    @property
    def active(self) -> bool:
        return self.weight > 0 and self.first is not None

    @property
    def n_features(self) -> int:
        if not self.active:
            return 0
        assert self.first is not None and self.last is not None
        return self.last - self.first + 1

    def fit(self, dates: Sequence[DateLike] | None) -> PeriodFeatures:
        """Learn the span of years; no dated example at all leaves the block inactive."""
        years = [y for y in (year_of(d) for d in dates or ()) if y is not None]
        self.first, self.last = (min(years), max(years)) if years else (None, None)
        return self

    def transform(self, dates: Sequence[DateLike] | None, n: int) -> sp.csr_matrix:
        """The n rows of the block; `dates` None means every row is dated today."""
        if not self.active:
            return sp.csr_matrix((n, 0), dtype=np.float32)
        assert self.first is not None and self.last is not None
        if dates is not None and len(dates) != n:
            raise PeriodError(f"{n} texts but {len(dates)} dates")
        years = np.array(
            [self.last if y is None else y for y in (year_of(d) for d in (dates or [None] * n))],
            dtype=float,
        )
        years = np.clip(years, self.first, self.last)
        centres = np.arange(self.first, self.last + 1, dtype=float)
        block = np.maximum(0.0, 1.0 - np.abs(years[:, None] - centres[None, :]) / 2.0)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        return sp.csr_matrix((block * self.weight).astype(np.float32))

    def feature_names(self) -> list[str]:
        if not self.active:
            return []
        assert self.first is not None and self.last is not None
        return [f"period:{year}" for year in range(self.first, self.last + 1)]

    def params(self) -> dict[str, Any]:
        return {"weight": self.weight, "first_year": self.first, "last_year": self.last}
