"""Reads of the public read model shared by the portal's pages, the open data and Open311:
the case list with its filters and keyset pages, the overview's figures from the counters,
and the directory's names as the public pages show them. None of them counts cases row by
row."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.core.cache import caches
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import get_language

from sotong.directory.models import Category, Channel, Unit
from sotong.portal.models import PublicCase, PublicState, Tally
from sotong.portal.projection import ANSWER_TIME_BINS
from sotong.portal.search import search_cases

PAGE_SIZE = 20
DIMENSIONS = ("channel", "category", "unit", "district")
DIRECTORY_CACHE_SECONDS = 60  # a new category or unit shows in the filters within a minute
DIRECTORY_CACHE_KEY = "portal:directory"


# --- The directory as the public pages name it -----------------------------------------


@dataclass(frozen=True)
class Entry:
    """A channel, category or unit: what the public pages show of it."""

    id: int
    code: str
    name: str
    name_en: str
    active: bool = True
    district_name: str = ""

    def label(self, english: bool) -> str:
        return (self.name_en or self.name) if english else self.name


@dataclass(frozen=True)
class PublicDirectory:
    """Channels, categories and units in the directory's order, with lookups by code and
    by id. Read once a minute per process (`public_directory`): every list page and the
    overview name them, and they change a few times a year."""

    channels: tuple[Entry, ...]
    categories: tuple[Entry, ...]
    units: tuple[Entry, ...]
    by_code: dict[str, dict[str, Entry]] = field(default_factory=dict)
    by_id: dict[str, dict[int, Entry]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in ("channel", "category", "unit"):
            entries = getattr(self, {"category": "categories"}.get(kind, kind + "s"))
            self.by_code[kind] = {e.code: e for e in entries}
            self.by_id[kind] = {e.id: e for e in entries}

    def labels(self, english: bool) -> dict[str, dict[str, str]]:
        """Names by code for each dimension, in the page's language."""
        return {
            kind: {code: e.label(english) for code, e in entries.items()}
            for kind, entries in self.by_code.items()
        }


def _read_directory() -> PublicDirectory:
    def entries(model: type[Channel] | type[Category] | type[Unit]) -> tuple[Entry, ...]:
        fields = ["id", "code", "name", "name_en"]
        if model is not Channel:
            fields.append("active")
        if model is Unit:
            fields.append("district_name")
        return tuple(Entry(**row) for row in model.objects.values(*fields))

    return PublicDirectory(entries(Channel), entries(Category), entries(Unit))


def public_directory() -> PublicDirectory:
    """The directory's names, from the per-process cache. Inside a transaction (a test's,
    or a change that has not committed yet) it is read afresh: the transaction may have
    changed it."""
    if connection.in_atomic_block:
        return _read_directory()
    store = caches["local"]
    directory = store.get(DIRECTORY_CACHE_KEY)
    if not isinstance(directory, PublicDirectory):
        directory = _read_directory()
        store.set(DIRECTORY_CACHE_KEY, directory, DIRECTORY_CACHE_SECONDS)
    return directory


def is_english() -> bool:
    return (get_language() or "ko").startswith("en")


# --- The case list ---------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFilters:
    """What a list of public cases is narrowed to; empty means all."""

    channel: str = ""  # channel code
    category: str = ""  # category code
    unit: str = ""  # unit code
    district: str = ""  # district name
    state: str = ""  # a PublicState, or "open" (neither answered nor merged)
    since: date | None = None  # received on or after this day (local time)
    until: date | None = None  # received on or before this day
    query: str = ""  # search terms (sotong.portal.search)

    def is_empty(self) -> bool:
        return self == CaseFilters()


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filtered_cases(filters: CaseFilters) -> QuerySet[PublicCase]:
    """Public cases matching the filters, unordered and unsliced."""
    cases = PublicCase.objects.all()
    if filters.channel or filters.category or filters.unit:
        # Codes become ids from the cached directory: no join, and each filter's own
        # index (`publiccase_channel`…) serves it. An unknown code matches nothing.
        by_code = public_directory().by_code
        for kind, code in (
            ("channel", filters.channel),
            ("category", filters.category),
            ("unit", filters.unit),
        ):
            if code:
                entry = by_code[kind].get(code)
                if entry is None:
                    return cases.none()
                cases = cases.filter(**{f"{kind}_id": entry.id})
    if filters.district:
        cases = cases.filter(district_name=filters.district)
    if filters.state == "open":
        cases = cases.filter(
            state__in=[PublicState.IN_PROGRESS, PublicState.ON_HOLD, PublicState.OVERDUE]
        )
    elif filters.state:
        cases = cases.filter(state=filters.state)
    if filters.since:
        cases = cases.filter(opened_at__gte=_local_midnight(filters.since))
    if filters.until:
        cases = cases.filter(opened_at__lt=_local_midnight(filters.until + timedelta(days=1)))
    return search_cases(cases, filters.query)


@dataclass
class CasePage:
    """One page of a list, newest case first, with the keys of its neighbours: `older`
    is the `before` of the next page, `newer` the `after` of the previous one."""

    cases: list[PublicCase]
    older: int | None
    newer: int | None


def _rows(ids: list[int]) -> list[PublicCase]:
    """The cases of a page, in the order of `ids`, without the columns a list does not
    show. Their channel, category and unit are named from `public_directory()`."""
    if not ids:
        return []
    found = (
        PublicCase.objects.filter(case_id__in=ids)
        .defer("search_text", "search_tokens", "answer_text")
        .in_bulk()
    )
    return [found[pk] for pk in ids if pk in found]


def case_page(
    filters: CaseFilters,
    *,
    before: int | None = None,
    after: int | None = None,
    size: int = PAGE_SIZE,
) -> CasePage:
    """A page of the filtered list by keyset: the `size` cases just below `before` (or
    just above `after`), so page 1,000 costs what page 1 costs.

    The page's ids come first, from the filters' indexes alone; then its rows by id.
    Joining the directory before the limit would make PostgreSQL join every
    match of a search (thousands for a common word) to sort them, as it cannot tell how
    few rows the search leaves."""
    ids = filtered_cases(filters).values_list("case_id", flat=True)
    if after is not None:
        newer_ids = list(ids.filter(case_id__gt=after).order_by("case_id")[: size + 1])
        has_newer = len(newer_ids) > size
        page_ids = newer_ids[:size][::-1]
        older = page_ids[-1] if page_ids else None
        if older is not None and not ids.filter(case_id__lt=older).exists():
            older = None
        return CasePage(_rows(page_ids), older, page_ids[0] if page_ids and has_newer else None)
    if before is not None:
        ids = ids.filter(case_id__lt=before)
    page_ids = list(ids.order_by("-case_id")[: size + 1])
    has_older = len(page_ids) > size
    page_ids = page_ids[:size]
    newer = None
    if before is not None and page_ids:
        newer = (
            page_ids[0]
            if filtered_cases(filters).filter(case_id__gt=page_ids[0]).exists()
            else None
        )
    return CasePage(_rows(page_ids), page_ids[-1] if has_older else None, newer)


# --- The overview ----------------------------------------------------------------------


@dataclass
class Breakdown:
    """One line of a by-channel (category, unit, district) table."""

    key: str
    label: str
    counts: dict[str, int]

    def __getattr__(self, measure: str) -> int:
        # Templates read line.answered, line.overdue…; absent counters are zero.
        if measure.startswith("_"):
            raise AttributeError(measure)
        return self.counts.get(measure, 0)


@dataclass
class Figures:
    """The overview of one period: cases received in it, by where they stand now."""

    counts: dict[str, int]
    by: dict[str, list[Breakdown]]
    answer_times: list[tuple[str, int]]
    median_hours: float | None
    p90_hours: float | None

    def __getitem__(self, measure: str) -> int:
        return self.counts.get(measure, 0)

    @property
    def on_time_share(self) -> float | None:
        answered = self["answered"]
        return self["on_time"] / answered if answered else None

    def as_dict(self) -> dict[str, object]:
        return {
            "counts": {m: self[m] for m in MEASURES},
            "on_time_share": self.on_time_share,
            "median_hours": self.median_hours,
            "p90_hours": self.p90_hours,
            "answer_times": [{"bin": b, "answered": n} for b, n in self.answer_times],
            "by": {
                dimension: [{"key": b.key, "label": b.label, **b.counts} for b in lines]
                for dimension, lines in self.by.items()
            },
        }


MEASURES = (
    "received",
    "relevant",
    PublicState.ANSWERED.value,
    PublicState.IN_PROGRESS.value,
    PublicState.ON_HOLD.value,
    PublicState.OVERDUE.value,
    PublicState.MERGED.value,
    "on_time",
)


def answer_time_labels() -> list[str]:
    """Labels of the answer-time bins, in hours: "≤1", "1–2", …, ">720"."""
    labels = []
    lower = 0.0
    for upper in ANSWER_TIME_BINS:
        labels.append(f"≤{upper:g}" if lower == 0 else f"{lower:g}–{upper:g}")
        lower = upper
    labels.append(f">{lower:g}")
    return labels


def percentile_hours(histogram: list[int], share: float) -> float | None:
    """The time to answer under which `share` of answers fall, read from the bins with
    linear interpolation inside the bin (so within a bin's width of the exact value);
    the open-ended last bin gives its lower edge."""
    total = sum(histogram)
    if not total:
        return None
    target = share * total
    seen = 0
    lower = 0.0
    for index, count in enumerate(histogram):
        if count and seen + count >= target:
            if index >= len(ANSWER_TIME_BINS):
                return float(ANSWER_TIME_BINS[-1])
            upper = float(ANSWER_TIME_BINS[index])
            return lower + (upper - lower) * (target - seen) / count
        seen += count
        lower = float(ANSWER_TIME_BINS[index]) if index < len(ANSWER_TIME_BINS) else lower
    return float(ANSWER_TIME_BINS[-1])


def _figures(rows: list[tuple[str, str, str, int]], labels: dict[str, dict[str, str]]) -> Figures:
    counts: dict[str, int] = defaultdict(int)
    lines: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    histogram = [0] * (len(ANSWER_TIME_BINS) + 1)
    for dimension, key, measure, n in rows:
        if dimension == "all":
            counts[measure] += n
        elif dimension == "answer_time":
            histogram[int(key)] += n
        else:
            lines[dimension][key][measure] = n
    unknown = "Not yet known" if is_english() else "미지정"
    by = {
        dimension: sorted(
            (
                Breakdown(key, labels.get(dimension, {}).get(key, key) or unknown, values)
                for key, values in lines.get(dimension, {}).items()
            ),
            key=lambda b: (-(b.counts.get("relevant", 0) or b.counts.get("received", 0)), b.label),
        )
        for dimension in DIMENSIONS
    }
    return Figures(
        counts=dict(counts),
        by=by,
        answer_times=list(zip(answer_time_labels(), histogram, strict=True)),
        median_hours=percentile_hours(histogram, 0.5),
        p90_hours=percentile_hours(histogram, 0.9),
    )


@dataclass
class Overview:
    today: date
    as_of: datetime
    periods: dict[str, Figures] = field(default_factory=dict)


def overview(today: date | None = None) -> Overview:
    """Today's and this month's figures, read from the counters (a few hundred rows)."""
    now = timezone.localtime()
    today = today or now.date()
    rows = Tally.objects.filter(
        Q(period="day", day=today) | Q(period="month", day=today.replace(day=1))
    ).values_list("period", "dimension", "key", "measure", "count")
    split: dict[str, list[tuple[str, str, str, int]]] = {"day": [], "month": []}
    for period, dimension, key, measure, n in rows:
        split[period].append((dimension, key, measure, n))
    labels = public_directory().labels(is_english())
    return Overview(
        today=today,
        as_of=now,
        periods={
            "today": _figures(split["day"], labels),
            "month": _figures(split["month"], labels),
        },
    )


def daily_volume(days: int = 30, today: date | None = None) -> list[tuple[date, dict[str, int]]]:
    """Messages received per day and channel over the last `days` days, oldest first."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    per_day: dict[date, dict[str, int]] = {first + timedelta(days=i): {} for i in range(days)}
    for day, key, n in Tally.objects.filter(
        period="day", day__gte=first, day__lte=today, dimension="channel", measure="received"
    ).values_list("day", "key", "count"):
        per_day[day][key] = n
    return list(per_day.items())
