"""Keeps the public read model in step with the cases: `refresh_cases` rewrites the
`PublicCase` rows of changed cases and moves the overview's counters by the difference;
`count_received` counts arriving messages; `rebuild` recomputes both from scratch.

The cases and inbox services call these inside their own transactions, so the public
figures change exactly when the change commits. Every counter moves by a delta (old row's
contribution out, new row's in), so the counters equal a full recount at every moment —
`sotong rebuild-portal` is for a new installation, a restore or a changed definition, and
the tests check that it agrees with the running counts.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime

from django.db import connection, transaction
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from sotong.cases.models import Answer, Case, CaseMessage
from sotong.cases.workflow import ANSWERED_STATES, CaseStatus
from sotong.directory.models import Category, Channel, Unit
from sotong.inbox.models import Message
from sotong.lib.masking import mask_personal_data
from sotong.lib.search_text import index_tokens, normalize
from sotong.portal.models import PublicCase, PublicState, Tally

# Time to answer, in hours: the upper edges of the bins the overview's distribution and
# percentiles are read from (the last bin is open-ended). Fine where most answers fall.
ANSWER_TIME_BINS: tuple[float, ...] = (
    1, 2, 4, 8, 12, 16, 20, 24, 30, 36, 42, 48, 60, 72, 96, 120, 144, 168, 216, 264, 336,
    504, 720,
)  # fmt: skip

TallyKey = tuple[str, date, str, str, str]  # period, day, dimension, key, measure

_UPSERT_ROWS = 150  # six parameters a row, under SQLite's 999-variable limit
_BATCH = 500


def answer_time_bin(hours: float) -> int:
    """The index of the bin of ANSWER_TIME_BINS (len(ANSWER_TIME_BINS) for longer)."""
    return bisect.bisect_left(ANSWER_TIME_BINS, hours)


def public_state(case: Case, now: datetime) -> str:
    if case.status == CaseStatus.MERGED:
        return PublicState.MERGED
    if case.status in ANSWERED_STATES:
        return PublicState.ANSWERED
    if case.status == CaseStatus.ON_HOLD:
        return PublicState.ON_HOLD
    if case.deadline_at <= now:
        return PublicState.OVERDUE
    return PublicState.IN_PROGRESS


class _Codes:
    """Codes of channels, categories and units by id: the counters' keys are codes, which
    stay the same across installations, so published statistics can be compared."""

    def __init__(self) -> None:
        self.channel = dict(Channel.objects.values_list("pk", "code"))
        self.category = dict(Category.objects.values_list("pk", "code"))
        self.unit = dict(Unit.objects.values_list("pk", "code"))


def contributions(row: PublicCase, codes: _Codes) -> Counter[TallyKey]:
    """What one public case adds to the counters: to its day and its month, overall and by
    each dimension, one `relevant` and one of its state (plus `on_time`), and its time to
    answer once answered."""
    counts: Counter[TallyKey] = Counter()
    day = timezone.localtime(row.opened_at).date()
    keys = (
        ("all", ""),
        ("channel", codes.channel.get(row.channel_id or 0, "")),
        ("category", codes.category.get(row.category_id or 0, "")),
        ("unit", codes.unit.get(row.unit_id or 0, "")),
        ("district", row.district_name),
    )
    for period, period_day in (("day", day), ("month", day.replace(day=1))):
        for dimension, key in keys:
            counts[(period, period_day, dimension, key, "relevant")] += 1
            counts[(period, period_day, dimension, key, row.state)] += 1
            if row.state == PublicState.ANSWERED and row.answered_on_time:
                counts[(period, period_day, dimension, key, "on_time")] += 1
        if row.state == PublicState.ANSWERED and row.answered_at:
            hours = (row.answered_at - row.opened_at).total_seconds() / 3600
            counts[
                (period, period_day, "answer_time", str(answer_time_bin(hours)), "answered")
            ] += 1
    return counts


def add_to_tallies(delta: Counter[TallyKey]) -> None:
    """Add each non-zero delta to its counter, creating it at need: one upsert per batch,
    in key order so that two transactions lock shared counters in the same order."""
    items = sorted((key, n) for key, n in delta.items() if n)
    table = connection.ops.quote_name(Tally._meta.db_table)
    with connection.cursor() as cursor:
        for start in range(0, len(items), _UPSERT_ROWS):
            chunk = items[start : start + _UPSERT_ROWS]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
            params: list[str | date | int] = []
            for (period, day, dimension, key, measure), n in chunk:
                params += [period, day, dimension, key, measure, n]
            cursor.execute(
                f"INSERT INTO {table} (period, day, dimension, key, measure, count) "
                f"VALUES {values} ON CONFLICT (period, day, dimension, key, measure) "
                f"DO UPDATE SET count = {table}.count + excluded.count",
                params,
            )


def _build_rows(cases: Sequence[Case], previous: dict[int, PublicCase]) -> list[PublicCase]:
    ids = [c.pk for c in cases]
    links: dict[int, list[CaseMessage]] = {}
    for link in (
        CaseMessage.objects.filter(case_id__in=ids)
        .exclude(role=CaseMessage.Role.REPLY)
        .select_related("message")
        .order_by("message__received_at", "pk")
    ):
        links.setdefault(link.case_id, []).append(link)
    answers: dict[int, str] = {}
    for case_id, text in (
        Answer.objects.filter(case_id__in=ids, published_at__isnull=False)
        .order_by("published_at", "pk")
        .values_list("case_id", "public_text")
    ):
        answers[case_id] = text  # the latest published wins
    now = timezone.now()
    rows = []
    for case in cases:
        old = previous.get(case.pk)
        case_links = links.get(case.pk, [])
        opening = next((x for x in case_links if x.role == CaseMessage.Role.OPENED), None)
        opening = opening or (case_links[0] if case_links else None)
        answered = case.status in ANSWERED_STATES and case.answered_at is not None
        answer_text = answers.get(case.pk, "") if answered else ""
        if opening is not None:
            message = opening.message
            withdrawn = message.withdrawn_at is not None
            text = "" if withdrawn else message.public_text
            channel_id: int | None = message.channel_id
        else:
            # A merged case's messages moved to the case it was merged into; what the
            # public saw of it stays.
            withdrawn = old.withdrawn if old else False
            text = old.text if old else ""
            channel_id = old.channel_id if old else None
        searched = f"{text}\n{answer_text}"
        rows.append(
            PublicCase(
                case_id=case.pk,
                state=public_state(case, now),
                status=case.status,
                channel_id=channel_id,
                category_id=case.category_id,
                unit_id=case.unit_id,
                district_name=case.district_name,
                opened_at=case.opened_at,
                deadline_at=case.deadline_at,
                answered_at=case.answered_at if answered else None,
                answered_on_time=bool(answered and case.answered_at <= case.deadline_at),  # type: ignore[operator]
                updated_at=now,
                text=text,
                withdrawn=withdrawn,
                answer_text=answer_text,
                # Officers write the public reason, but a citizen's number may be quoted in it.
                hold_reason=mask_personal_data(case.hold_reason)
                if case.status == CaseStatus.ON_HOLD
                else "",
                merged_into_id=case.merged_into_id,
                reports=max(1, len(case_links)),
                search_text=normalize(searched),
                search_tokens=" ".join(index_tokens(searched)),
            )
        )
    return rows


def refresh_cases(case_ids: Iterable[int]) -> None:
    """Rewrite the public rows of these cases and move the counters by the difference.
    Call inside the transaction that changed them."""
    ids = sorted(set(case_ids))
    if not ids:
        return
    codes = _Codes()
    with transaction.atomic():
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            previous = {
                row.case_id: row
                for row in PublicCase.objects.select_for_update().filter(case_id__in=chunk)
            }
            cases = list(Case.objects.filter(pk__in=chunk).order_by("pk"))
            rows = _build_rows(cases, previous)
            delta: Counter[TallyKey] = Counter()
            for row in rows:
                delta.update(contributions(row, codes))
            for row in previous.values():
                delta.subtract(contributions(row, codes))
            # Delete and insert rather than update: SQLite's full-text index follows the
            # table by insert and delete triggers (see the migrations).
            PublicCase.objects.filter(case_id__in=chunk).delete()
            PublicCase.objects.bulk_create(rows)
            add_to_tallies(delta)


def count_received(messages: Iterable[Message]) -> None:
    """Count arriving messages on their day and month, overall and by channel. Call inside
    the transaction that stored them."""
    codes: dict[int, str] | None = None
    delta: Counter[TallyKey] = Counter()
    for message in messages:
        if codes is None:
            codes = dict(Channel.objects.values_list("pk", "code"))
        day = timezone.localtime(message.received_at).date()
        for period, period_day in (("day", day), ("month", day.replace(day=1))):
            delta[(period, period_day, "all", "", "received")] += 1
            delta[
                (period, period_day, "channel", codes.get(message.channel_id, ""), "received")
            ] += 1
    add_to_tallies(delta)


def _received_counts() -> Counter[TallyKey]:
    codes = dict(Channel.objects.values_list("pk", "code"))
    counts: Counter[TallyKey] = Counter()
    per_day: QuerySet = (  # type: ignore[type-arg]
        Message.objects.annotate(day=TruncDate("received_at"))
        .values("day", "channel_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for entry in per_day:
        day: date = entry["day"]
        for period, period_day in (("day", day), ("month", day.replace(day=1))):
            counts[(period, period_day, "all", "", "received")] += entry["n"]
            code = codes.get(entry["channel_id"], "")
            counts[(period, period_day, "channel", code, "received")] += entry["n"]
    return counts


def _case_batches(batch: int) -> Iterator[list[Case]]:
    last = 0
    while True:
        cases = list(Case.objects.filter(pk__gt=last).order_by("pk")[:batch])
        if not cases:
            return
        yield cases
        last = cases[-1].pk


def rebuild(*, batch: int = 2000, progress: bool = False) -> tuple[int, int]:
    """Recompute every public row and every counter from the cases and messages, in one
    transaction (readers see the old figures until it commits). Returns (cases, counters)."""
    codes = _Codes()
    with transaction.atomic():
        previous = {
            row.case_id: row
            for row in PublicCase.objects.filter(case__status=CaseStatus.MERGED).only(
                "case_id", "text", "withdrawn", "channel_id"
            )
        }
        PublicCase.objects.all().delete()
        Tally.objects.all().delete()
        counts = _received_counts()
        total = 0
        for cases in _case_batches(batch):
            rows = _build_rows(cases, previous)
            PublicCase.objects.bulk_create(rows)
            for row in rows:
                counts.update(contributions(row, codes))
            total += len(rows)
            if progress:
                print(f"{total} cases", flush=True)
        add_to_tallies(counts)
    return total, len(counts)
