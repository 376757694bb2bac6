"""The deadline sweep: reminders before a case's deadline, escalation after it.

Run periodically by the worker (and by `sotong sweep-deadlines`). Each case is reminded
once and escalated once; a sweep that runs twice, or is killed half-way, neither skips nor
repeats a notice (the flag and the notices are written in one transaction).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from sotong.cases.models import AuditEvent, Case, Notification
from sotong.cases.services import center_staff, snapshot
from sotong.cases.workflow import CaseStatus
from sotong.directory.models import Officer
from sotong.jobs.queue import enqueue
from sotong.portal.projection import refresh_cases

# On hold (보류) the clock is stopped by a public decision; merged cases live on elsewhere.
WATCHED = [
    CaseStatus.NEW,
    CaseStatus.UNIT,
    CaseStatus.OFFICER,
    CaseStatus.DRAFTED,
    CaseStatus.APPROVED,
]
BATCH = 500


@dataclass
class SweepReport:
    reminded: int = 0
    escalated: int = 0


def _lock_batch(**filters: object) -> list[Case]:
    return list(
        Case.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("officer")
        .filter(status__in=WATCHED, **filters)
        .order_by("pk")[:BATCH]
    )


def _record(cases: list[Case], action: str, now: datetime) -> None:
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                case=c,
                action=action,
                actor=None,
                actor_label="deadline sweep",
                at=now,
                before={},
                after=snapshot(c),
            )
            for c in cases
        ]
    )
    # A case past its deadline counts as overdue from the sweep that escalates it.
    refresh_cases([c.pk for c in cases])


def _staff_by_unit(unit_ids: set[int], roles: list[str] | None = None) -> dict[int, list[Officer]]:
    staff = Officer.objects.filter(unit_id__in=unit_ids, is_active=True)
    if roles is not None:
        staff = staff.filter(role__in=roles)
    by_unit: dict[int, list[Officer]] = defaultdict(list)
    for officer in staff:
        by_unit[officer.unit_id].append(officer)  # type: ignore[index]
    return by_unit


def _raise(cases: list[Case], recipients: dict[int, list[Officer]], kind: str) -> None:
    """Write the notices of one batch (raising again any left from before a reopening)."""
    Notification.objects.bulk_create(
        [Notification(recipient=r, case=c, kind=kind) for c in cases for r in recipients[c.pk]],
        ignore_conflicts=True,
    )
    Notification.objects.filter(case__in=cases, kind=kind).update(read_at=None, emailed_at=None)
    enqueue("sotong.cases.jobs.email_notifications", [c.pk for c in cases], kind)


def sweep_deadlines(now: datetime | None = None) -> SweepReport:
    """Remind and escalate every case that is due, in batches."""
    now = now or timezone.now()
    report = SweepReport()
    center = center_staff()
    while True:
        with transaction.atomic():
            cases = _lock_batch(reminded_at__isnull=True, remind_at__lte=now, deadline_at__gt=now)
            if not cases:
                break
            staff = _staff_by_unit({c.unit_id for c in cases if c.unit_id})
            # The officer in charge; else everyone of the unit; a case with no unit yet, the center.
            recipients = {
                c.pk: [c.officer] if c.officer else staff[c.unit_id] if c.unit_id else center
                for c in cases
            }
            Case.objects.filter(pk__in=[c.pk for c in cases]).update(reminded_at=now)
            _record(cases, "remind", now)
            _raise(cases, recipients, Notification.Kind.REMINDER)
            report.reminded += len(cases)
    while True:
        with transaction.atomic():
            cases = _lock_batch(escalated_at__isnull=True, deadline_at__lte=now)
            if not cases:
                break
            supervisors = _staff_by_unit(
                {c.unit_id for c in cases if c.unit_id}, [Officer.Role.SUPERVISOR]
            )
            recipients = {c.pk: supervisors.get(c.unit_id or 0, []) + center for c in cases}
            Case.objects.filter(pk__in=[c.pk for c in cases]).update(escalated_at=now)
            _record(cases, "escalate", now)
            _raise(cases, recipients, Notification.Kind.ESCALATION)
            report.escalated += len(cases)
    return report
