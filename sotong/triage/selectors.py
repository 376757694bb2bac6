"""Reads of triage decisions for the pages: the center's triage queue, and the decision
that brought a case, with its alternatives resolved to categories and their owners."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet

from sotong.cases.models import Case, CaseMessage
from sotong.directory.models import Category
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


def as_percent(share: float) -> int:
    return round(share * 100)


@dataclass(frozen=True)
class Suggestion:
    """Another category triage found likely, as the center sees it: name, owner, share.

    `category` is None for a code the directory no longer has; the page shows the code.
    """

    code: str
    probability: float
    category: Category | None

    @property
    def name(self) -> str:
        return self.category.name if self.category else self.code

    @property
    def owner_name(self) -> str:
        return self.category.owner.name if self.category else ""

    @property
    def percent(self) -> int:
        return as_percent(self.probability)

    @property
    def choosable(self) -> bool:
        """Whether the center can open a case in it with one click (the category is in use)."""
        return self.category is not None and self.category.active


@dataclass(frozen=True)
class ExplainedDecision:
    """A triage decision with its alternatives resolved, for the pages that show why."""

    decision: TriageDecision
    suggestions: tuple[Suggestion, ...]

    @property
    def confidence_percent(self) -> int:
        return as_percent(self.decision.confidence)


def alternative_pairs(alternatives: object) -> list[tuple[str, float]]:
    """The stored `[[code, probability], …]`, skipping any entry not of that shape."""
    if not isinstance(alternatives, list):
        return []
    pairs = []
    for entry in alternatives:
        if not (isinstance(entry, list | tuple) and len(entry) == 2):
            continue
        code, probability = entry
        numeric = isinstance(probability, int | float) and not isinstance(probability, bool)
        if isinstance(code, str) and numeric:
            pairs.append((code, float(probability)))
    return pairs


def explain(decisions: Iterable[TriageDecision]) -> list[ExplainedDecision]:
    """The decisions with their alternatives' categories and owners, read in one query."""
    decisions = list(decisions)
    pairs = {d.pk: alternative_pairs(d.alternatives) for d in decisions}
    codes = {code for found in pairs.values() for code, _ in found}
    categories = (
        {c.code: c for c in Category.objects.filter(code__in=codes).select_related("owner")}
        if codes
        else {}
    )
    return [
        ExplainedDecision(
            d, tuple(Suggestion(code, p, categories.get(code)) for code, p in pairs[d.pk])
        )
        for d in decisions
    ]


def case_decision(case: Case) -> ExplainedDecision | None:
    """Why the case came where it is: the triage decision on the message that opened it."""
    decision = (
        TriageDecision.objects.filter(
            message__case_link__case=case, message__case_link__role=CaseMessage.Role.OPENED
        )
        .select_related("category__owner", "unit", "reviewed_by")
        .first()
    )
    return explain([decision])[0] if decision else None
