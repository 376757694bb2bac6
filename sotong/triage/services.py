"""Triage of stored messages: decide, record the decision, open cases for the confident
ones, leave the rest in the center's triage queue, and keep every human correction.

`triage_messages` is what the worker runs; it is safe to run twice on the same ids and
safe to kill at any line (everything for a batch commits together or not at all).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from sotong.cases.models import Case, CaseMessage
from sotong.cases.services import CaseOpening, continue_threads, join_cases, open_cases
from sotong.cases.workflow import OPEN_STATES
from sotong.channels.threads import thread_case, thread_followers
from sotong.directory.models import CaseType, Category, Officer, PlaceDirectory, TriageRule, Unit
from sotong.errors import InvalidInput, PermissionDenied
from sotong.inbox.models import Message, TriageState
from sotong.triage.duplicates import CaseText, DuplicateIndex
from sotong.triage.engine import Models, decide
from sotong.triage.location import Gazetteer
from sotong.triage.models import TriageCorrection, TriageDecision
from sotong.triage.registry import active_models
from sotong.triage.rules import (
    CategorySpec,
    DistrictSpec,
    RuleSet,
    TriageOutcome,
    build_ruleset,
)
from sotong.triage.urgency import UrgencyRules
from sotong.triage.urgency import load_rules as load_urgency_rules

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
    urgency: UrgencyRules | None = None
    models: Models = field(default_factory=Models)


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
    return Directory(
        rules,
        units,
        categories,
        case_types,
        time.monotonic(),
        urgency=load_urgency_rules(),
        models=active_models(),
    )


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
        outcomes = decide(
            [m.text for m in messages],
            directory.rules,
            urgency=directory.urgency,
            models=directory.models,
        )
        decisions = []
        openings = []
        for message, outcome in zip(messages, outcomes, strict=True):
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
        # A citizen's follow-up in a thread joins its case (sotong/channels/threads.py);
        # it is decided after the batch's own cases are open, so a follow-up that came
        # with its first message finds that message's case.
        followers = thread_followers(messages)
        follower_ids = {m.pk for m in followers}
        held = {o.message.pk: o for o in openings if o.message.pk in follower_ids}
        open_or_join([o for o in openings if o.message.pk not in held], decisions)
        unthreaded = []
        for message in followers:  # one by one: a follow-up may follow the one before
            case = thread_case(message)
            if case is not None:
                continue_threads([(message, case)])
            elif message.pk in held:
                unthreaded.append(held[message.pk])
        open_or_join(unthreaded, decisions)
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(
            triage_state=TriageState.DONE
        )
    return len(messages)


# --- Duplicates -------------------------------------------------------------------------------

# How long a worker keeps its duplicate index before reading the open cases again (cases
# closed or merged meanwhile drop out then; each candidate is also checked to be open).
DUPLICATE_INDEX_TTL_SECONDS = 600.0
DUPLICATE_WINDOW_DAYS = 7
_duplicates: tuple[DuplicateIndex, float] | None = None


def _opening_texts(cases: Iterable[Case]) -> list[CaseText]:
    links = CaseMessage.objects.filter(
        case__in=list(cases), role=CaseMessage.Role.OPENED
    ).select_related("message", "case__category")
    return [
        CaseText(
            link.case_id,
            link.message.text,
            link.case.district_name or None,
            link.case.category.code if link.case.category else None,
            link.case.opened_at,
        )
        for link in links
    ]


def duplicate_index() -> DuplicateIndex:
    """This worker's index of recent open cases, rebuilt from the database now and then."""
    global _duplicates
    if _duplicates is None or time.monotonic() - _duplicates[1] > DUPLICATE_INDEX_TTL_SECONDS:
        since = timezone.now() - timedelta(days=DUPLICATE_WINDOW_DAYS)
        recent = Case.objects.filter(status__in=OPEN_STATES, opened_at__gte=since)
        _duplicates = (DuplicateIndex.rebuild(_opening_texts(recent)), time.monotonic())
    return _duplicates[0]


def forget_duplicates() -> None:
    global _duplicates
    _duplicates = None


def open_or_join(openings: list[CaseOpening], decisions: list[TriageDecision]) -> None:
    """Open a case per relevant message, except a message that reports again what an open
    case (or an earlier message of the batch) reports: it joins that case instead."""
    index = duplicate_index()
    decision_of = {d.message_id: d for d in decisions}
    targets: list[Hashable | None] = []  # per opening: the case (or batch key) it joins
    for position, opening in enumerate(openings):
        category = opening.category.code if opening.category else None
        district = opening.district_name or None
        found = index.find(
            opening.message.text,
            district=district,
            category=category,
            at=opening.message.received_at,
            within_days=DUPLICATE_WINDOW_DAYS,
        )
        if found:
            targets.append(found[0].case_id)
            decision_of[opening.message.pk].reasons.append(f"중복 신고: {found[0].reason}")
            continue
        targets.append(None)
        index.add(
            ("batch", position),
            opening.message.text,
            district=district,
            category=category,
            opened_at=opening.message.received_at,
        )
    fresh = [o for o, target in zip(openings, targets, strict=True) if target is None]
    opened = open_cases(fresh)
    case_of_message = {
        link.message_id: link.case
        for link in CaseMessage.objects.filter(case__in=opened).select_related("case")
    }
    for position, target in enumerate(targets):
        if target is None:
            index.remove(("batch", position))
    index.add_many(_opening_texts(opened))
    if all(target is None for target in targets):
        return
    open_ids = set(
        Case.objects.filter(
            pk__in=[t for t in targets if isinstance(t, int)], status__in=OPEN_STATES
        ).values_list("pk", flat=True)
    )
    joins: list[tuple[Message, Case]] = []
    late: list[CaseOpening] = []
    for opening, target in zip(openings, targets, strict=True):
        if target is None:
            continue
        if isinstance(target, tuple):  # an earlier message of this batch
            case = case_of_message.get(openings[target[1]].message.pk)
        else:
            case = Case(pk=target) if target in open_ids else None
        if case is None:
            late.append(opening)  # the case was closed or merged meanwhile: a case of its own
        else:
            joins.append((opening.message, case))
    join_cases(joins)
    open_cases(late)
    TriageDecision.objects.bulk_update(
        [
            decision_of[o.message.pk]
            for o, t in zip(openings, targets, strict=True)
            if t is not None
        ],
        ["reasons"],
    )


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


def _record_correction(
    case: Case, field: str, before: str, after: str, actor: Officer | None
) -> None:
    """A correction made on the case page, kept on the message that opened the case."""
    link = case.case_messages.filter(role="opened").select_related("message__triage").first()
    if link is None:
        return
    TriageCorrection.objects.create(
        message=link.message,
        field=field,
        before=before,
        after=after,
        engine=getattr(getattr(link.message, "triage", None), "engine", ""),
        corrected_by=actor,
    )


def record_category_correction(
    case: Case, *, before: Category | None, after: Category, actor: Officer | None
) -> None:
    """A category corrected on the case page: a labelled example for retraining."""
    _record_correction(
        case, TriageCorrection.Field.CATEGORY, before.code if before else "", after.code, actor
    )


def record_unit_correction(
    case: Case, *, before_unit_id: int | None, unit: Unit, actor: Officer | None
) -> None:
    """A transfer marked "wrong unit" teaches triage the right owner of the opening message."""
    before = ""
    if before_unit_id is not None:
        before = Unit.objects.filter(pk=before_unit_id).values_list("code", flat=True).first() or ""
    _record_correction(case, TriageCorrection.Field.UNIT, before, unit.code, actor)
