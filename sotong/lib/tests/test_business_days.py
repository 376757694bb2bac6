"""Tests for sotong.lib.business_days against real 2025–2027 dates of the `holidays` KR calendar.

Every holiday asserted here was checked against holidays.KR(language="ko") 0.109.
"""

from __future__ import annotations

import time as _time
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from sotong.lib import business_days
from sotong.lib.business_days import (
    DEFAULT_CALENDAR,
    BusinessCalendar,
    DeadlineUnit,
    add_working_hours,
    compute_deadline,
    working_hours_between,
)

SEOUL = ZoneInfo("Asia/Seoul")
DAYS = DeadlineUnit.BUSINESS_DAYS
HOURS = DeadlineUnit.CLOCK_HOURS


def kst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SEOUL)


def assert_same_moment_in_seoul(actual: datetime, expected: datetime) -> None:
    # Aware datetimes compare by instant; also insist the result is expressed in Seoul time.
    assert actual == expected
    assert actual.tzinfo == SEOUL
    assert actual.utcoffset() == timedelta(hours=9)


# -- the calendar -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2026, 2, 16), "설날 전날"),
        (date(2026, 2, 17), "설날"),
        (date(2026, 2, 18), "설날 다음날"),
        (date(2026, 3, 2), "삼일절 대체 휴일"),
        (date(2026, 5, 25), "부처님오신날 대체 휴일"),
        (date(2026, 6, 3), "지방선거일"),
        (date(2026, 8, 17), "광복절 대체 휴일"),
        (date(2026, 9, 24), "추석 전날"),
        (date(2026, 9, 25), "추석"),
        (date(2026, 9, 26), "추석 다음날"),
        (date(2026, 10, 5), "개천절 대체 휴일"),
        (date(2025, 10, 8), "추석 대체 휴일"),
        (date(2027, 1, 1), "신정연휴"),
    ],
)
def test_holiday_name_in_korean(day: date, name: str) -> None:
    assert DEFAULT_CALENDAR.holiday_name(day) == name
    assert not DEFAULT_CALENDAR.is_business_day(day)


def test_chuseok_2026_saturday_gets_no_substitute() -> None:
    # 추석 다음날 falls on Saturday 2026-09-26; Saturday overlap does not trigger 대체공휴일
    # for 설날/추석, and the package agrees: Monday the 28th is an ordinary working day.
    assert DEFAULT_CALENDAR.holiday_name(date(2026, 9, 26)) == "추석 다음날"
    assert DEFAULT_CALENDAR.holiday_name(date(2026, 9, 28)) is None
    assert DEFAULT_CALENDAR.is_business_day(date(2026, 9, 28))
    assert DEFAULT_CALENDAR.next_business_day(date(2026, 9, 23)) == date(2026, 9, 28)


def test_ordinary_days() -> None:
    assert DEFAULT_CALENDAR.holiday_name(date(2026, 1, 9)) is None
    assert DEFAULT_CALENDAR.is_business_day(date(2026, 1, 9))  # Friday
    assert not DEFAULT_CALENDAR.is_business_day(date(2026, 1, 10))  # Saturday
    assert not DEFAULT_CALENDAR.is_business_day(date(2026, 1, 11))  # Sunday
    assert DEFAULT_CALENDAR.holiday_name(date(2026, 1, 10)) is None  # weekend is not a holiday


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 9), date(2026, 1, 12)),  # Friday -> Monday
        (date(2026, 1, 5), date(2026, 1, 6)),  # strictly after, even on a business day
        (date(2026, 2, 13), date(2026, 2, 19)),  # Fri before 설날 (Mon–Wed)
        (date(2026, 2, 27), date(2026, 3, 3)),  # Mon 3·1절 substitute
        (date(2025, 10, 2), date(2025, 10, 10)),  # 개천절, 추석 + substitute, 한글날
        (date(2025, 12, 31), date(2026, 1, 2)),  # year boundary
        (date(2026, 12, 31), date(2027, 1, 4)),  # year boundary, then a weekend
    ],
)
def test_next_business_day(day: date, expected: date) -> None:
    assert DEFAULT_CALENDAR.next_business_day(day) == expected


def test_calendar_rejects_inconsistent_configuration() -> None:
    with pytest.raises(ValueError):
        BusinessCalendar(work_periods=())
    with pytest.raises(ValueError):
        BusinessCalendar(work_periods=((time(12), time(9)),))
    with pytest.raises(ValueError):
        BusinessCalendar(work_periods=((time(9), time(13)), (time(12), time(18))))
    day = date(2026, 1, 12)
    with pytest.raises(ValueError):
        BusinessCalendar(extra_closed_days=frozenset({day}), extra_open_days=frozenset({day}))


# -- up to 5 days: working hours (제19조 ①) -----------------------------------------------------


@pytest.mark.parametrize(
    ("received", "amount", "expected"),
    [
        # Fri 17:00 + 24h: Fri 1h, Mon 8h, Tue 8h, Wed 9–12 and 13–17.
        (kst(2026, 1, 9, 17), 3, kst(2026, 1, 14, 17)),
        # Exactly at close of business the day is over: counting starts Monday 09:00.
        (kst(2026, 1, 9, 18), 1, kst(2026, 1, 12, 18)),
        # Lunch break does not count: 13–18 (5h) then Wed 09–12 (3h).
        (kst(2026, 3, 3, 12, 30), 1, kst(2026, 3, 4, 12)),
        # Before opening: counting starts at 09:00 the same day.
        (kst(2026, 3, 3, 7, 15), 1, kst(2026, 3, 3, 18)),
        # 5 days = 40h: Mon 10–18 (7h), Tue–Fri 32h, next Mon 09–10.
        (kst(2026, 1, 5, 10), 5, kst(2026, 1, 12, 10)),
        # 설날 2026 (Mon 16 – Wed 18): Fri 1h, then Thu 19th 09–12, 13–17.
        (kst(2026, 2, 13, 17), 1, kst(2026, 2, 19, 17)),
        # Received at 23:50 on 설날 itself: counting starts Thu 19th 09:00.
        (kst(2026, 2, 17, 23, 50), 1, kst(2026, 2, 19, 18)),
        # 3·1절 substitute Mon 2026-03-02: Fri 10–18 (7h), Tue 09–10.
        (kst(2026, 2, 27, 10), 1, kst(2026, 3, 3, 10)),
        # 부처님오신날 substitute Mon 2026-05-25: Fri 8h, Tue 8h.
        (kst(2026, 5, 22, 9), 2, kst(2026, 5, 26, 18)),
        # 광복절 substitute Mon 2026-08-17: Fri 13–18 (5h), Tue 09–12.
        (kst(2026, 8, 14, 13), 1, kst(2026, 8, 18, 12)),
        # 추석 2026 (Thu 24 – Sat 26, no substitute): Wed 10–18 (7h), Mon 8h, Tue 09–10.
        (kst(2026, 9, 23, 10), 2, kst(2026, 9, 29, 10)),
        # 개천절 substitute Mon 2026-10-05: Fri 2nd 09–18 (8h) then Tue 6th 8h.
        (kst(2026, 10, 2, 9), 2, kst(2026, 10, 6, 18)),
        # 2025: 개천절 Fri 3, 추석 Sun 5 – Tue 7, substitute Wed 8, 한글날 Thu 9.
        (kst(2025, 10, 2, 17), 1, kst(2025, 10, 10, 17)),
        # Local Election Day Wed 2026-06-03: Tue 14–18 (4h), Thu 09–12, 13–14.
        (kst(2026, 6, 2, 14), 1, kst(2026, 6, 4, 14)),
        # Year boundary: Wed 2025-12-31 1h, Thu 1 Jan closed, Fri 2 Jan 7h.
        (kst(2025, 12, 31, 17), 1, kst(2026, 1, 2, 17)),
        # Year boundary then a weekend: Thu 2026-12-31 1h, Fri 1 Jan closed, Mon 4 Jan 7h.
        (kst(2026, 12, 31, 17), 1, kst(2027, 1, 4, 17)),
    ],
)
def test_hour_rule(received: datetime, amount: int, expected: datetime) -> None:
    assert_same_moment_in_seoul(compute_deadline(received, amount, DAYS), expected)


def test_received_at_is_converted_to_calendar_timezone() -> None:
    # 08:00 UTC is Friday 17:00 in Seoul: same answer as the Friday 17:00 case above.
    received = datetime(2026, 1, 9, 8, 0, tzinfo=UTC)
    assert_same_moment_in_seoul(compute_deadline(received, 3, DAYS), kst(2026, 1, 14, 17))


def test_unit_accepts_its_string_value() -> None:
    result = compute_deadline(kst(2026, 1, 9, 17), 3, DeadlineUnit("business_days"))
    assert result == kst(2026, 1, 14, 17)


# -- 6 days or more: days, first day included (제19조 ②) ------------------------------------------


@pytest.mark.parametrize(
    ("received", "amount", "expected"),
    [
        # Mon 5 Jan is day 1: 5,6,7,8,9,12 and 13 → Tue 13th at close of business.
        (kst(2026, 1, 5, 10), 7, kst(2026, 1, 13, 18)),
        # The receipt day counts whatever the hour, as long as it is a business day.
        (kst(2026, 1, 5, 22), 7, kst(2026, 1, 13, 18)),
        # Received on a Saturday: day 1 is Monday → 12,13,14,15,16,19,20.
        (kst(2026, 1, 10, 11), 7, kst(2026, 1, 20, 18)),
        # 6 is the first amount counted in days (compare 5 days → Mon 12th 10:00 above).
        (kst(2026, 1, 5, 10), 6, kst(2026, 1, 12, 18)),
        # 설날: Fri 13 is day 1, 19,20,23,24,25,26 → Thu 26th.
        (kst(2026, 2, 13, 17), 7, kst(2026, 2, 26, 18)),
        # 개천절 substitute & 한글날: Thu 1, Fri 2, (Sat 3, Mon 5 closed) 6,7,8, (9) 12,13.
        (kst(2026, 10, 1, 15), 7, kst(2026, 10, 13, 18)),
        # 2025 추석: Thu 2 Oct day 1, then nothing until Fri 10; 13–17 are days 3–7.
        (kst(2025, 10, 2, 9), 7, kst(2025, 10, 17, 18)),
        # Across the year: Mon 2025-12-29, 30, 31, (1 Jan closed) 2, 5, 6, 7.
        (kst(2025, 12, 29, 9), 7, kst(2026, 1, 7, 18)),
    ],
)
def test_day_rule(received: datetime, amount: int, expected: datetime) -> None:
    assert_same_moment_in_seoul(compute_deadline(received, amount, DAYS), expected)


def test_day_rule_long_period_spans_years() -> None:
    # 250 business days from Fri 2026-01-02 must cross into 2027; check it equals a plain walk.
    received = kst(2026, 1, 2, 9)
    day, counted = date(2026, 1, 2), 0
    while True:
        if DEFAULT_CALENDAR.is_business_day(day):
            counted += 1
            if counted == 250:
                break
        day += timedelta(days=1)
    assert day.year == 2027
    expected = datetime.combine(day, time(18), tzinfo=SEOUL)
    assert compute_deadline(received, 250, DAYS) == expected


# -- clock hours: elapsed time, holidays ignored ------------------------------------------------


@pytest.mark.parametrize(
    ("received", "amount", "expected"),
    [
        (kst(2026, 3, 3, 23, 30), 1, kst(2026, 3, 4, 0, 30)),  # across midnight
        (kst(2026, 2, 17, 10), 1, kst(2026, 2, 17, 11)),  # on 설날
        (kst(2026, 1, 10, 23, 50), 1, kst(2026, 1, 11, 0, 50)),  # Saturday night
        (kst(2025, 12, 31, 23, 30), 1, kst(2026, 1, 1, 0, 30)),  # into New Year's Day
        (kst(2026, 1, 9, 17), 72, kst(2026, 1, 12, 17)),  # weekend counts in full
    ],
)
def test_clock_hours(received: datetime, amount: int, expected: datetime) -> None:
    assert_same_moment_in_seoul(compute_deadline(received, amount, HOURS), expected)


def test_clock_hours_from_another_timezone() -> None:
    received = datetime(2026, 2, 17, 1, 0, tzinfo=UTC)  # 10:00 in Seoul, on 설날
    assert_same_moment_in_seoul(compute_deadline(received, 1, HOURS), kst(2026, 2, 17, 11))


# -- city-specific closures and openings --------------------------------------------------------


def test_extra_closed_days_push_the_deadline() -> None:
    closed = BusinessCalendar(extra_closed_days=frozenset({date(2026, 1, 12)}))
    assert not closed.is_business_day(date(2026, 1, 12))
    assert closed.holiday_name(date(2026, 1, 12)) is None  # not a national holiday
    # Same Friday 17:00 + 3 days as above, one day later because Monday is closed.
    assert compute_deadline(kst(2026, 1, 9, 17), 3, DAYS, closed) == kst(2026, 1, 15, 17)
    assert compute_deadline(kst(2026, 1, 5, 10), 7, DAYS, closed) == kst(2026, 1, 14, 18)
    assert closed.next_business_day(date(2026, 1, 9)) == date(2026, 1, 13)
    # The default calendar is unaffected.
    assert compute_deadline(kst(2026, 1, 9, 17), 3, DAYS) == kst(2026, 1, 14, 17)


def test_extra_open_days_count() -> None:
    open_saturday = BusinessCalendar(extra_open_days=frozenset({date(2026, 1, 10)}))
    assert open_saturday.is_business_day(date(2026, 1, 10))
    # Fri 17–18 (1h), then Saturday 09–12, 13–17 (7h).
    assert compute_deadline(kst(2026, 1, 9, 17), 1, DAYS, open_saturday) == kst(2026, 1, 10, 17)


def test_custom_work_periods() -> None:
    # A one-window office, 10:00–16:00 (6h a day). 8h from Mon 15:00: 1h, Tue 6h, Wed 10–11.
    short = BusinessCalendar(work_periods=((time(10), time(16)),))
    assert add_working_hours(kst(2026, 1, 5, 15), 8, short) == kst(2026, 1, 7, 11)
    # Day rule ends at the calendar's own close of business.
    assert compute_deadline(kst(2026, 1, 5, 10), 7, DAYS, short) == kst(2026, 1, 13, 16)


# -- add_working_hours / working_hours_between --------------------------------------------------


def test_add_working_hours_fractions_and_zero() -> None:
    assert add_working_hours(kst(2026, 1, 9, 11, 30), 0.5) == kst(2026, 1, 9, 12)
    assert add_working_hours(kst(2026, 1, 9, 11, 30), 0.75) == kst(2026, 1, 9, 13, 15)
    assert add_working_hours(kst(2026, 1, 9, 11, 30), 0) == kst(2026, 1, 9, 11, 30)
    with pytest.raises(ValueError):
        add_working_hours(kst(2026, 1, 9, 11, 30), -1)


def test_working_hours_between_across_weekend() -> None:
    # Fri 17–18 (1h) + Mon 09–10 (1h); the weekend contributes nothing.
    assert working_hours_between(kst(2026, 1, 9, 17), kst(2026, 1, 12, 10)) == 2.0
    assert working_hours_between(kst(2026, 1, 12, 10), kst(2026, 1, 9, 17)) == -2.0


def test_working_hours_between_details() -> None:
    assert working_hours_between(kst(2026, 1, 9, 11), kst(2026, 1, 9, 14)) == 2.0  # lunch
    assert working_hours_between(kst(2026, 1, 10, 9), kst(2026, 1, 10, 18)) == 0.0  # Saturday
    assert working_hours_between(kst(2026, 1, 9, 12), kst(2026, 1, 9, 12)) == 0.0
    # Thu 2026-02-12 09:00 → Thu 2026-02-19 09:00: Thu, Fri, then 설날 Mon–Wed.
    assert working_hours_between(kst(2026, 2, 12, 9), kst(2026, 2, 19, 9)) == 16.0
    # Across the year end: Wed 31 Dec 17–18, Fri 2 Jan 8h, Mon 5 Jan 09–12.
    assert working_hours_between(kst(2025, 12, 31, 17), kst(2026, 1, 5, 12)) == 12.0


@pytest.mark.parametrize(
    "start",
    [
        kst(2026, 1, 9, 17),
        kst(2026, 2, 13, 9, 45),
        kst(2026, 9, 23, 12, 30),
        kst(2025, 12, 30, 16, 20),
        kst(2026, 6, 2, 18),
    ],
)
@pytest.mark.parametrize("hours", [0.25, 3, 8, 13.5, 40, 400])
def test_add_and_between_are_inverse(start: datetime, hours: float) -> None:
    end = add_working_hours(start, hours)
    assert working_hours_between(start, end) == pytest.approx(hours)


# -- input validation ---------------------------------------------------------------------------


def test_naive_datetimes_rejected() -> None:
    naive = datetime(2026, 1, 9, 17)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_deadline(naive, 3, DAYS)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_deadline(naive, 1, HOURS)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_hours(naive, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        working_hours_between(naive, kst(2026, 1, 9, 18))


@pytest.mark.parametrize("amount", [0, -3])
def test_amount_must_be_positive(amount: int) -> None:
    with pytest.raises(ValueError):
        compute_deadline(kst(2026, 1, 9, 17), amount, DAYS)


# -- speed ----------------------------------------------------------------------------------------


def test_holidays_built_once_per_year() -> None:
    business_days._holiday_names.cache_clear()
    calendar = BusinessCalendar()  # fresh, so its per-year tables are built inside this test
    for offset in range(400):
        compute_deadline(kst(2026, 1, 1, 10) + timedelta(days=offset), 3, DAYS, calendar)
    # Receipts run from 2026-01-01 to 2027-02-04: one build for 2026, one for 2027, never per call.
    assert business_days._holiday_names.cache_info().misses == 2


def test_fifty_thousand_deadlines_under_two_seconds() -> None:
    # A fresh calendar so the timing includes building its per-year tables.
    calendar = BusinessCalendar()
    base = kst(2026, 1, 1, 8)
    inputs = [
        (base + timedelta(minutes=37 * i), (1, 3, 5, 7, 14, 30)[i % 6], DAYS if i % 10 else HOURS)
        for i in range(50_000)
    ]
    started = _time.perf_counter()
    for received, amount, unit in inputs:
        compute_deadline(received, amount, unit, calendar)
    assert _time.perf_counter() - started < 2.0
