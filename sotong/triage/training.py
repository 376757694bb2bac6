"""Retraining the product's triage models from the examples written for the project, the
city's history and every correction, and promoting a candidate only when it measures no
worse than the active model on a held-out slice.

Run by `sotong triage retrain` (and nightly by the worker); `sotong triage bootstrap`
trains the first models when none is active, so `make run` starts with one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sotong.triage import evaluation
from sotong.triage.classifier import RELEVANCE, ROUTING, TextModel
from sotong.triage.examples import Example, all_examples
from sotong.triage.models import TrainedModel
from sotong.triage.registry import model_dir, register

log = logging.getLogger(__name__)

HELD_OUT_SHARE = 0.2
# What "no worse" compares: for routing top-1 accuracy, for relevance the F1 at the model's
# own threshold (recall matters most, but a filter that flags everything has recall 1).
SCORE = {ROUTING: "top1", RELEVANCE: "f1"}


@dataclass(frozen=True)
class RetrainResult:
    kind: str
    candidate: TrainedModel
    candidate_score: float
    active_score: float | None
    promoted: bool

    def __str__(self) -> str:
        versus = (
            "no active model" if self.active_score is None else f"active {self.active_score:.4f}"
        )
        verdict = "promoted" if self.promoted else "kept the active model"
        return (
            f"{self.kind}: candidate {self.candidate.version} {SCORE[self.kind]} "
            f"{self.candidate_score:.4f} vs {versus}: {verdict}"
        )


def held_out(example: Example) -> bool:
    """A stable 20% of the examples, by a hash of their key (the same slice every run)."""
    digest = hashlib.sha256(example.key.encode()).digest()
    return digest[0] < 256 * HELD_OUT_SHARE


@dataclass(frozen=True)
class Labelled:
    """Examples as a model takes them: texts, labels and (for a router) dates."""

    texts: list[str]
    labels: list[Any]
    dates: list[str | None] | None


def labelled(examples: Sequence[Example], kind: str) -> Labelled:
    if kind == RELEVANCE:
        return Labelled([e.text for e in examples], [e.relevant for e in examples], None)
    chosen = [e for e in examples if e.relevant and e.category]
    dates = [e.date for e in chosen]
    return Labelled(
        [e.text for e in chosen],
        [e.category for e in chosen],
        None if all(d is None for d in dates) else dates,
    )


def score(model: TextModel, data: Labelled, kind: str) -> float:
    """The model's score on a held-out slice (see SCORE)."""
    texts, labels = data.texts, data.labels
    proba = model.predict_proba(texts, data.dates)
    if kind == RELEVANCE:
        classes = [bool(c) for c in model.labels]
        p_relevant = proba[:, classes.index(True)]
        metrics = evaluation.relevance_metrics(
            np.array(labels, dtype=bool), p_relevant, model.threshold
        )
    else:
        metrics = evaluation.routing_metrics(labels, proba, model.labels)
    return float(metrics[SCORE[kind]])


def retrain(
    kind: str,
    examples: Sequence[Example] | None = None,
    *,
    force: bool = False,
    make_model: Callable[[str], TextModel] | None = None,
) -> RetrainResult:
    """Train a candidate of `kind`, compare it with the active model on the held-out slice,
    register it, and promote it if it is not worse (or `force`)."""
    examples = list(all_examples() if examples is None else examples)
    label_field = "relevant" if kind == RELEVANCE else "category"
    build = make_model or (lambda k: TextModel(k, label_field))
    train = [e for e in examples if not held_out(e)]
    test = [e for e in examples if held_out(e)]
    train_data = labelled(train, kind)
    test_data = labelled(test, kind)
    if not test_data.texts:
        raise ValueError("no held-out examples to compare models on")

    candidate = build(kind).fit(train_data.texts, train_data.labels, dates=train_data.dates)
    candidate_score = score(candidate, test_data, kind)
    active = TrainedModel.objects.filter(kind=kind, active=True).first()
    active_score = None
    if active is not None:
        try:
            active_score = score(TextModel.load(active.path), test_data, kind)
        except Exception:
            log.exception("the active %s model cannot be scored; the candidate replaces it", kind)
    promote = force or active_score is None or candidate_score >= active_score

    # The promoted model learns from every example, the held-out slice included.
    every = labelled(examples, kind)
    final = build(kind).fit(every.texts, every.labels, dates=every.dates) if promote else candidate
    assert final.card is not None
    path = final.save(model_dir() / f"{final.card.version}.joblib")
    metrics = dict(final.card.metrics)
    metrics["held_out"] = {"n": len(test_data.texts), SCORE[kind]: round(candidate_score, 4)}
    if active_score is not None:
        metrics["held_out"]["active"] = round(active_score, 4)
    if final.card.threshold is not None:
        metrics["threshold"] = final.card.threshold
    record = register(
        kind=kind,
        version=final.card.version,
        path=path,
        label_field=label_field,
        data_sha256=final.card.data_sha256,
        n_examples=final.card.n_examples,
        metrics=metrics,
        promote=promote,
        note="" if promote else "not promoted: worse than the active model on the held-out slice",
    )
    return RetrainResult(kind, record, candidate_score, active_score, promote)


def retrain_all(*, force: bool = False) -> list[RetrainResult]:
    examples = all_examples()
    return [retrain(kind, examples, force=force) for kind in (RELEVANCE, ROUTING)]


def bootstrap() -> list[RetrainResult]:
    """Train the first models when none is active (a fresh installation)."""
    missing = [
        k
        for k in (RELEVANCE, ROUTING)
        if not TrainedModel.objects.filter(kind=k, active=True).exists()
    ]
    if not missing:
        return []
    examples = all_examples()
    return [retrain(kind, examples) for kind in missing]


def nightly_retrain() -> str:
    """The scheduled job."""
    return "; ".join(str(r) for r in retrain_all())
