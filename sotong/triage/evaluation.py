"""How well a triage model does: routing metrics (top-1, top-3, macro-F1, the share that can
route itself at a given precision, per-label table, confused pairs), relevance metrics
(precision, recall, recall at 95% precision), cross-validation, and their printed form.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold

COVERAGE_LEVELS = (0.90, 0.95, 0.98)
TOP_CONFUSED = 10


class Classifier(Protocol):
    """What cross-validation needs of a model (TextModel is one)."""

    kind: str

    @property
    def labels(self) -> list[Any]: ...

    @property
    def threshold(self) -> float: ...

    def fit(
        self, texts: Sequence[str], labels: Sequence[Any], *, dates: Sequence[Any] | None = ...
    ) -> Any: ...

    def predict_proba(
        self, texts: Sequence[str], dates: Sequence[Any] | None = ...
    ) -> np.ndarray: ...


def fold_assignment(labels: Sequence[Any], folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per example, stratified by label.

    sklearn's StratifiedKFold when every label has at least as many examples as there are
    folds. Otherwise (routing data is long-tailed) the examples are shuffled, grouped by
    label and dealt out to the folds in turn, the deal running on from one label to the
    next: every label is spread as evenly as it can be, fold sizes differ by one at most,
    and a label with fewer examples than folds lands in as many folds as it has examples
    (StratifiedKFold would warn and place them arbitrarily). A label seen once is then only
    ever in a test fold, where it counts as the error it would be in production."""
    if folds < 2:
        raise ValueError("need at least two folds")
    y = np.array([str(label) for label in labels], dtype=object)
    _, counts = np.unique(y, return_counts=True)
    if counts.min() >= folds:
        assignment = np.empty(len(y), dtype=int)
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fold, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
            assignment[test] = fold
        return assignment
    shuffled = np.random.default_rng(seed).permutation(len(y))
    order = shuffled[np.argsort(y[shuffled], kind="stable")]
    assignment = np.empty(len(y), dtype=int)
    assignment[order] = np.arange(len(y)) % folds
    return assignment


def _key(level: float) -> str:
    return f"{level:.2f}"


def coverage_at_precision(
    correct: Sequence[bool] | np.ndarray,
    confidence: Sequence[float] | np.ndarray,
    levels: Sequence[float] = COVERAGE_LEVELS,
) -> tuple[dict[str, float], dict[str, float | None]]:
    """For each precision level, the largest share of messages that could be routed
    automatically — those whose confidence is at or above a threshold — with the routed ones
    still correct at that precision; and the threshold that achieves it (None: no threshold
    does). Thresholds fall only between distinct confidences, as a real cut-off would."""
    ok = np.asarray(correct, dtype=bool)
    conf = np.asarray(confidence, dtype=float)
    n = len(ok)
    shares: dict[str, float] = {}
    thresholds: dict[str, float | None] = {}
    if n == 0:
        return {_key(v): 0.0 for v in levels}, {_key(v): None for v in levels}
    order = np.argsort(-conf, kind="stable")
    conf_sorted = conf[order]
    hits = np.cumsum(ok[order])
    taken = np.arange(1, n + 1)
    # Only cut after the last of a run of equal confidences.
    cut = np.append(conf_sorted[1:] < conf_sorted[:-1], True)
    precision = hits / taken
    for level in levels:
        valid = np.flatnonzero(cut & (precision >= level - 1e-12))
        if len(valid):
            k = int(valid.max())
            shares[_key(level)] = round(float(taken[k] / n), 4)
            thresholds[_key(level)] = round(float(conf_sorted[k]), 6)
        else:
            shares[_key(level)] = 0.0
            thresholds[_key(level)] = None
    return shares, thresholds


def expected_calibration_error(
    correct: np.ndarray, confidence: np.ndarray, bins: int = 10
) -> float:
    """Mean gap between stated confidence and observed accuracy, over ten equal-width bins
    weighted by their size: 0 is perfectly calibrated."""
    if len(correct) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            gap += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return round(float(gap), 4)


def routing_metrics(
    truth: Sequence[Any], proba: np.ndarray, labels: Sequence[Any]
) -> dict[str, Any]:
    """Metrics of a router from the true labels and predicted probabilities (columns in the
    order of `labels`). Labels of the truth that the model does not know count as errors."""
    y = np.array([str(v) for v in truth], dtype=object)
    names = np.array([str(v) for v in labels], dtype=object)
    n = len(y)
    if n == 0:
        raise ValueError("no examples to evaluate")
    order = np.argsort(-proba, axis=1, kind="stable")
    predicted = names[order[:, 0]]
    top3 = names[order[:, : min(3, len(names))]]
    correct = predicted == y
    confidence = proba[np.arange(n), order[:, 0]]
    coverage, thresholds = coverage_at_precision(correct, confidence)

    present = sorted(set(y.tolist()))
    p, r, f, support = precision_recall_fscore_support(
        y, predicted, labels=present, zero_division=0
    )
    per_label = {
        label: {
            "n": int(support[i]),
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
            "f1": round(float(f[i]), 4),
        }
        for i, label in enumerate(present)
    }
    confused = Counter(
        (t, q) for t, q in zip(y.tolist(), predicted.tolist(), strict=True) if t != q
    ).most_common(TOP_CONFUSED)
    return {
        "n": n,
        "n_labels": len(present),
        "top1": round(float(correct.mean()), 4),
        "top3": round(float(np.mean([t in row for t, row in zip(y, top3, strict=True)])), 4),
        "macro_f1": round(float(np.mean(f)), 4),
        "coverage_at_precision": coverage,
        "coverage_thresholds": thresholds,
        "calibration_error": expected_calibration_error(correct, confidence),
        "per_label": per_label,
        "confused_pairs": [{"true": t, "predicted": q, "count": c} for (t, q), c in confused],
    }


def _precision_recall(truth: np.ndarray, flagged: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum(flagged & truth))
    precision = tp / float(flagged.sum()) if flagged.any() else 1.0
    recall = tp / float(truth.sum()) if truth.any() else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def recall_at_precision(
    truth: np.ndarray, p_relevant: np.ndarray, level: float
) -> tuple[float, float | None]:
    """The highest recall any threshold reaches while precision stays at or above `level`,
    and that threshold (None: none does)."""
    truth = np.asarray(truth, dtype=bool)
    order = np.argsort(-p_relevant, kind="stable")
    ranked = p_relevant[order]
    hits = np.cumsum(truth[order])
    taken = np.arange(1, len(truth) + 1)
    cut = np.append(ranked[1:] < ranked[:-1], True)
    valid = np.flatnonzero(cut & (hits / taken >= level - 1e-12))
    if not len(valid) or not truth.any():
        return 0.0, None
    best = valid[np.argmax(hits[valid])]
    return float(hits[best] / truth.sum()), float(ranked[best])


def threshold_for_recall(truth: np.ndarray, p_relevant: np.ndarray, target: float) -> float:
    """The highest threshold that still flags at least `target` of the relevant texts."""
    positives = np.sort(np.asarray(p_relevant)[np.asarray(truth, dtype=bool)])[::-1]
    if not len(positives):
        return 0.5
    k = max(1, math.ceil(target * len(positives)))
    return float(positives[min(k, len(positives)) - 1])


def relevance_metrics(
    truth: Sequence[bool] | np.ndarray,
    p_relevant: np.ndarray,
    threshold: float | np.ndarray,
) -> dict[str, Any]:
    """Metrics of a relevance filter at its threshold (one, or one per example when each
    cross-validation fold chose its own), and recall at 95% precision at the best threshold."""
    y = np.asarray(truth, dtype=bool)
    p = np.asarray(p_relevant, dtype=float)
    if len(y) == 0:
        raise ValueError("no examples to evaluate")
    flagged = p >= threshold
    precision, recall, f1 = _precision_recall(y, flagged)
    r95, t95 = recall_at_precision(y, p, 0.95)
    stated = float(np.mean(threshold))
    return {
        "n": int(len(y)),
        "n_relevant": int(y.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "threshold": round(stated, 6),
        "recall_at_precision_95": round(r95, 4),
        "threshold_at_precision_95": None if t95 is None else round(t95, 6),
        "calibration_error": expected_calibration_error(y == (p >= 0.5), np.maximum(p, 1 - p)),
    }


@dataclass
class CrossValidation:
    """Out-of-fold predictions of every example and the metrics computed from them."""

    metrics: dict[str, Any]
    proba: np.ndarray  # routing: one column per label; relevance: P(relevant)
    labels: list[Any]
    folds: np.ndarray
    thresholds: np.ndarray | None = None  # relevance: the threshold of each example's fold


def cross_validate(
    texts: Sequence[str],
    labels: Sequence[Any],
    make_model: Callable[[], Classifier],
    *,
    folds: int = 5,
    seed: int = 0,
    extra_train: tuple[Sequence[str], Sequence[Any]] | None = None,
    on_fold: Callable[[int], None] | None = None,
    dates: Sequence[Any] | None = None,
) -> CrossValidation:
    """Train on all folds but one, predict the one left out, k times; never a training row
    in a test fold. Folds are stratified by label; labels with fewer examples than folds
    are pooled for the split (see fold_assignment). `extra_train` examples join
    every training part and are never tested (for instance long proposals added to teach
    relevance, while the evaluation holds short titles only). `dates` (one per text) go to
    the model's fit and predict_proba with the texts; extra examples are undated."""
    texts = list(texts)
    labels = list(labels)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if folds < 2 or folds > len(texts):
        raise ValueError(f"folds must be between 2 and the number of examples ({len(texts)})")
    assignment = fold_assignment(labels, folds, seed)
    extra_texts, extra_labels = (
        (list(extra_train[0]), list(extra_train[1])) if extra_train else ([], [])
    )
    all_labels = sorted({str(v) for v in labels} | {str(v) for v in extra_labels})
    relevance = all(isinstance(v, bool | np.bool_) for v in labels)
    proba = np.zeros(len(texts)) if relevance else np.zeros((len(texts), len(all_labels)))
    thresholds = np.zeros(len(texts)) if relevance else None
    for fold in range(folds):
        train = np.flatnonzero(assignment != fold)
        test = np.flatnonzero(assignment == fold)
        if not len(test):
            continue
        model = make_model()
        train_texts = [texts[i] for i in train] + extra_texts
        train_labels = [labels[i] for i in train] + extra_labels
        test_texts = [texts[i] for i in test]
        if dates is None:
            model.fit(train_texts, train_labels)
            predicted = model.predict_proba(test_texts)
        else:
            dated = list(dates)
            train_dates = [dated[i] for i in train] + [None] * len(extra_texts)
            model.fit(train_texts, train_labels, dates=train_dates)
            predicted = model.predict_proba(test_texts, dates=[dated[i] for i in test])
        if relevance:
            proba[test] = predicted[:, model.labels.index(True)]
            assert thresholds is not None
            thresholds[test] = model.threshold
        else:
            columns = np.array([all_labels.index(str(label)) for label in model.labels])
            proba[np.ix_(test, columns)] = predicted
        if on_fold is not None:
            on_fold(fold)
    if relevance:
        assert thresholds is not None
        metrics = relevance_metrics(np.array(labels, dtype=bool), proba, thresholds)
        metrics["fold_thresholds"] = sorted({round(float(t), 6) for t in thresholds})
    else:
        metrics = routing_metrics(labels, proba, all_labels)
    metrics["estimated_by"] = f"{folds}-fold cross-validation"
    return CrossValidation(metrics, proba, all_labels, assignment, thresholds)


# --- printing ---------------------------------------------------------------------------------


def _width(text: str) -> int:
    """Columns a string takes in a terminal: Hangul and other wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def format_report(metrics: dict[str, Any], title: str = "") -> str:
    """The metrics as a plain-text table for a terminal."""
    lines = [title] if title else []
    if "recall_at_precision_95" in metrics:
        lines.append(
            f"n {metrics['n']} ({metrics['n_relevant']} relevant)   "
            f"threshold {metrics['threshold']:.3f}"
        )
        lines.append(
            f"precision {metrics['precision']:.3f}   recall {metrics['recall']:.3f}   "
            f"F1 {metrics['f1']:.3f}   recall at 95% precision "
            f"{metrics['recall_at_precision_95']:.3f}"
        )
        return "\n".join(lines)
    coverage = metrics["coverage_at_precision"]
    lines.append(
        f"n {metrics['n']}   labels {metrics['n_labels']}   top-1 {metrics['top1']:.3f}   "
        f"top-3 {metrics['top3']:.3f}   macro-F1 {metrics['macro_f1']:.3f}"
    )
    lines.append(
        "routed automatically at precision "
        + "   ".join(f"{level}: {share:.1%}" for level, share in coverage.items())
    )
    lines.append("")
    width = max([len("label"), *(_width(label) for label in metrics["per_label"])])
    lines.append(f"{'label':<{width}}  {'n':>5}  {'prec':>5}  {'recall':>6}  {'f1':>5}")
    rows = sorted(metrics["per_label"].items(), key=lambda item: (-item[1]["n"], item[0]))
    for label, row in rows:
        lines.append(
            f"{label}{' ' * (width - _width(label))}  {row['n']:>5}  {row['precision']:>5.2f}  "
            f"{row['recall']:>6.2f}  {row['f1']:>5.2f}"
        )
    if metrics["confused_pairs"]:
        lines.append("")
        lines.append("most confused (true → predicted)")
        for pair in metrics["confused_pairs"]:
            lines.append(f"  {pair['count']:>4}  {pair['true']} → {pair['predicted']}")
    return "\n".join(lines)
