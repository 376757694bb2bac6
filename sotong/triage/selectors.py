"""Reads for the center's triage queue."""

from __future__ import annotations

from django.db.models import QuerySet

from sotong.errors import NotFound
from sotong.triage.models import TriageDecision


def waiting_decisions() -> QuerySet[TriageDecision]:
    """Decisions waiting for a person, oldest message first (its deadline runs already)."""
    return (
        TriageDecision.objects.filter(review=TriageDecision.Review.WAITING)
        .select_related("message__channel", "message__account", "category", "unit")
        .order_by("message__received_at", "pk")
    )


def get_decision(pk: int) -> TriageDecision:
    decision = TriageDecision.objects.select_related("message").filter(pk=pk).first()
    if decision is None:
        raise NotFound("no such triage decision")
    return decision
