"""Deadlines for civil complaints (민원), counted in Korean business days or clock hours.

Owns the business calendar (weekends, public holidays from the `holidays` package, a city's own
closures) and the counting rules of 민원 처리에 관한 법률 제19조. Pure Python: no Django.
"""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import holidays

__all__ = [
    "DEFAULT_CALENDAR",
    "HOUR_RULE_MAX_DAYS",
    "WORKING_HOURS_PER_DAY",
    "BusinessCalendar",
    "DeadlineUnit",
    "add_working_hours",
    "compute_deadline",
    "working_hours_between",
]

# 민원 처리에 관한 법률 제19조: ① a period of 5 days or fewer is counted in hours from the moment
# of receipt, Saturdays and public holidays excluded, one day being 8 working hours; ② a period of
# 6 days or more is counted in days, the first day included, Saturdays and public holidays
# excluded. Sundays are public holidays under 관공서의 공휴일에 관한 규정 제2조.
HOUR_RULE_MAX_DAYS = 5
WORKING_HOURS_PER_DAY = 8

_ONE_HOUR = timedelta(hours=1)
_ONE_MICROSECOND = timedelta(microseconds=1)


@functools.lru_cache(maxsize=256)
def _holiday_names(country: str, year: int) -> dict[date, str]:
    """Holidays of one country and year, with Korean names where the package has them.

    Cached because building a `holidays` object costs far more than a whole deadline computation.
    Countries without a Korean translation fall back to the package's default language.
    """
    return dict(holidays.country_holidays(country, years=year, language="ko").items())


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class BusinessCalendar:
    """Which days and hours a city government counts as working time."""

    country: str = "KR"
    timezone: str = "Asia/Seoul"
    work_periods: tuple[tuple[time, time], ...] = ((time(9), time(12)), (time(13), time(18)))
    extra_closed_days: frozenset[date] = frozenset()  # a city's own closures
    extra_open_days: frozenset[date] = frozenset()  # e.g. a Saturday the office opens

    def __post_init__(self) -> None:
        if not self.work_periods:
            raise ValueError("work_periods must not be empty")
        previous_end: time | None = None
        for start, end in self.work_periods:
            if start >= end:
                raise ValueError(f"work period {start}-{end} must start before it ends")
            if previous_end is not None and start < previous_end:
                raise ValueError("work_periods must be sorted and must not overlap")
            previous_end = end
        # A day both opened and closed by the city is a configuration mistake, not a tie to break.
        both = self.extra_closed_days & self.extra_open_days
        if both:
            raise ValueError(f"days both closed and open: {sorted(both)}")
        _zone(self.timezone)  # fail at construction, not at the first deadline

    def is_business_day(self, day: date) -> bool:
        if day in self.extra_open_days:
            return True
        if day in self.extra_closed_days or day.weekday() >= 5:
            return False
        return day not in _holiday_names(self.country, day.year)

    def holiday_name(self, day: date) -> str | None:
        return _holiday_names(self.country, day.year).get(day)

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after `day`."""
        return self._nth_business_day_from(day + timedelta(days=1), 1)

    # -- internals -------------------------------------------------------------------------------
    # Memoised on the instance: cached_property writes straight into __dict__, which a frozen
    # dataclass allows, and eq/hash still look only at the fields. This keeps a deadline at a few
    # microseconds: no per-call hashing of the calendar, no day-by-day walk over long periods.

    @functools.cached_property
    def _tz(self) -> ZoneInfo:
        return _zone(self.timezone)

    @functools.cached_property
    def _day_capacity(self) -> timedelta:
        """Working time in one business day (8 hours by default)."""
        return sum((_span(start, end) for start, end in self.work_periods), timedelta())

    @functools.cached_property
    def _ordinals_by_year(self) -> dict[int, list[int]]:
        return {}

    def _business_ordinals(self, year: int) -> list[int]:
        """Sorted proleptic ordinals of the business days of `year`, built once per year."""
        found = self._ordinals_by_year.get(year)
        if found is None:
            day = date(year, 1, 1)
            found = []
            while day.year == year:
                if self.is_business_day(day):
                    found.append(day.toordinal())
                day += timedelta(days=1)
            self._ordinals_by_year[year] = found
        return found

    def _nth_business_day_from(self, day: date, n: int) -> date:
        """The n-th business day (n >= 1) on or after `day`; `day` itself counts if open."""
        year = day.year
        ordinals = self._business_ordinals(year)
        index = bisect_left(ordinals, day.toordinal()) + n - 1
        while index >= len(ordinals):
            index -= len(ordinals)
            year += 1
            ordinals = self._business_ordinals(year)
        return date.fromordinal(ordinals[index])

    def _count_business_days(self, first: date, last: date) -> int:
        """Business days in the closed range [first, last]; 0 if the range is empty."""
        if first > last:
            return 0
        total = 0
        for year in range(first.year, last.year + 1):
            ordinals = self._business_ordinals(year)
            lo = bisect_left(ordinals, first.toordinal()) if year == first.year else 0
            hi = bisect_right(ordinals, last.toordinal()) if year == last.year else len(ordinals)
            total += hi - lo
        return total


DEFAULT_CALENDAR = BusinessCalendar()


class DeadlineUnit(StrEnum):
    CLOCK_HOURS = "clock_hours"
    BUSINESS_DAYS = "business_days"


def _span(start: time, end: time) -> timedelta:
    return datetime.combine(date.min, end) - datetime.combine(date.min, start)


def _to_local(moment: datetime, calendar: BusinessCalendar, name: str) -> datetime:
    """`moment` as naive wall-clock time in the calendar's timezone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(calendar._tz).replace(tzinfo=None)


def _from_local(moment: datetime, calendar: BusinessCalendar) -> datetime:
    return moment.replace(tzinfo=calendar._tz)


def _worked_on_day(calendar: BusinessCalendar, day: date, start: time, end: time) -> timedelta:
    """Working time within [start, end) of one day, 0 if it is not a business day."""
    if not calendar.is_business_day(day):
        return timedelta()
    total = timedelta()
    for period_start, period_end in calendar.work_periods:
        lo = max(start, period_start)
        hi = min(end, period_end)
        if lo < hi:
            total += _span(lo, hi)
    return total


def _consume_day(
    calendar: BusinessCalendar, day: date, from_time: time, remaining: timedelta
) -> tuple[datetime | None, timedelta]:
    """Spend `remaining` working time on `day` from `from_time` on.

    Returns (moment it ran out, zero) if the day had enough, else (None, what is still left).
    Running out exactly at a period's end yields that end (e.g. 18:00), not the next morning.
    """
    if calendar.is_business_day(day):
        for period_start, period_end in calendar.work_periods:
            if from_time >= period_end:
                continue
            begin = datetime.combine(day, max(from_time, period_start))
            available = datetime.combine(day, period_end) - begin
            if remaining <= available:
                return begin + remaining, timedelta()
            remaining -= available
    return None, remaining


def add_working_hours(
    start: datetime, hours: float, calendar: BusinessCalendar = DEFAULT_CALENDAR
) -> datetime:
    """The moment `hours` working hours after `start`.

    Time outside the work periods and on non-business days does not count, so a start outside
    working hours effectively begins at the next period start.
    """
    local = _to_local(start, calendar, "start")
    if hours < 0:
        raise ValueError(f"hours must be >= 0, got {hours}")
    remaining = timedelta(hours=hours)
    if not remaining:
        return _from_local(local, calendar)

    done, remaining = _consume_day(calendar, local.date(), local.time(), remaining)
    if done is not None:
        return _from_local(done, calendar)

    # Skip whole business days arithmetically, leaving 0 < remaining <= one day's capacity for
    # the day on which the deadline falls (so an exact multiple ends at close of business).
    capacity = calendar._day_capacity
    full_days = (remaining - _ONE_MICROSECOND) // capacity
    remaining -= full_days * capacity
    day = calendar._nth_business_day_from(local.date() + timedelta(days=1), full_days + 1)
    done, remaining = _consume_day(calendar, day, time.min, remaining)
    assert done is not None  # remaining <= capacity of a business day
    return _from_local(done, calendar)


def working_hours_between(
    start: datetime, end: datetime, calendar: BusinessCalendar = DEFAULT_CALENDAR
) -> float:
    """Working hours from `start` to `end` (e.g. time left to a deadline); negative if reversed."""
    local_start = _to_local(start, calendar, "start")
    local_end = _to_local(end, calendar, "end")
    if local_end < local_start:
        return -working_hours_between(end, start, calendar)
    first, last = local_start.date(), local_end.date()
    if first == last:
        worked = _worked_on_day(calendar, first, local_start.time(), local_end.time())
    else:
        worked = (
            _worked_on_day(calendar, first, local_start.time(), time.max)
            + calendar._count_business_days(first + timedelta(days=1), last - timedelta(days=1))
            * calendar._day_capacity
            + _worked_on_day(calendar, last, time.min, local_end.time())
        )
    return worked / _ONE_HOUR


def compute_deadline(
    received_at: datetime,
    amount: int,
    unit: DeadlineUnit,
    calendar: BusinessCalendar = DEFAULT_CALENDAR,
) -> datetime:
    """The processing deadline of a complaint received at `received_at`.

    CLOCK_HOURS: plain elapsed time, holidays ignored (an urgent safety hazard does not wait for
    Monday). BUSINESS_DAYS: 제19조 ① (working hours) for up to 5 days, ② (days, first day
    included, deadline at close of business of the last day) from 6 days on.
    """
    local = _to_local(received_at, calendar, "received_at")
    if amount <= 0:
        raise ValueError(f"amount must be > 0, got {amount}")
    unit = DeadlineUnit(unit)
    if unit is DeadlineUnit.CLOCK_HOURS:
        # Added in UTC: aware arithmetic in a local zone is wall-clock arithmetic, and a DST change
        # (none in Seoul, but possible in another calendar's zone) must not stretch the hour.
        elapsed_utc = received_at.astimezone(UTC) + timedelta(hours=amount)
        return elapsed_utc.astimezone(calendar._tz)
    if amount <= HOUR_RULE_MAX_DAYS:
        return add_working_hours(received_at, amount * WORKING_HOURS_PER_DAY, calendar)
    # The receipt day is day 1 whatever the hour, as long as it is a business day.
    last_day = calendar._nth_business_day_from(local.date(), amount)
    close_of_business = calendar.work_periods[-1][1]
    return _from_local(datetime.combine(last_day, close_of_business), calendar)
