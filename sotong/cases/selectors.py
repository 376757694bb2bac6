"""Reads of cases that pages and the API share: what an officer may see, a unit's inbox,
the timeline, and what the public may see. Related rows are fetched with the case."""

from __future__ import annotations

from django.db.models import Case as When_
from django.db.models import IntegerField, Prefetch, QuerySet, Value, When

from sotong.cases.models import (
    Answer,
    AuditEvent,
    Case,
    CaseMessage,
    Notification,
    parse_case_number,
)
from sotong.cases.permissions import can_view
from sotong.cases.workflow import OPEN_STATES, CaseStatus
from sotong.directory.models import Officer
from sotong.errors import NotFound

PUBLIC_STATES = (CaseStatus.PUBLISHED, CaseStatus.CLOSED)


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


# --- Public ----------------------------------------------------------------------------


def public_cases() -> QuerySet[Case]:
    """Answered cases, newest answer first, with what the public page shows."""
    return (
        _with_related(Case.objects.filter(status__in=PUBLIC_STATES))
        .prefetch_related(
            Prefetch(
                "case_messages",
                queryset=CaseMessage.objects.filter(role=CaseMessage.Role.OPENED)
                .select_related("message__channel")
                .order_by("pk"),
            )
        )
        .order_by("-answered_at", "-pk")
    )


def get_public_case(number: str) -> Case:
    pk = parse_case_number(number)
    case = public_cases().filter(pk=pk).first() if pk is not None else None
    if case is None:
        raise NotFound("no published case with that number")
    return case


def public_case_messages(case: Case) -> list[CaseMessage]:
    """The messages a public case page shows: the opening one always (the page replaces
    its text with a notice if the citizen deleted it on the platform), the joined ones
    only while not deleted there."""
    return list(
        CaseMessage.objects.filter(case=case)
        .exclude(role=CaseMessage.Role.JOINED, message__withdrawn_at__isnull=False)
        .select_related("message__channel")
        .order_by("message__received_at", "pk")
    )


def published_answer(case: Case) -> Answer | None:
    return case.answers.filter(published_at__isnull=False).order_by("-published_at").first()
