"""Reads of cases that pages and the API share: what an officer may see, a unit's inbox,
the timeline, and what the public may see. Related rows are fetched with the case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case as When_
from django.db.models import IntegerField, QuerySet, Value, When
from django.utils.translation import gettext

from sotong.cases.models import (
    Answer,
    AuditEvent,
    Case,
    CaseMessage,
    Notification,
    case_number,
    parse_case_number,
)
from sotong.cases.permissions import can_view
from sotong.cases.workflow import OPEN_STATES, Action
from sotong.directory.models import Officer, Unit
from sotong.errors import NotFound
from sotong.lib.masking import mask_personal_data
from sotong.portal.models import PublicCase


def _with_related(queryset: QuerySet[Case]) -> QuerySet[Case]:
    return queryset.select_related("unit", "case_type", "category", "officer")


def visible_cases(officer: Officer) -> QuerySet[Case]:
    cases = _with_related(Case.objects.all())
    if officer.sees_all_units:
        return cases
    return cases.filter(unit_id=officer.unit_id) if officer.unit_id else cases.none()


def get_case_for(officer: Officer, pk: int) -> Case:
    """A case the officer may see, or NotFound: another unit's case looks like no case."""
    case = _with_related(Case.objects.filter(pk=pk)).first()
    if case is None or not can_view(officer, case):
        raise NotFound("no such case")
    return case


def unit_inbox(officer: Officer, *, status: str = "open") -> QuerySet[Case]:
    """The officer's cases, urgent first, then by deadline (the nearest first)."""
    cases = visible_cases(officer)
    if status == "open":
        cases = cases.filter(status__in=OPEN_STATES)
    elif status:
        cases = cases.filter(status=status)
    return cases.annotate(
        urgency=When_(
            When(urgent=True, then=Value(0)), default=Value(1), output_field=IntegerField()
        )
    ).order_by("urgency", "deadline_at", "pk")


def case_messages(case: Case) -> list[CaseMessage]:
    return list(
        CaseMessage.objects.filter(case=case)
        .select_related("message__channel", "message__account")
        .order_by("message__received_at", "pk")
    )


def case_timeline(case: Case) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(case=case).select_related("actor").order_by("at", "pk"))


def case_answers(case: Case) -> list[Answer]:
    return list(case.answers.select_related("author", "approved_by").order_by("created_at", "pk"))


def unread_notifications(officer: Officer) -> QuerySet[Notification]:
    return (
        Notification.objects.filter(recipient=officer, read_at__isnull=True)
        .select_related("case")
        .order_by("-created_at")
    )


# --- The public portal's case page -----------------------------------------------------


def public_case(number: str) -> PublicCase:
    """A case as the public sees it (every case is public, with masked text only), by its
    number, or NotFound."""
    pk = parse_case_number(number)
    row = (
        PublicCase.objects.select_related("channel", "category", "unit").filter(pk=pk).first()
        if pk is not None
        else None
    )
    if row is None:
        raise NotFound(gettext("There is no case with that number."))
    return row


@dataclass(frozen=True)
class PublicEvent:
    """One step of a case as the public timeline shows it: what happened, when, and the
    units involved. Never who did it (officers are not named) nor an officer's note; an
    officer's reasons for a transfer or a reopening are written for officers and stay
    inside. The reason of a hold is the public one, masked like every public text."""

    at: datetime
    kind: str  # one of PUBLIC_EVENT_KINDS
    unit: Unit | None = None
    from_unit: Unit | None = None
    reason: str = ""
    other_case: str = ""  # the case merged into this one, or the one this was merged into


PUBLIC_EVENT_KINDS = (
    "received",
    "assigned",
    "transferred",
    "on_hold",
    "resumed",
    "answered",
    "closed",
    "reopened",
    "merged_into",
    "merged_here",
)
_PUBLIC_ACTIONS = (
    Action.OPEN,
    Action.ASSIGN_UNIT,
    Action.TRANSFER,
    Action.HOLD,
    Action.RESUME,
    Action.PUBLISH,
    Action.CLOSE,
    Action.REOPEN,
    Action.MERGE,
)
_MERGED_HERE_SHOWN = 100  # a case rarely has more; the page lists them all the same


def public_timeline(
    case_id: int,
    received_at: datetime,
    *,
    merges: bool = True,
    known_units: tuple[Unit | None, ...] = (),
) -> list[PublicEvent]:
    """The public steps of a case, oldest first, read from its audit trail and from the
    merges of other cases into it: at most three queries whatever the length. Without
    `merges` (the caller knows none was merged into it) the merges are not looked for;
    `known_units` (the case's own unit, usually the only one its trail names) are not
    read again."""
    events = list(
        AuditEvent.objects.filter(case_id=case_id, action__in=_PUBLIC_ACTIONS)
        .only("action", "at", "before", "after")
        .order_by("at", "pk")
    )
    merged_here = (
        list(
            AuditEvent.objects.filter(case__merged_into_id=case_id, action=Action.MERGE)
            .only("case_id", "at")
            .order_by("at", "pk")[:_MERGED_HERE_SHOWN]
        )
        if merges
        else []
    )
    unit_ids = {
        snap.get("unit")
        for event in events
        for snap in (event.before, event.after)
        if isinstance(snap, dict) and snap.get("unit")
    }
    units: dict[object, Unit] = {unit.pk: unit for unit in known_units if unit is not None}
    missing = unit_ids - units.keys()
    if missing:
        units.update(Unit.objects.in_bulk(missing))

    timeline = [PublicEvent(at=received_at, kind="received")]
    for event in events:
        before, after = event.before or {}, event.after or {}
        unit = units.get(after.get("unit"))
        if event.action in (Action.OPEN, Action.ASSIGN_UNIT):
            if unit is not None and before.get("unit") != after.get("unit"):
                timeline.append(PublicEvent(at=event.at, kind="assigned", unit=unit))
        elif event.action == Action.TRANSFER:
            timeline.append(
                PublicEvent(
                    at=event.at,
                    kind="transferred",
                    unit=unit,
                    from_unit=units.get(before.get("unit")),
                )
            )
        elif event.action == Action.HOLD:
            reason = mask_personal_data(after.get("hold_reason") or "")
            timeline.append(PublicEvent(at=event.at, kind="on_hold", reason=reason))
        elif event.action == Action.MERGE:
            into = after.get("merged_into")
            timeline.append(
                PublicEvent(at=event.at, kind="merged_into", other_case=case_number(into))
            )
        else:
            kind = {
                Action.RESUME: "resumed",
                Action.PUBLISH: "answered",
                Action.CLOSE: "closed",
                Action.REOPEN: "reopened",
            }[Action(event.action)]
            timeline.append(PublicEvent(at=event.at, kind=kind))
    timeline += [
        PublicEvent(at=e.at, kind="merged_here", other_case=case_number(e.case_id))
        for e in merged_here
    ]
    timeline.sort(key=lambda e: e.at)
    return timeline


PUBLIC_REPORTS_SHOWN = 50


def public_reports(case_id: int) -> list[CaseMessage]:
    """The other reports of the same matter joined or merged into a case, oldest first,
    with their channels: masked text only (`Message.public_text`), the ones their authors
    deleted on the platform left out. Follow-ups in the citizen's thread are not reports.
    At most PUBLIC_REPORTS_SHOWN; the case's `reports` says how many there are."""
    return list(
        CaseMessage.objects.filter(
            case_id=case_id, role=CaseMessage.Role.JOINED, message__withdrawn_at__isnull=True
        )
        .select_related("message__channel")
        .only(
            "case_id",
            "message__received_at",
            "message__public_text",
            "message__channel__name",
            "message__channel__name_en",
            "message__channel__code",
        )
        .order_by("message__received_at", "pk")[:PUBLIC_REPORTS_SHOWN]
    )


def merged_cases(case_id: int) -> list[PublicCase]:
    """The cases merged into this one, as the public saw them, oldest first."""
    return list(
        PublicCase.objects.filter(merged_into_id=case_id).order_by("case_id")[:_MERGED_HERE_SHOWN]
    )
