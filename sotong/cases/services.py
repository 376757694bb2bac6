"""Every state change of a case, one function each (open, assign, answer, approve, publish,
close, hold, resume, transfer, merge, split, reopen).

Each checks permission and the transition, writes in one transaction, records the audit
event and queues follow-up work. Pages, the API, jobs and commands all call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sotong.cases.guideline import GuidelineReport, check_answer
from sotong.cases.models import Answer, AuditEvent, Case, CaseMessage, Notification
from sotong.cases.permissions import check_assignable, check_permission
from sotong.cases.workflow import ANSWERED_STATES, Action, CaseStatus, next_status
from sotong.directory.models import CaseType, Category, Officer, Unit
from sotong.errors import GuidelineIncomplete, InvalidInput
from sotong.inbox.models import Message
from sotong.jobs.queue import enqueue
from sotong.lib.business_days import DeadlineUnit, compute_deadline
from sotong.lib.masking import mask_personal_data
from sotong.portal.projection import refresh_cases

SYSTEM = "system"
# The channels app turns a published answer into reply deliveries. A job named by its path
# rather than a signal: the follow-up of a state change is queued by its service, in its
# transaction, and cases need not know about connectors.
DELIVER_ANSWER_JOB = "sotong.channels.outbox.deliver_answer"
NOTIFY_EMAIL_JOB = "sotong.cases.jobs.email_notifications"
RECEIPTS_JOB = "sotong.channels.receipts.deliver_receipts"


def actor_label(actor: Officer | None, fallback: str = SYSTEM) -> str:
    return actor.get_username() if actor is not None else fallback


def compute_case_deadline(case_type: CaseType, received_at: datetime) -> tuple[datetime, datetime]:
    """The processing deadline (처리기한) of a case of this type received at that moment,
    and when to remind: once the configured share of the time has passed."""
    deadline = compute_deadline(
        received_at, case_type.deadline_amount, DeadlineUnit(case_type.deadline_unit)
    )
    return deadline, received_at + (deadline - received_at) * settings.SOTONG_REMIND_AT_FRACTION


def snapshot(case: Case) -> dict[str, Any]:
    """The parts of a case the audit trail records before and after each action."""
    return {
        "status": case.status,
        "unit": case.unit_id,
        "officer": case.officer_id,
        "category": case.category_id,
        "case_type": case.case_type_id,
        "deadline_at": timezone.localtime(case.deadline_at).isoformat()
        if case.deadline_at
        else None,
        "merged_into": case.merged_into_id,
        "hold_reason": case.hold_reason,
    }


def _audit(
    case: Case,
    action: str,
    actor: Officer | None,
    before: dict[str, Any],
    *,
    note: str = "",
    label: str | None = None,
) -> AuditEvent:
    event = AuditEvent.objects.create(
        case=case,
        action=action,
        actor=actor,
        actor_label=label or actor_label(actor),
        at=timezone.now(),
        before=before,
        after=snapshot(case),
        note=note,
    )
    # Every change to a case is audited here, so here the public view follows it.
    refresh_cases([case.pk])
    return event


def record_case_event(case: Case, action: str, actor: Officer | None, *, note: str = "") -> None:
    """Audit an action on something that hangs off the case (a reply delivery), for the
    services of other apps; the case itself is unchanged, so before and after are equal."""
    _audit(case, action, actor, snapshot(case), note=note)


def _locked(case: Case) -> Case:
    """The case re-read under a row lock, so two people acting at once are serialised."""
    # of=self: PostgreSQL cannot lock the nullable side of the outer join to the unit.
    locked = Case.objects.select_for_update(of=("self",))
    return locked.select_related("unit", "case_type").get(pk=case.pk)


def notify(recipients: Sequence[Officer], cases: Sequence[Case], kind: str) -> None:
    """Give each recipient a notice of `kind` for each case.

    One row per (recipient, case, kind): a repeated notice (the case came back after a
    reopening, a reassignment) raises the existing row again, unread and not yet e-mailed.
    """
    if not recipients or not cases:
        return
    Notification.objects.bulk_create(
        [Notification(recipient=r, case=c, kind=kind) for c in cases for r in recipients],
        ignore_conflicts=True,
    )
    Notification.objects.filter(
        case__in=list(cases), recipient__in=list(recipients), kind=kind
    ).update(read_at=None, emailed_at=None)


def _notify(recipients: Sequence[Officer], case: Case, kind: str) -> None:
    notify(recipients, [case], kind)


def mark_notifications_read(officer: Officer, case: Case) -> None:
    """The officer has opened the case: its notices to them are read."""
    Notification.objects.filter(recipient=officer, case=case, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def unit_staff(unit_id: int | None, roles: Sequence[str] | None = None) -> list[Officer]:
    if unit_id is None:
        return []
    staff = Officer.objects.filter(unit_id=unit_id, is_active=True)
    if roles is not None:
        staff = staff.filter(role__in=roles)
    return list(staff)


def center_staff() -> list[Officer]:
    return list(Officer.objects.filter(role=Officer.Role.CENTER, is_active=True))


# --- Opening cases -------------------------------------------------------------------


@dataclass(frozen=True)
class CaseOpening:
    """What triage (or a person in the triage queue) decided for a relevant message."""

    message: Message
    case_type: CaseType
    category: Category | None
    unit: Unit | None
    district_name: str = ""
    urgent: bool = False


def open_cases(
    openings: Sequence[CaseOpening], *, actor: Officer | None = None, note: str = ""
) -> list[Case]:
    """Open one case per message, routed to its unit where one is known.

    Call inside a transaction. A message that already belongs to a case is skipped, so a
    triage job that runs twice opens nothing twice (the one-to-one link also refuses it).
    """
    if not openings:
        return []
    taken = set(
        CaseMessage.objects.filter(message__in=[o.message for o in openings]).values_list(
            "message_id", flat=True
        )
    )
    openings = [o for o in openings if o.message.pk not in taken]
    now = timezone.now()
    cases = [
        Case(
            status=CaseStatus.UNIT if o.unit else CaseStatus.NEW,
            case_type=o.case_type,
            category=o.category,
            unit=o.unit,
            district_name=o.district_name,
            urgent=o.urgent,
            opened_at=o.message.received_at,
            deadline_at=deadline,
            remind_at=remind_at,
        )
        for o in openings
        for deadline, remind_at in [compute_case_deadline(o.case_type, o.message.received_at)]
    ]
    Case.objects.bulk_create(cases)
    CaseMessage.objects.bulk_create(
        [
            CaseMessage(case=c, message=o.message, role=CaseMessage.Role.OPENED)
            for c, o in zip(cases, openings, strict=True)
        ]
    )
    label = actor_label(actor, "triage")
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                case=c,
                action=Action.OPEN,
                actor=actor,
                actor_label=label,
                at=now,
                before={},
                after=snapshot(c),
                note=note,
            )
            for c in cases
        ]
    )
    refresh_cases([c.pk for c in cases])
    if cases:
        # The channel's receipt (접수 안내) for accounts that send one; after commit.
        enqueue(RECEIPTS_JOB, [c.pk for c in cases])
    urgent = [c for c in cases if c.urgent and c.unit_id]
    if urgent:
        # Staff read once per batch, not once per urgent case.
        center = center_staff()
        staff: dict[int, list[Officer]] = {}
        for officer in Officer.objects.filter(
            unit_id__in={c.unit_id for c in urgent}, is_active=True
        ):
            staff.setdefault(officer.unit_id, []).append(officer)  # type: ignore[arg-type]
        Notification.objects.bulk_create(
            [
                Notification(recipient=r, case=case, kind=Notification.Kind.URGENT)
                for case in urgent
                for r in staff.get(case.unit_id, []) + center  # type: ignore[arg-type]
            ],
            ignore_conflicts=True,
        )
    return cases


def _link_joined(pairs: Sequence[tuple[Message, Case]], role: str, note: str) -> None:
    """Link each message to its case with `role`, and audit each link as a join by triage."""
    CaseMessage.objects.bulk_create(
        [CaseMessage(case=case, message=message, role=role) for message, case in pairs],
        ignore_conflicts=True,
    )
    now = timezone.now()
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                case_id=case.pk,
                action=Action.JOIN,
                actor=None,
                actor_label="triage",
                at=now,
                before={},
                after={"message": message.pk},
                note=note,
            )
            for message, case in pairs
        ]
    )
    refresh_cases([case.pk for _, case in pairs])


def join_cases(joins: Sequence[tuple[Message, Case]]) -> None:
    """Link messages that report again what an open case reports (a retweet, a copy, the
    same pothole from another citizen) to that case. Call inside a transaction."""
    if joins:
        _link_joined(joins, CaseMessage.Role.JOINED, "same report (duplicate)")


def continue_threads(follow_ups: Sequence[tuple[Message, Case]]) -> None:
    """Link each citizen's follow-up to the case of its thread (role `reply`). A follow-up
    to an answered case leaves its state alone but is shown to the owning officer (or the
    unit's staff, or the center's): they decide whether it reopens the case. Call inside a
    transaction."""
    if not follow_ups:
        return
    _link_joined(follow_ups, CaseMessage.Role.REPLY, "follow-up in the thread")
    answered = {case.pk: case for _, case in follow_ups if case.status in ANSWERED_STATES}
    for case in answered.values():
        recipients = [case.officer] if case.officer else unit_staff(case.unit_id) or center_staff()
        _notify(recipients, case, Notification.Kind.REPLY)
    if answered:
        enqueue(NOTIFY_EMAIL_JOB, list(answered), Notification.Kind.REPLY)


@transaction.atomic
def split_message(case: Case, message: Message, *, actor: Officer | None) -> Case:
    """Undo a wrong link: a message that joined a case gets a case of its own, with the same
    unit, category and type (the center corrects them from there)."""
    case = _locked(case)
    check_permission(actor, Action.SPLIT, case)
    next_status(Action.SPLIT, case.status)
    link = CaseMessage.objects.filter(case=case, message=message).first()
    if link is None or link.role != CaseMessage.Role.JOINED:
        raise InvalidInput("only a message that joined this case can be split off", field="message")
    link.delete()
    [new] = open_cases(
        [
            CaseOpening(
                message=message,
                case_type=case.case_type,
                category=case.category,
                unit=case.unit,
                district_name=case.district_name,
                urgent=case.urgent,
            )
        ],
        actor=actor,
        note=f"split from {case.number}",
    )
    before = snapshot(case)
    _audit(
        case, Action.SPLIT, actor, before, note=f"message {message.pk} split off into {new.number}"
    )
    return new


# --- Routing and assignment ------------------------------------------------------------


@transaction.atomic
def assign_unit(case: Case, unit: Unit, *, actor: Officer | None, note: str = "") -> Case:
    """The center routes a case to the unit that owns it."""
    case = _locked(case)
    check_permission(actor, Action.ASSIGN_UNIT, case)
    before = snapshot(case)
    case.status = next_status(Action.ASSIGN_UNIT, case.status)
    case.unit = unit
    case.officer = None
    case.save(update_fields=["status", "unit", "officer"])
    _audit(case, Action.ASSIGN_UNIT, actor, before, note=note)
    if case.urgent:
        _notify(unit_staff(unit.pk), case, Notification.Kind.URGENT)
    return case


@transaction.atomic
def assign_officer(case: Case, officer: Officer, *, actor: Officer | None) -> Case:
    """Give the case to an officer of its unit (an officer may take it themselves)."""
    case = _locked(case)
    check_permission(actor, Action.ASSIGN_OFFICER, case)
    check_assignable(actor, case, officer)
    before = snapshot(case)
    case.status = next_status(Action.ASSIGN_OFFICER, case.status)
    case.officer = officer
    case.save(update_fields=["status", "officer"])
    _audit(case, Action.ASSIGN_OFFICER, actor, before)
    if actor is None or actor.pk != officer.pk:
        _notify([officer], case, Notification.Kind.ASSIGNED)
    return case


@transaction.atomic
def transfer_case(
    case: Case, unit: Unit, *, reason: str, actor: Officer | None, wrong_unit: bool = True
) -> Case:
    """이관: hand the case to another unit (a district office included), with a reason.

    `wrong_unit` marks routing that was wrong, which triage keeps as a correction.
    """
    if not reason.strip():
        raise InvalidInput("a transfer needs a reason", field="reason")
    case = _locked(case)
    check_permission(actor, Action.TRANSFER, case)
    if unit.pk == case.unit_id:
        raise InvalidInput("the case is already with that unit", field="unit")
    before = snapshot(case)
    case.status = next_status(Action.TRANSFER, case.status)
    case.unit = unit
    case.officer = None
    case.hold_reason = ""
    case.save(update_fields=["status", "unit", "officer", "hold_reason"])
    _audit(case, Action.TRANSFER, actor, before, note=reason)
    if wrong_unit:
        from sotong.triage.services import record_unit_correction

        record_unit_correction(case, before_unit_id=before["unit"], unit=unit, actor=actor)
    _notify(
        unit_staff(unit.pk, [Officer.Role.SUPERVISOR]) or unit_staff(unit.pk),
        case,
        Notification.Kind.ASSIGNED,
    )
    return case


@transaction.atomic
def recategorize_case(case: Case, category: Category, *, actor: Officer | None) -> Case:
    """Correct the category triage gave the case; triage keeps it as a training example.

    The unit stays (routing is changed by a transfer); the deadline stays (it was promised).
    """
    case = _locked(case)
    check_permission(actor, Action.RECATEGORIZE, case)
    if category.pk == case.category_id:
        raise InvalidInput("the case already has that category", field="category")
    before = snapshot(case)
    next_status(Action.RECATEGORIZE, case.status)
    previous = case.category
    case.category = category
    case.save(update_fields=["category"])
    _audit(case, Action.RECATEGORIZE, actor, before)
    from sotong.triage.services import record_category_correction

    record_category_correction(case, before=previous, after=category, actor=actor)
    return case


# --- Answering -------------------------------------------------------------------------


def requires_approval(case: Case) -> bool:
    return bool(case.unit and case.unit.requires_approval)


def public_numbers_for(case: Case) -> list[str]:
    """Phone numbers an answer may show: its unit's and the answering officers' office lines."""
    if case.unit_id is None:
        return []
    numbers = [u.phone for u in Unit.objects.filter(pk=case.unit_id) if u.phone]
    numbers += [o.phone for o in Officer.objects.filter(unit_id=case.unit_id) if o.phone]
    return numbers


def check_case_answer(case: Case, text: str) -> GuidelineReport:
    """The guideline check of a draft, as the answer form shows it live."""
    return check_answer(text, public_numbers=public_numbers_for(case))


def current_answer(case: Case) -> Answer | None:
    return case.answers.order_by("-created_at", "-pk").first()


@transaction.atomic
def draft_answer(case: Case, text: str, *, actor: Officer) -> Answer:
    """Write or rewrite the answer. An officer of the unit who drafts takes the case."""
    text = text.strip()
    if not text:
        raise InvalidInput("the answer is empty", field="text")
    case = _locked(case)
    check_permission(actor, Action.DRAFT, case)
    before = snapshot(case)
    case.status = next_status(Action.DRAFT, case.status)
    if case.officer_id is None and actor.unit_id == case.unit_id:
        case.officer = actor
    case.save(update_fields=["status", "officer"])
    report = check_case_answer(case, text)
    answer = current_answer(case)
    if answer is None or answer.published_at is not None:
        answer = Answer(case=case, author=actor)
    answer.text = text
    answer.author = actor
    answer.guideline_report = report.as_dict()
    answer.approved_by = None
    answer.approved_at = None
    answer.save()
    _audit(
        case,
        Action.DRAFT,
        actor,
        before,
        note=f"missing: {', '.join(report.missing)}" if report.missing else "",
    )
    if requires_approval(case):
        _notify(
            unit_staff(case.unit_id, [Officer.Role.SUPERVISOR]), case, Notification.Kind.APPROVAL
        )
    return answer


def _answer_for_action(case: Case) -> Answer:
    answer = current_answer(case)
    if answer is None or answer.published_at is not None:
        raise InvalidInput("the case has no draft answer")
    return answer


@transaction.atomic
def approve_answer(case: Case, *, actor: Officer) -> Answer:
    """A supervisor approves the drafted answer (where the unit requires it)."""
    case = _locked(case)
    check_permission(actor, Action.APPROVE, case)
    answer = _answer_for_action(case)
    before = snapshot(case)
    case.status = next_status(Action.APPROVE, case.status)
    case.save(update_fields=["status"])
    answer.approved_by = actor
    answer.approved_at = timezone.now()
    answer.save(update_fields=["approved_by", "approved_at"])
    _audit(case, Action.APPROVE, actor, before)
    return answer


@transaction.atomic
def publish_answer(case: Case, *, actor: Officer | None, override_reason: str = "") -> Answer:
    """Publish the answer: it becomes public (masked) and goes back to the citizen.

    An answer missing required guideline elements is published only with an override
    reason, which the audit trail keeps.
    """
    case = _locked(case)
    check_permission(actor, Action.PUBLISH, case)
    answer = _answer_for_action(case)
    status = next_status(Action.PUBLISH, case.status, requires_approval=requires_approval(case))
    numbers = public_numbers_for(case)
    report = check_answer(answer.text, public_numbers=numbers)
    override_reason = override_reason.strip()
    if report.missing and not override_reason:
        raise GuidelineIncomplete(
            "the answer misses required elements of the guideline; add them or give a reason",
            missing=list(report.missing),
        )
    before = snapshot(case)
    now = timezone.now()
    case.status = status
    case.answered_at = now
    case.save(update_fields=["status", "answered_at"])
    answer.guideline_report = report.as_dict()
    answer.override_reason = override_reason if report.missing else ""
    answer.public_text = mask_personal_data(answer.text, allow=numbers)
    answer.published_at = now
    answer.save(
        update_fields=["guideline_report", "override_reason", "public_text", "published_at"]
    )
    note = (
        f"guideline override: {override_reason} (missing: {', '.join(report.missing)})"
        if report.missing
        else ""
    )
    _audit(case, Action.PUBLISH, actor, before, note=note)
    enqueue(DELIVER_ANSWER_JOB, answer.pk)
    return answer


@transaction.atomic
def close_case(case: Case, *, actor: Officer | None, note: str = "") -> Case:
    case = _locked(case)
    check_permission(actor, Action.CLOSE, case)
    before = snapshot(case)
    case.status = next_status(Action.CLOSE, case.status)
    case.closed_at = timezone.now()
    case.save(update_fields=["status", "closed_at"])
    _audit(case, Action.CLOSE, actor, before, note=note)
    return case


# --- Hold, merge, reopen ---------------------------------------------------------------


@transaction.atomic
def hold_case(case: Case, *, reason: str, actor: Officer | None) -> Case:
    """보류: put the case on hold with a reason the public sees."""
    if not reason.strip():
        raise InvalidInput("a hold needs a public reason", field="reason")
    case = _locked(case)
    check_permission(actor, Action.HOLD, case)
    before = snapshot(case)
    case.status = next_status(Action.HOLD, case.status)
    case.hold_reason = reason.strip()
    case.save(update_fields=["status", "hold_reason"])
    _audit(case, Action.HOLD, actor, before, note=reason)
    return case


@transaction.atomic
def resume_case(case: Case, *, actor: Officer | None, note: str = "") -> Case:
    case = _locked(case)
    check_permission(actor, Action.RESUME, case)
    before = snapshot(case)
    case.status = next_status(Action.RESUME, case.status, has_officer=case.officer_id is not None)
    case.hold_reason = ""
    case.save(update_fields=["status", "hold_reason"])
    _audit(case, Action.RESUME, actor, before, note=note)
    return case


@transaction.atomic
def merge_case(case: Case, into: Case, *, actor: Officer | None, note: str = "") -> Case:
    """Merge a case into another about the same matter; its messages move along."""
    if case.pk == into.pk:
        raise InvalidInput("a case cannot be merged into itself")
    case = _locked(case)
    into = _locked(into)
    check_permission(actor, Action.MERGE, case)
    check_permission(actor, Action.JOIN, into)
    if into.status == CaseStatus.MERGED:
        raise InvalidInput("the target case was itself merged; merge into its target")
    before = snapshot(case)
    case.status = next_status(Action.MERGE, case.status)
    case.merged_into = into
    case.save(update_fields=["status", "merged_into"])
    into_before = snapshot(into)
    next_status(Action.JOIN, into.status)
    CaseMessage.objects.filter(case=case).update(case=into, role=CaseMessage.Role.JOINED)
    _audit(case, Action.MERGE, actor, before, note=note or f"merged into {into.number}")
    _audit(into, Action.JOIN, actor, into_before, note=f"{case.number} merged into this case")
    return case


@transaction.atomic
def reopen_case(case: Case, *, reason: str, actor: Officer | None) -> Case:
    """Reopen an answered or closed case (the citizen wrote back, the fix did not hold)."""
    if not reason.strip():
        raise InvalidInput("reopening needs a reason", field="reason")
    case = _locked(case)
    check_permission(actor, Action.REOPEN, case)
    before = snapshot(case)
    case.status = next_status(Action.REOPEN, case.status, has_officer=case.officer_id is not None)
    case.closed_at = None
    case.answered_at = None
    case.reminded_at = None
    case.escalated_at = None
    case.deadline_at, case.remind_at = compute_case_deadline(case.case_type, timezone.now())
    case.save(
        update_fields=[
            "status",
            "closed_at",
            "answered_at",
            "reminded_at",
            "escalated_at",
            "deadline_at",
            "remind_at",
        ]
    )
    _audit(case, Action.REOPEN, actor, before, note=reason)
    return case
