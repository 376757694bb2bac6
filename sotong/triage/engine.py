"""The triage engine: one decision per text from the rule layer, the urgency detector and,
where a city has them, the trained relevance and routing models.

Rules are explicit and edited by the city, so a category they find overrides the model's;
the models decide what the rules cannot (no keyword, a casual voice) and give calibrated
confidence and alternatives. Pure over plain data: the caller supplies rules and models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from sotong.lib.korean_text import fold_width
from sotong.triage.rules import RuleSet, TriageOutcome, owner_for, triage_text
from sotong.triage.urgency import UrgencyRules, detect_urgency

# The case type of an ordinary request: what a hazard category falls back to when the text
# shows the hazard is over. (The directory's case types; "request" is the shipped code.)
DEFAULT_CASE_TYPE = "request"


class Predictor(Protocol):
    """What the engine needs of a trained model (see sotong.triage.classifier)."""

    version: str

    def rank(self, texts: Sequence[str], k: int) -> list[list[tuple[str, float]]]: ...

    def explain(self, text: str, label: str, n: int) -> list[tuple[str, float]]: ...


# How many of the terms that drove a model's decision a reason names.
EXPLAINED_TERMS = 4


def _terms_reason(model: Predictor, text: str, label: str) -> tuple[str, ...]:
    """ "근거: 가로등, 고장, «꺼져»": the terms of the text that pushed the model most towards
    its answer (words; «character n-grams» where no word covers them)."""
    terms = [term for term, _ in model.explain(text, label, EXPLAINED_TERMS)]
    return (f"근거: {', '.join(terms)}",) if terms else ()


@dataclass(frozen=True)
class Models:
    """The active trained models, if any. `relevance` ranks "true"/"false"; `routing`
    ranks category codes."""

    relevance: Predictor | None = None
    relevance_threshold: float = 0.5
    routing: Predictor | None = None


def engine_name(models: Models, rules_engine: str) -> str:
    parts = [rules_engine]
    if models.relevance is not None:
        parts.append(f"relevance:{models.relevance.version}")
    if models.routing is not None:
        parts.append(f"routing:{models.routing.version}")
    # Never cut: a decision must name every model version that made it (about 90 characters
    # with both models; the column holds 200).
    return "+".join(parts)


def decide(
    texts: Sequence[str],
    rules: RuleSet,
    *,
    urgency: UrgencyRules | None = None,
    models: Models = Models(),  # noqa: B008 - frozen, never mutated
) -> list[TriageOutcome]:
    """Decide every text; models run once over the whole batch."""
    outcomes = [triage_text(text, rules) for text in texts]
    name = engine_name(models, outcomes[0].engine if outcomes else "rules")
    if models.relevance is not None:
        relevance = models.relevance.rank(texts, 2)
        outcomes = [
            _with_relevance(o, dict(r), models.relevance_threshold, models.relevance, text)
            for o, r, text in zip(outcomes, relevance, texts, strict=True)
        ]
    if models.routing is not None:
        # Only city business is routed: most of a stream is not (about nine in ten).
        chosen = [i for i, outcome in enumerate(outcomes) if outcome.relevant]
        ranked = models.routing.rank([texts[i] for i in chosen], 3) if chosen else []
        for i, row in zip(chosen, ranked, strict=True):
            outcomes[i] = _with_routing(outcomes[i], row, rules, models.routing, texts[i])
    return [
        replace(_with_urgency(outcome, text, rules, urgency), engine=name)
        for outcome, text in zip(outcomes, texts, strict=True)
    ]


def _with_relevance(
    outcome: TriageOutcome,
    ranked: dict[str, float],
    threshold: float,
    model: Predictor,
    text: str,
) -> TriageOutcome:
    probability = ranked.get("true", 0.0)
    reason = f"시정 관련 확률 {probability:.2f}"
    if outcome.relevant:
        # A category keyword is the city's own word that this is its business.
        return replace(outcome, reasons=(*outcome.reasons, reason))
    if probability >= threshold:
        # The model alone says city business: say which words made it think so.
        return replace(
            outcome,
            relevant=True,
            confidence=round(probability, 3),
            reasons=(reason, *_terms_reason(model, text, "true"), *outcome.reasons),
        )
    if outcome.relevant is None and probability < threshold / 2:
        # A request cue alone, and the model is sure it is not city business.
        return replace(
            outcome,
            relevant=False,
            unit=None,
            confidence=round(1 - probability, 3),
            reasons=(reason, *outcome.reasons),
        )
    if outcome.relevant is False:
        return replace(
            outcome, confidence=round(1 - probability, 3), reasons=(reason, *outcome.reasons)
        )
    return replace(outcome, reasons=(reason, *outcome.reasons))


def _with_routing(
    outcome: TriageOutcome,
    ranked: list[tuple[str, float]],
    rules: RuleSet,
    model: Predictor,
    text: str,
) -> TriageOutcome:
    known = [(code, p) for code, p in ranked if code in rules.categories]
    if not known:
        return outcome
    if outcome.category is not None:
        others = tuple((c, round(p, 3)) for c, p in known if c != outcome.category)[:2]
        return replace(outcome, alternatives=others)
    code, probability = known[0]
    spec = rules.categories[code]
    place = outcome.place or rules.find_place(fold_width(text))
    confidence = min(outcome.confidence if outcome.relevant else 1.0, probability)
    unit, ownership, confidence = owner_for(spec, place, confidence)
    # The place's evidence is already among the reasons when the rules reported it.
    ownership = [r for r in ownership if r not in outcome.reasons]
    return replace(
        outcome,
        category=code,
        unit=unit,
        case_type=spec.case_type,
        district=place.district.names[0] if place.district else outcome.district,
        urgent=spec.case_type in rules.urgent_case_types,
        confidence=round(confidence, 3),
        reasons=(
            f"모델 분류: {code} ({probability:.2f})",
            *_terms_reason(model, text, code),
            *outcome.reasons,
            *ownership,
        ),
        alternatives=tuple((c, round(p, 3)) for c, p in known[1:3]),
        location=outcome.location or place.location,
    )


def _with_urgency(
    outcome: TriageOutcome, text: str, rules: RuleSet, urgency: UrgencyRules | None
) -> TriageOutcome:
    """A safety hazard takes the urgent case type whatever the category."""
    found = detect_urgency(text, urgency)
    if outcome.urgent and not found.urgent and found.evidence:
        # The hazard word is there but resolved, denied or past ("싱크홀 복구 감사합니다"):
        # the category stays, the one-hour clock does not.
        calm = DEFAULT_CASE_TYPE if DEFAULT_CASE_TYPE not in rules.urgent_case_types else None
        if calm is not None:
            return replace(
                outcome,
                urgent=False,
                case_type=calm,
                reasons=(*outcome.reasons, f"긴급 아님: {', '.join(found.evidence[:2])}"),
            )
    if not found.urgent or outcome.urgent:
        return outcome
    urgent_type = next(iter(sorted(rules.urgent_case_types)), None)
    if urgent_type is None:
        return outcome
    reasons = (*outcome.reasons, f"긴급: {found.hazard} ({', '.join(found.evidence[:2])})")
    if outcome.category is None:
        # A hazard the categories did not name goes to the owner of the urgent category.
        spec = next((s for s in rules.categories.values() if s.case_type == urgent_type), None)
        if spec is None:
            return outcome
        return replace(
            outcome,
            relevant=True,
            category=spec.code,
            unit=spec.owner_unit,
            case_type=urgent_type,
            urgent=True,
            confidence=max(outcome.confidence, found.score),
            reasons=reasons,
        )
    return replace(outcome, relevant=True, case_type=urgent_type, urgent=True, reasons=reasons)
