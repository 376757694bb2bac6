"""Labelled examples for training the product's triage models: the examples written for the
project, the city's own history, and every correction people made.

Only labels a person stood behind count: a case that was answered (its final category and
unit), a triage decision the center reviewed, a correction. Automatic decisions nobody
looked at are never fed back, or the model would learn its own mistakes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from sotong.cases.models import CaseMessage
from sotong.cases.workflow import ANSWERED_STATES
from sotong.triage.models import TriageCorrection, TriageDecision

SEED_EXAMPLES = Path(__file__).resolve().parent / "data" / "seed_examples.yaml"


@dataclass(frozen=True)
class Example:
    text: str
    relevant: bool
    category: str = ""  # a category code, for relevant examples
    unit: str = ""  # a unit code, where known
    source: str = "seed"  # seed | history | review | correction
    key: str = ""  # a stable id (for hashing and for held-out slices)
    # When the citizen wrote it (ISO date; None for the written examples, which stand for
    # the present): the router learns which unit owned a matter when.
    date: str | None = None


def seed_examples(path: Path = SEED_EXAMPLES) -> list[Example]:
    """The examples written for the project (never a real citizen's message)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [
        Example(
            text=str(item["text"]),
            relevant=bool(item["relevant"]),
            category=str(item.get("category") or ""),
            source="seed",
            key=f"seed-{index}",
        )
        for index, item in enumerate(data.get("examples", []))
    ]


def history_examples() -> Iterator[Example]:
    """Answered cases: the category and unit they ended with, after any transfer."""
    links = (
        CaseMessage.objects.filter(case__status__in=ANSWERED_STATES)
        .select_related("message", "case__category", "case__unit")
        .order_by("pk")
    )
    for link in links.iterator(chunk_size=2000):
        case = link.case
        yield Example(
            text=link.message.text,
            relevant=True,
            category=case.category.code if case.category else "",
            unit=case.unit.code if case.unit else "",
            source="history",
            key=f"message-{link.message_id}",
            date=link.message.received_at.date().isoformat(),
        )


def review_examples() -> Iterator[Example]:
    """Decisions the center reviewed in the triage queue (relevant or not)."""
    reviewed = (
        TriageDecision.objects.filter(review=TriageDecision.Review.REVIEWED)
        .select_related("message", "category", "unit")
        .order_by("pk")
    )
    for decision in reviewed.iterator(chunk_size=2000):
        yield Example(
            text=decision.message.text,
            relevant=bool(decision.relevant),
            category=decision.category.code if decision.relevant and decision.category else "",
            unit=decision.unit.code if decision.relevant and decision.unit else "",
            source="review",
            key=f"message-{decision.message_id}",
            date=decision.message.received_at.date().isoformat(),
        )


def correction_examples() -> Iterator[Example]:
    """Corrections outside the queue (a transfer marked "wrong unit"): the corrected unit."""
    corrections = (
        TriageCorrection.objects.filter(field=TriageCorrection.Field.UNIT)
        .select_related("message")
        .order_by("pk")
    )
    for correction in corrections.iterator(chunk_size=2000):
        yield Example(
            text=correction.message.text,
            relevant=True,
            unit=correction.after,
            source="correction",
            key=f"message-{correction.message_id}",
            date=correction.message.received_at.date().isoformat(),
        )


def all_examples() -> list[Example]:
    """Every example, the latest word on each message winning (a correction over a review
    over the history), seed examples first."""
    by_key: dict[str, Example] = {}
    for example in [*history_examples(), *review_examples(), *correction_examples()]:
        earlier = by_key.get(example.key)
        if earlier is not None and example.source == "correction":
            # A correction names only the unit; keep what else was known.
            example = Example(
                text=example.text,
                relevant=True,
                category=earlier.category,
                unit=example.unit,
                source="correction",
                key=example.key,
                date=example.date,
            )
        by_key[example.key] = example
    return seed_examples() + list(by_key.values())
