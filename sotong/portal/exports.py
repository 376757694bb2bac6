"""The open data files: one description of every column (`CASE_COLUMNS`,
`STATISTICS_COLUMNS`, `MEASURES`) that the CSV and JSON writers, the /data/ page and
docs/open-data.md all follow, and the rows themselves, read in keyset batches so that a
file of a million cases streams in constant memory.

Only the public read model is read: `PublicCase`'s masked texts and the daily `Tally`
counters. Nothing here touches a message's own text, its author or its raw payload.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from sotong.cases.models import case_number
from sotong.directory.models import Category, Channel, Unit
from sotong.portal.models import PublicCase, PublicState, Tally
from sotong.portal.selectors import CaseFilters, answer_time_labels, filtered_cases

# Raised when a column is renamed, removed or changes its meaning; adding a column at the
# end does not change it (readers should look columns up by name).
SCHEMA_VERSION = "1"
BATCH = 1000

# A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    """One column of a file: its name, JSON type, whether it can be empty (null in JSON,
    an empty cell in CSV) and what it means."""

    name: str
    type: str  # string, integer, boolean, date-time, date
    description: str | Promise
    nullable: bool = False


class Directory:
    """Codes and names of channels, categories and units by id, read once per file (a few
    hundred rows) instead of joined into every batch. Names are the official Korean ones,
    the same whatever the visitor's language, so that a file is the same for everybody."""

    def __init__(self) -> None:
        self.channel = dict(Channel.objects.values_list("pk", "code"))
        self.category = {
            pk: (code, name)
            for pk, code, name in Category.objects.values_list("pk", "code", "name")
        }
        self.unit = {
            pk: (code, name) for pk, code, name in Unit.objects.values_list("pk", "code", "name")
        }
        self.names = {
            "channel": dict(Channel.objects.values_list("code", "name")),
            "category": {code: name for code, name in self.category.values()},
            "unit": {code: name for code, name in self.unit.values()},
        }


def _moment(value: datetime | None) -> str | None:
    return timezone.localtime(value).isoformat(timespec="seconds") if value else None


CASE_COLUMNS: tuple[Column, ...] = (
    Column("number", "string", _("Case number, as the city's reply gave it (S0000123).")),
    Column(
        "state",
        "string",
        _(
            "Where the case stands publicly: in_progress, on_hold, overdue (past its deadline "
            "and not answered), answered or merged."
        ),
    ),
    Column(
        "status",
        "string",
        _(
            "The workflow status: new, unit, officer, drafted, approved, published, closed, "
            "on_hold or merged."
        ),
    ),
    Column("channel", "string", _("Code of the channel the opening message came by."), True),
    Column("category", "string", _("Code of the category; empty until triage sets it."), True),
    Column("category_name", "string", _("Name of the category (Korean)."), True),
    Column("unit", "string", _("Code of the unit that owns the case."), True),
    Column("unit_name", "string", _("Name of the unit (Korean)."), True),
    Column("district", "string", _("The district (자치구) the case is about, if known."), True),
    Column("received_at", "date-time", _("When the case was opened (ISO 8601, with offset).")),
    Column("deadline_at", "date-time", _("When the answer is due (ISO 8601, with offset).")),
    Column(
        "answered_at",
        "date-time",
        _("When the answer was published; empty while unanswered."),
        True,
    ),
    Column(
        "answered_on_time",
        "boolean",
        _("Whether the answer came by the deadline; empty while unanswered."),
        True,
    ),
    Column("reports", "integer", _("How many messages reported this matter.")),
    Column(
        "merged_into",
        "string",
        _("Number of the case this one was merged into, if merged."),
        True,
    ),
    Column(
        "text",
        "string",
        _("The opening message, personal data masked; empty if its author deleted it."),
    ),
    Column("withdrawn", "boolean", _("Whether the author deleted the opening message.")),
    Column("answer", "string", _("The city's published answer, personal data masked.")),
    Column("hold_reason", "string", _("The public reason while the case is on hold.")),
)


def case_record(row: PublicCase, directory: Directory) -> dict[str, Any]:
    """One case as a record of CASE_COLUMNS, in their order."""
    category = directory.category.get(row.category_id or 0, (None, None))
    unit = directory.unit.get(row.unit_id or 0, (None, None))
    answered = row.answered_at is not None
    return {
        "number": case_number(row.case_id),
        "state": row.state,
        "status": row.status,
        "channel": directory.channel.get(row.channel_id or 0),
        "category": category[0],
        "category_name": category[1],
        "unit": unit[0],
        "unit_name": unit[1],
        "district": row.district_name or None,
        "received_at": _moment(row.opened_at),
        "deadline_at": _moment(row.deadline_at),
        "answered_at": _moment(row.answered_at),
        "answered_on_time": row.answered_on_time if answered else None,
        "reports": row.reports,
        "merged_into": case_number(row.merged_into_id) if row.merged_into_id else None,
        "text": "" if row.withdrawn else row.text,
        "withdrawn": row.withdrawn,
        "answer": row.answer_text,
        "hold_reason": row.hold_reason,
    }


class CaseExport:
    """The filtered cases, newest first, from below `before` and at most `limit` of them,
    read a batch at a time. After iterating, `count` says how many were written and
    `next_before` the case id to continue from when the limit cut the list short."""

    def __init__(
        self, filters: CaseFilters, *, before: int | None = None, limit: int | None = None
    ) -> None:
        self.filters = filters
        self.before = before
        self.limit = limit
        self.count = 0
        self.next_before: int | None = None

    def records(self) -> Iterator[dict[str, Any]]:
        directory = Directory()
        cases = (
            filtered_cases(self.filters)
            .defer("search_text", "search_tokens", "updated_at")
            .order_by("-case_id")
        )
        last = self.before
        while self.limit is None or self.count < self.limit:
            size = BATCH if self.limit is None else min(BATCH, self.limit - self.count)
            batch = cases if last is None else cases.filter(case_id__lt=last)
            rows = list(batch[:size])
            for row in rows:
                yield case_record(row, directory)
            self.count += len(rows)
            if len(rows) < size:
                return
            last = rows[-1].case_id
        if last is not None and cases.filter(case_id__lt=last).exists():
            self.next_before = last


# --- Statistics ------------------------------------------------------------------------

STATISTICS_DIMENSIONS = ("all", "channel", "category", "unit", "district", "answer_time")

STATISTICS_COLUMNS: tuple[Column, ...] = (
    Column("day", "date", _("The day (Seoul time) the messages or cases were received.")),
    Column(
        "dimension",
        "string",
        _(
            "What the count is broken down by: all, channel, category, unit, district or answer_time."
        ),
    ),
    Column(
        "key",
        "string",
        _(
            "The code (channel, category, unit), the district name, or the answer-time bin; "
            "empty for dimension all, or when not yet known."
        ),
    ),
    Column("name", "string", _("The name of the key (Korean), where it has one.")),
    Column("measure", "string", _("What is counted (see the measures).")),
    Column("count", "integer", _("How many.")),
)


@dataclass(frozen=True)
class Measure:
    name: str
    dimensions: str  # which dimensions carry it
    description: str | Promise


MEASURES: tuple[Measure, ...] = (
    Measure(
        "received",
        "all, channel",
        _("Messages received that day, relevant or not, by the channel they came by."),
    ),
    Measure(
        "relevant",
        "all, channel, category, unit, district",
        _("Cases opened that day: messages found to need the city's answer."),
    ),
    Measure(
        PublicState.IN_PROGRESS.value,
        "all, channel, category, unit, district",
        _("Of the cases opened that day, how many are being worked on now, within their deadline."),
    ),
    Measure(
        PublicState.ON_HOLD.value,
        "all, channel, category, unit, district",
        _("Of those cases, how many are on hold now, with a public reason."),
    ),
    Measure(
        PublicState.OVERDUE.value,
        "all, channel, category, unit, district",
        _("Of those cases, how many are past their deadline now without an answer."),
    ),
    Measure(
        PublicState.ANSWERED.value,
        "all, channel, category, unit, district, answer_time",
        _(
            "Of those cases, how many are answered now; by answer_time, how many took the "
            "bin's time (in hours) from receipt to the published answer."
        ),
    ),
    Measure(
        PublicState.MERGED.value,
        "all, channel, category, unit, district",
        _("Of those cases, how many were merged into another case about the same matter."),
    ),
    Measure(
        "on_time",
        "all, channel, category, unit, district",
        _("Of the answered cases, how many were answered by their deadline."),
    ),
)


@dataclass(frozen=True)
class StatisticsFilters:
    since: date | None = None
    until: date | None = None
    dimension: str = ""


def statistics_records(filters: StatisticsFilters) -> Iterator[dict[str, Any]]:
    """The daily counters as records of STATISTICS_COLUMNS, by day, dimension, key and
    measure, in keyset batches over the counters' unique index."""
    directory = Directory()
    bins = answer_time_labels()
    tallies = Tally.objects.filter(period="day").exclude(count=0)
    if filters.since:
        tallies = tallies.filter(day__gte=filters.since)
    if filters.until:
        tallies = tallies.filter(day__lte=filters.until)
    if filters.dimension:
        tallies = tallies.filter(dimension=filters.dimension)
    tallies = tallies.order_by("day", "dimension", "key", "measure")
    fields = ("day", "dimension", "key", "measure", "count")
    last: tuple[date, str, str, str] | None = None
    while True:
        batch = tallies
        if last is not None:
            day, dimension, key, measure = last
            # `day >= ` lets both databases start the index scan at the last day.
            batch = tallies.filter(day__gte=day).filter(
                Q(day__gt=day)
                | Q(day=day, dimension__gt=dimension)
                | Q(day=day, dimension=dimension, key__gt=key)
                | Q(day=day, dimension=dimension, key=key, measure__gt=measure)
            )
        rows = list(batch.values_list(*fields)[:BATCH])
        for day, dimension, key, measure, count in rows:
            if dimension == "answer_time":
                shown = bins[int(key)] if key.isdigit() and int(key) < len(bins) else key
                name = shown
            else:
                shown = key
                name = directory.names.get(dimension, {}).get(key, key)
            yield {
                "day": day.isoformat(),
                "dimension": dimension,
                "key": shown,
                "name": name,
                "measure": measure,
                "count": count,
            }
        if len(rows) < BATCH:
            return
        last = rows[-1][:4]


# --- Writers ---------------------------------------------------------------------------


def csv_cell(value: object) -> str:
    """A value as a CSV cell: empty for null, true/false, and text that a spreadsheet would
    take for a formula prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


class _Line:
    """A file-like object that hands back what csv.writer writes, one row at a time."""

    def write(self, value: str) -> str:
        return value


def csv_stream(columns: Sequence[Column], records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """UTF-8 with a byte-order mark (so that Excel opens Korean text right), a header row,
    then one line per record; CRLF line ends as RFC 4180 has them."""
    writer = csv.writer(_Line())
    names = [c.name for c in columns]
    yield "\ufeff" + writer.writerow(names)
    for record in records:
        yield writer.writerow([csv_cell(record[name]) for name in names])


def json_dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_stream(
    envelope: dict[str, Any],
    key: str,
    records: Iterable[dict[str, Any]],
    trailer: Callable[[], dict[str, Any]] | None = None,
) -> Iterator[str]:
    """One JSON object: the envelope's members, then `key` holding the records as an array
    written as they come, then the trailer's members (known only once the records are)."""
    head = json_dumps(envelope)[:-1]
    yield f'{head},"{key}":['
    separator = ""
    for record in records:
        yield separator + json_dumps(record)
        separator = ","
    tail = json_dumps(trailer()) if trailer else "{}"
    yield "]" + ("," + tail[1:] if tail != "{}" else "}")
