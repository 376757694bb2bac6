"""Triage of stored messages: decide, record the decision, open cases for the confident
ones, leave the rest in the center's triage queue, and keep every human correction.

`triage_messages` is what the worker runs; it is safe to run twice on the same ids and
safe to kill at any line (everything for a batch commits together or not at all).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from sotong.cases.models import Case
from sotong.cases.services import CaseOpening, open_cases
from sotong.directory.models import CaseType, Category, Officer, PlaceDirectory, TriageRule, Unit
from sotong.errors import InvalidInput, PermissionDenied
from sotong.inbox.models import Message, TriageState
from sotong.triage.location import Gazetteer
from sotong.triage.models import TriageCorrection, TriageDecision
from sotong.triage.rules import (
    CategorySpec,
    DistrictSpec,
    RuleSet,
    TriageOutcome,
    build_ruleset,
    triage_text,
)

# A rule set is rebuilt at most this often in a long-running worker, so an administrator's
# edit in the admin takes effect within a minute without a restart.
RULESET_TTL_SECONDS = 60.0


@dataclass
class Directory:
    """The compiled rules with the directory rows their codes refer to."""

    rules: RuleSet
    units: dict[str, Unit]
    categories: dict[str, Category]
    case_types: dict[str, CaseType]
    loaded_at: float


_cache: Directory | None = None


def load_rules() -> Directory:
    units = {u.code: u for u in Unit.objects.filter(active=True)}
    case_types = {t.code: t for t in CaseType.objects.all()}
    categories = {
        c.code: c for c in Category.objects.filter(active=True).select_related("owner", "case_type")
    }
    keywords: dict[int | None, list[tuple[str, float]]] = {}
    patterns: dict[int | None, list[tuple[str, float]]] = {}
    for rule in TriageRule.objects.all():
        target = keywords if rule.kind == TriageRule.Kind.KEYWORD else patterns
        target.setdefault(rule.category_id, []).append((rule.text, rule.weight))
    specs = [
        CategorySpec(
            code=c.code,
            owner_unit=c.owner.code,
            district_matter=c.district_matter,
            case_type=c.case_type.code,
            keywords=tuple(keywords.get(c.pk, [])),
            patterns=tuple(patterns.get(c.pk, [])),
        )
        for c in categories.values()
    ]
    districts = [
        DistrictSpec(unit=u.code, names=tuple([u.district_name, *u.aliases]))
        for u in units.values()
        if u.kind == Unit.Kind.DISTRICT and u.district_name
    ]
    places = PlaceDirectory.objects.order_by("-loaded_at").first()
    rules = build_ruleset(
        specs,
        request_cues=patterns.get(None, []) + keywords.get(None, []),
        districts=districts,
        urgent_case_types=[t.code for t in case_types.values() if t.urgent],
        gazetteer=Gazetteer.from_dict(places.data) if places else None,
    )
    return Directory(rules, units, categories, case_types, time.monotonic())


def current_rules() -> Directory:
    global _cache
    if _cache is None or time.monotonic() - _cache.loaded_at > RULESET_TTL_SECONDS:
        _cache = load_rules()
    return _cache


def forget_rules() -> None:
    """Drop the cached rule set (after a directory load or an admin edit)."""
    global _cache
    _cache = None


def _review_for(outcome: TriageOutcome) -> str:
    if outcome.relevant is None:
        return TriageDecision.Review.WAITING
    if outcome.relevant and outcome.unit is None:
        return TriageDecision.Review.WAITING
    if outcome.confidence >= settings.SOTONG_AUTO_ROUTE_CONFIDENCE:
        return TriageDecision.Review.AUTOMATIC
    return TriageDecision.Review.WAITING


def triage_messages(message_ids: Sequence[int]) -> int:
    """Triage the given messages that still wait for it; returns how many were triaged."""
    directory = current_rules()
    default_type = directory.case_types.get("request") or next(iter(directory.case_types.values()))
    with transaction.atomic():
        pending = Message.objects.filter(pk__in=list(message_ids), triage_state=TriageState.PENDING)
        if connection.features.has_select_for_update_skip_locked:
            # Two workers given the same ids: the second skips what the first holds.
            pending = pending.select_for_update(skip_locked=True, of=("self",))
        messages = list(pending.order_by("pk"))
        if not messages:
            return 0
        decisions = []
        openings = []
        for message in messages:
            outcome = triage_text(message.text, directory.rules)
            review = _review_for(outcome)
            unit = directory.units.get(outcome.unit) if outcome.unit else None
            category = directory.categories.get(outcome.category) if outcome.category else None
            case_type = directory.case_types.get(outcome.case_type) if outcome.case_type else None
            decisions.append(
                TriageDecision(
                    message=message,
                    relevant=outcome.relevant,
                    category=category,
                    unit=unit,
                    case_type=case_type,
                    district_name=outcome.district or "",
                    urgent=outcome.urgent,
                    confidence=outcome.confidence,
                    reasons=list(outcome.reasons),
                    alternatives=[list(a) for a in outcome.alternatives],
                    location=outcome.location,
                    engine=outcome.engine,
                    review=review,
                )
            )
            if outcome.relevant and review == TriageDecision.Review.AUTOMATIC:
                openings.append(
                    CaseOpening(
                        message=message,
                        case_type=case_type or default_type,
                        category=category,
                        unit=unit,
                        district_name=outcome.district or "",
                        urgent=outcome.urgent,
                    )
                )
        TriageDecision.objects.bulk_create(decisions)
        open_cases(openings)
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(
            triage_state=TriageState.DONE
        )
    return len(messages)


def triage_backlog(older_than_seconds: float = 30.0, batch: int = 500) -> int:
    """Triage messages whose job was lost (broker down, worker killed). Run periodically."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    done = 0
    while True:
        ids = list(
            Message.objects.filter(triage_state=TriageState.PENDING, received_at__lte=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return done
        count = triage_messages(ids)
        if count == 0:
            return done  # another worker holds them
        done += count


# --- The center's triage queue -----------------------------------------------------------


def _require_center(actor: Officer) -> None:
    if not actor.sees_all_units:
        raise PermissionDenied("only the center reviews triage")


def _label(value: object) -> str:
    """A decision's value as a correction stores it: nothing is "", a boolean is true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _correct(
    decision: TriageDecision, field: str, before: object, after: object, actor: Officer
) -> None:
    if _label(before) != _label(after):
        TriageCorrection.objects.create(
            message=decision.message,
            field=field,
            before=_label(before),
            after=_label(after),
            engine=decision.engine,
            corrected_by=actor,
        )


@transaction.atomic
def review_decision(
    decision: TriageDecision,
    *,
    actor: Officer,
    relevant: bool,
    category: Category | None = None,
    unit: Unit | None = None,
) -> Case | None:
    """The center confirms or corrects a decision. A relevant message opens its case,
    routed to `unit`; every change is kept as a correction."""
    _require_center(actor)
    decision = (
        TriageDecision.objects.select_for_update().select_related("message").get(pk=decision.pk)
    )
    if decision.review == TriageDecision.Review.REVIEWED or hasattr(decision.message, "case_link"):
        raise InvalidInput("this message was already reviewed")
    if relevant and unit is None:
        raise InvalidInput("choose the unit that owns the matter", field="unit")
    _correct(decision, TriageCorrection.Field.RELEVANT, decision.relevant, relevant, actor)
    if relevant:
        _correct(
            decision,
            TriageCorrection.Field.CATEGORY,
            decision.category.code if decision.category else "",
            category.code if category else "",
            actor,
        )
        _correct(
            decision,
            TriageCorrection.Field.UNIT,
            decision.unit.code if decision.unit else "",
            unit.code if unit else "",
            actor,
        )
    decision.relevant = relevant
    decision.category = category if relevant else decision.category
    decision.unit = unit if relevant else decision.unit
    decision.review = TriageDecision.Review.REVIEWED
    decision.reviewed_by = actor
    decision.reviewed_at = timezone.now()
    decision.save()
    if not relevant:
        return None
    case_type = (category.case_type if category else None) or decision.case_type
    if case_type is None:
        case_type = CaseType.objects.get(code="request")
    cases = open_cases(
        [
            CaseOpening(
                message=decision.message,
                case_type=case_type,
                category=category,
                unit=unit,
                district_name=decision.district_name,
                urgent=case_type.urgent,
            )
        ],
        actor=actor,
        note="triage queue",
    )
    return cases[0] if cases else None


def record_unit_correction(
    case: Case, *, before_unit_id: int | None, unit: Unit, actor: Officer | None
) -> None:
    """A transfer marked "wrong unit" teaches triage the right owner of the opening message."""
    link = case.case_messages.filter(role="opened").select_related("message").first()
    if link is None:
        return
    before = ""
    if before_unit_id is not None:
        before = Unit.objects.filter(pk=before_unit_id).values_list("code", flat=True).first() or ""
    TriageCorrection.objects.create(
        message=link.message,
        field=TriageCorrection.Field.UNIT,
        before=before,
        after=unit.code,
        engine=getattr(getattr(link.message, "triage", None), "engine", ""),
        corrected_by=actor,
    )
