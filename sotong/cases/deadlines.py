"""The deadline sweep: reminders before a case's deadline, escalation after it.

Run periodically by the worker (and by `sotong sweep-deadlines`). Each case is reminded
once and escalated once; a sweep that runs twice, or is killed half-way, neither skips nor
repeats a notice (the flag and the notices are written in one transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from sotong.cases.models import AuditEvent, Case, Notification
from sotong.cases.services import center_staff, snapshot, unit_staff
from sotong.cases.workflow import CaseStatus
from sotong.directory.models import Officer
from sotong.jobs.queue import enqueue

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
        Case.objects.select_for_update(skip_locked=True)
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
            notices = []
            for case in cases:
                recipients = [case.officer] if case.officer else unit_staff(case.unit_id)
                notices += [
                    Notification(recipient=r, case=case, kind=Notification.Kind.REMINDER)
                    for r in recipients
                    if r is not None
                ]
                if case.unit_id is None:
                    notices += [
                        Notification(recipient=r, case=case, kind=Notification.Kind.REMINDER)
                        for r in center
                    ]
            Case.objects.filter(pk__in=[c.pk for c in cases]).update(reminded_at=now)
            _record(cases, "remind", now)
            Notification.objects.bulk_create(notices, ignore_conflicts=True)
            _email(cases, Notification.Kind.REMINDER)
            report.reminded += len(cases)
    while True:
        with transaction.atomic():
            cases = _lock_batch(escalated_at__isnull=True, deadline_at__lte=now)
            if not cases:
                break
            notices = []
            for case in cases:
                supervisors = unit_staff(case.unit_id, [Officer.Role.SUPERVISOR])
                notices += [
                    Notification(recipient=r, case=case, kind=Notification.Kind.ESCALATION)
                    for r in supervisors + center
                ]
            Case.objects.filter(pk__in=[c.pk for c in cases]).update(escalated_at=now)
            _record(cases, "escalate", now)
            Notification.objects.bulk_create(notices, ignore_conflicts=True)
            _email(cases, Notification.Kind.ESCALATION)
            report.escalated += len(cases)
    return report


def _email(cases: list[Case], kind: str) -> None:
    enqueue("sotong.cases.jobs.email_notifications", [c.pk for c in cases], kind)
