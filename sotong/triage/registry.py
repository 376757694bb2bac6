"""The registry of trained triage models: which file is active for relevance and for
routing, loading them for the engine, promoting a candidate and rolling back.

Model files live under `var/models/` (SOTONG_MODEL_DIR); the database says which is active,
so every worker loads the same one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sotong.triage.engine import Models
from sotong.triage.models import TrainedModel

log = logging.getLogger(__name__)


def model_dir() -> Path:
    path = Path(settings.SOTONG_MODEL_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class LoadedModel:
    """A trained model as the engine uses it: ranked labels as plain strings."""

    version: str
    model: Any  # sotong.triage.classifier.TextModel

    def rank(self, texts: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        return [
            [
                (str(label).lower() if isinstance(label, bool) else str(label), float(p))
                for label, p in row
            ]
            for row in self.model.top_k(list(texts), k)
        ]

    def explain(self, text: str, label: str, n: int) -> list[tuple[str, float]]:
        """The terms that drove the model towards `label` ("true"/"false" for relevance)."""
        model_label: str | bool = label
        if self.model.kind == "relevance":
            model_label = label == "true"
        return list(self.model.explain(text, model_label, n))


# Models loaded by this process, by file. A model file never changes once written (its name
# is its version), and the worker asks for the active models every minute (with the rules):
# only a newly promoted or rolled-back model is read from disk.
_loaded: dict[str, LoadedModel] = {}


def _load(record: TrainedModel) -> LoadedModel | None:
    from sotong.triage.classifier import TextModel

    key = f"{record.version}@{record.path}"
    if key in _loaded:
        return _loaded[key]
    try:
        loaded = LoadedModel(record.version, TextModel.load(record.path))
    except Exception:
        # A missing or unreadable file must not stop triage: the rules still work.
        log.exception(
            "cannot load triage model %s from %s; using rules only", record.version, record.path
        )
        return None
    _loaded[key] = loaded
    return loaded


def active_models() -> Models:
    """The active models (none until a city trains one: then the rules decide alone)."""
    active = {m.kind: m for m in TrainedModel.objects.filter(active=True)}
    # Keep only what is active now: a replaced model's memory goes with it.
    wanted = {f"{m.version}@{m.path}" for m in active.values()}
    for key in set(_loaded) - wanted:
        del _loaded[key]
    relevance = _load(active["relevance"]) if "relevance" in active else None
    routing = _load(active["routing"]) if "routing" in active else None
    threshold = 0.5
    if relevance is not None:
        threshold = relevance.model.threshold
    return Models(relevance=relevance, relevance_threshold=threshold, routing=routing)


@transaction.atomic
def register(
    *,
    kind: str,
    version: str,
    path: Path,
    label_field: str,
    data_sha256: str,
    n_examples: int,
    metrics: dict[str, Any],
    promote: bool,
    note: str = "",
) -> TrainedModel:
    """Record a trained model; promote it (making it the active one) when asked."""
    base, suffix = version, 1
    while TrainedModel.objects.filter(version=version).exists():
        suffix += 1  # the same data trained twice within a second
        version = f"{base}-{suffix}"
    record = TrainedModel.objects.create(
        kind=kind,
        version=version,
        path=str(path),
        label_field=label_field,
        data_sha256=data_sha256,
        n_examples=n_examples,
        metrics=metrics,
        created_at=timezone.now(),
        note=note,
    )
    if promote:
        activate(record)
        record.refresh_from_db()
    return record


@transaction.atomic
def activate(record: TrainedModel) -> None:
    TrainedModel.objects.filter(kind=record.kind, active=True).update(active=False)
    TrainedModel.objects.filter(pk=record.pk).update(active=True, promoted_at=timezone.now())
    from sotong.triage.services import forget_rules

    forget_rules()


@transaction.atomic
def rollback(kind: str) -> TrainedModel:
    """Make the model promoted before the active one active again."""
    active = TrainedModel.objects.filter(kind=kind, active=True).first()
    if active is None:
        raise ValueError(f"no active {kind} model to roll back from")
    previous = (
        TrainedModel.objects.filter(
            kind=kind, promoted_at__isnull=False, promoted_at__lt=active.promoted_at
        )
        .exclude(pk=active.pk)
        .order_by("-promoted_at")
        .first()
    )
    if previous is None:
        raise ValueError(f"no earlier {kind} model was ever active")
    activate(previous)
    return previous
