"""The trained triage model: a linear classifier over Korean text features with calibrated
probabilities, top-k suggestions, the terms behind a decision, and a model card saying what
it was trained on and how it measured. Pure: no Django; files are joblib pickles.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import joblib
import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from sotong.triage import evaluation
from sotong.triage.datasets import examples_sha256
from sotong.triage.evaluation import fold_assignment
from sotong.triage.periods import DateLike
from sotong.triage.text_features import FIELD_SEPARATOR, FeatureSpace

ENGINE = "sotong-text-1"
FILE_FORMAT = 1
RELEVANCE = "relevance"
ROUTING = "routing"
RELEVANCE_LABEL_FIELD = "relevant"

Label = str | bool


class ModelError(ValueError):
    """A model cannot be trained from this data, or a file is not a usable model."""


class Progress(Protocol):
    """What training reports progress to (a tqdm bar fits)."""

    def update(self, n: float = 1) -> Any: ...


@dataclass
class ModelCard:
    """What a model file says about itself (stored with it, shown by `triage evaluate`)."""

    kind: str  # "relevance" or "routing"
    label_field: str
    version: str
    created_at: str  # ISO 8601, UTC
    data_sha256: str
    n_examples: int
    labels: list[Label]
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # Relevance only: P(relevant) at or above which a message counts as relevant. Chosen on
    # out-of-fold predictions of the training data for recall (a missed complaint costs
    # more than a false alarm the center dismisses).
    threshold: float | None = None
    engine: str = ENGINE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def kind_for(label_field: str) -> str:
    """The label `relevant` trains the relevance filter; any other label trains routing."""
    return RELEVANCE if label_field == RELEVANCE_LABEL_FIELD else ROUTING


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class TextModel:
    """A relevance filter or a router trained on labelled texts.

    Scores come from a linear SVM (one-vs-rest), which measured best on the complaint data;
    they become probabilities through a calibration fitted on out-of-fold scores of the
    training data: a temperature of the softmax for routing, a sigmoid (Platt) for relevance.
    """

    def __init__(
        self,
        kind: str = ROUTING,
        label_field: str = "unit",
        *,
        C: float = 0.3,
        class_weight: str | None = "balanced",
        calibration_folds: int = 5,
        target_recall: float = 0.98,
        features: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        if kind not in (RELEVANCE, ROUTING):
            raise ModelError(f"kind must be {RELEVANCE!r} or {ROUTING!r}, not {kind!r}")
        self.kind = kind
        self.label_field = label_field
        self.C = C
        self.class_weight = class_weight
        self.calibration_folds = calibration_folds
        self.target_recall = target_recall
        self.seed = seed
        # A relevance filter learns from tens of thousands of short texts: n-grams seen once
        # there would be most of a million columns (memory, load time) and teach nothing.
        defaults: dict[str, Any] = {"min_df": 2} if kind == RELEVANCE else {}
        self.features = FeatureSpace(**{**defaults, **(features or {})})
        self.classes_: np.ndarray = np.array([])
        self.card: ModelCard | None = None
        self._svm: LinearSVC | None = None
        self._temperature = 1.0
        self._platt: tuple[float, float] = (1.0, 0.0)

    # --- training -------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        return {
            "classifier": "LinearSVC",
            "C": self.C,
            "class_weight": self.class_weight,
            "calibration": "platt" if self.kind == RELEVANCE else "temperature",
            "calibration_folds": self.calibration_folds,
            "target_recall": self.target_recall if self.kind == RELEVANCE else None,
            "features": self.features.params(),
            "seed": self.seed,
        }

    @staticmethod
    def progress_total(n_texts: int, calibration_folds: int = 5) -> int:
        """Units of work `fit` reports: one per text analysed, then one per classifier
        trained (the calibration folds and the final one)."""
        return n_texts + calibration_folds + 1

    def _new_svm(self) -> LinearSVC:
        return LinearSVC(C=self.C, class_weight=self.class_weight, random_state=self.seed)

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[Label],
        *,
        dates: Sequence[DateLike] | None = None,
        data_sha256: str | None = None,
        progress: Progress | None = None,
    ) -> TextModel:
        """Train on the texts; the card records the data's hash and out-of-fold metrics.

        `dates` (a router only; one per text, None where unknown) teach it which unit owned
        a matter when: see sotong.triage.periods. A relevance filter ignores them: whether
        a message is city business does not depend on the year."""
        if len(texts) != len(labels):
            raise ModelError(f"{len(texts)} texts but {len(labels)} labels")
        if dates is not None and len(dates) != len(texts):
            raise ModelError(f"{len(texts)} texts but {len(dates)} dates")
        if self.kind == RELEVANCE:
            dates = None
        y = self._check_labels(labels)
        self.classes_ = np.array(sorted(set(y.tolist())), dtype=object)
        if len(self.classes_) < 2:
            raise ModelError(f"need at least two different labels, got {self.classes_.tolist()}")
        texts = list(texts)
        given = len(texts)
        sha = data_sha256 or examples_sha256(texts, y.tolist(), dates)
        folds = fold_assignment(y.tolist(), self.calibration_folds, self.seed)
        if self.kind == RELEVANCE:
            texts, y, folds = _with_headings(texts, y, folds)
        X = self._analyse(texts, dates, progress, given / len(texts))

        # Out-of-fold scores calibrate the probabilities and give honest training metrics.
        # The TF-IDF vocabulary is shared by the folds: it uses no labels.
        oof = np.zeros((len(y), len(self.classes_)))
        for fold in range(self.calibration_folds):
            train, test = folds != fold, folds == fold
            oof[test] = self._scores_for(self._fit_svm(X[train], y[train]), X[test])
            if progress is not None:
                progress.update(1)
        self._calibrate(oof, y, folds)
        self._svm = self._fit_svm(X, y)
        if progress is not None:
            progress.update(1)

        created = datetime.now(UTC).replace(microsecond=0)
        self.card = ModelCard(
            kind=self.kind,
            label_field=self.label_field,
            version=f"{self.kind}-{created:%Y%m%dT%H%M%SZ}-{sha[:8]}",
            created_at=created.isoformat(),
            data_sha256=sha,
            n_examples=given,
            labels=[_plain(c) for c in self.classes_],
            params=self.params(),
        )
        proba = self._probabilities(oof)
        if self.kind == RELEVANCE:
            p_relevant = proba[:, 1]
            truth = y.astype(bool)
            # The threshold keeps its recall on the headings too: a message is often as
            # short as a title, however long the posts the filter learnt from.
            self.card.threshold = evaluation.threshold_for_recall(
                truth, p_relevant, self.target_recall
            )
            metrics = evaluation.relevance_metrics(
                truth[:given], p_relevant[:given], self.card.threshold
            )
        else:
            metrics = evaluation.routing_metrics(y.tolist(), proba, self.classes_.tolist())
        metrics["estimated_by"] = (
            f"{self.calibration_folds}-fold cross-validation on the training data"
        )
        self.card.metrics = metrics
        return self

    def _check_labels(self, labels: Sequence[Label]) -> np.ndarray:
        if self.kind == RELEVANCE:
            if not all(isinstance(v, bool | np.bool_) for v in labels):
                raise ModelError("relevance labels must be true or false")
            # A bool array: sklearn takes an object array of bools for an unknown target type.
            return np.array([bool(v) for v in labels], dtype=bool)
        if any(not isinstance(v, str) or not v.strip() for v in labels):
            raise ModelError("routing labels must be non-empty strings")
        return np.array(list(labels), dtype=object)

    def _analyse(
        self,
        texts: list[str],
        dates: Sequence[DateLike] | None,
        progress: Progress | None,
        step: float = 1.0,
    ) -> sp.csr_matrix:
        if progress is None:
            return self.features.fit_transform(texts, dates)
        # Morphological analysis is most of the work: do it text by text so the bar moves;
        # the vectorizers then find every text's morphemes in the cache.
        analyse = self.features.blocks[0][1].build_analyzer()
        for text in texts:
            analyse(text)
            progress.update(step)
        return self.features.fit_transform(texts, dates)

    def _fit_svm(self, X: sp.csr_matrix, y: np.ndarray) -> LinearSVC:
        svm = self._new_svm()
        if len(set(y.tolist())) < 2:
            # A calibration fold of a tiny data set can hold one label only.
            raise ModelError("too few examples of each label to train and calibrate")
        svm.fit(X, y)
        return svm

    def _scores_for(self, svm: LinearSVC, X: sp.csr_matrix) -> np.ndarray:
        """Scores in the columns of self.classes_; a label the SVM never saw gets the lowest
        score of its row, so it is never ranked above a label that was seen."""
        # svm.decision_function, without its input checks (they dominate small batches).
        raw = np.asarray(X @ svm.coef_.T) + svm.intercept_
        if raw.shape[1] == 1:
            raw = np.column_stack([-raw[:, 0], raw[:, 0]])
        out = np.full((X.shape[0], len(self.classes_)), np.nan)
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        for j, label in enumerate(svm.classes_.tolist()):
            out[:, index[label]] = raw[:, j]
        floor = np.nanmin(out, axis=1, keepdims=True) - 1.0
        return np.where(np.isnan(out), floor, out)

    def _calibrate(self, oof: np.ndarray, y: np.ndarray, folds: np.ndarray) -> None:
        if self.kind == RELEVANCE:
            platt = LogisticRegression(C=1e4)
            platt.fit(oof[:, 1:2], y.astype(bool))
            self._platt = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
            return
        truth = np.array([np.flatnonzero(self.classes_ == label)[0] for label in y])
        # Examples whose label was absent from their fold's training part cannot be
        # predicted at any temperature; leaving them in would only flatten every probability.
        total = Counter(y.tolist())
        in_fold = Counter(zip(folds.tolist(), y.tolist(), strict=True))
        seen = np.array(
            [total[label] > in_fold[(fold, label)] for fold, label in zip(folds, y, strict=True)]
        )
        scores, truth = oof[seen], truth[seen]

        def loss(log_t: float) -> float:
            p = _softmax(scores, math.exp(log_t))[np.arange(len(truth)), truth]
            return float(-np.log(np.clip(p, 1e-12, None)).mean())

        best = minimize_scalar(loss, bounds=(-5.0, 3.0), method="bounded")
        self._temperature = math.exp(float(best.x))

    # --- prediction -----------------------------------------------------------------------

    def _require_fitted(self) -> LinearSVC:
        if self._svm is None:
            raise ModelError("the model is not trained")
        return self._svm

    def decision_scores(
        self, texts: Sequence[str], dates: Sequence[DateLike] | None = None
    ) -> np.ndarray:
        """Raw scores; without dates a router takes every text as written today."""
        if self.kind == RELEVANCE:
            dates = None
        svm = self._require_fitted()
        return self._scores_for(svm, self.features.transform(list(texts), dates))

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        if self.kind == RELEVANCE:
            a, b = self._platt
            p = 1.0 / (1.0 + np.exp(-(a * scores[:, 1] + b)))
            return np.column_stack([1.0 - p, p])
        return _softmax(scores, self._temperature)

    def predict_proba(
        self, texts: Sequence[str], dates: Sequence[DateLike] | None = None
    ) -> np.ndarray:
        """Calibrated probabilities, one row per text, columns in the order of `labels`."""
        return self._probabilities(self.decision_scores(texts, dates))

    @property
    def labels(self) -> list[Label]:
        return [_plain(c) for c in self.classes_]

    def predict(self, texts: Sequence[str]) -> list[Label]:
        """The most likely label of each text (for relevance: at the card's threshold)."""
        proba = self.predict_proba(texts)
        if self.kind == RELEVANCE:
            return [bool(p >= self.threshold) for p in proba[:, 1]]
        return [_plain(self.classes_[i]) for i in proba.argmax(axis=1)]

    @property
    def threshold(self) -> float:
        if self.card is None or self.card.threshold is None:
            return 0.5
        return self.card.threshold

    def relevance(self, texts: Sequence[str]) -> np.ndarray:
        """P(about city administration) of each text (a relevance model only)."""
        if self.kind != RELEVANCE:
            raise ModelError("relevance() needs a relevance model")
        return self.predict_proba(texts)[:, 1]

    def top_k(
        self, texts: Sequence[str], k: int = 3, dates: Sequence[DateLike] | None = None
    ) -> list[list[tuple[Label, float]]]:
        """The k most likely labels of each text with their probabilities, best first."""
        proba = self.predict_proba(texts, dates)
        k = max(1, min(k, len(self.classes_)))
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return [
            [(_plain(self.classes_[j]), float(row[j])) for j in best]
            for row, best in zip(proba, order, strict=True)
        ]

    def explain(self, text: str, label: Label, n: int = 5) -> list[tuple[str, float]]:
        """The terms of the text that pushed it most towards `label`, strongest first, with
        their weight (feature value times coefficient). A word counted in the title and in
        the body is one term with both weights summed; character n-grams (shown «in
        guillemets») only when no word shown already contains them."""
        svm = self._require_fitted()
        if not len(np.flatnonzero(self.classes_ == label)):
            raise ModelError(f"unknown label {label!r}")
        x = self.features.transform([text]).tocsr()
        if len(svm.classes_) == 2:
            coef = svm.coef_[0] if label == svm.classes_[1] else -svm.coef_[0]
        else:
            column = np.flatnonzero(svm.classes_ == label)
            if not len(column):
                return []  # a label the final SVM never saw (only in calibration folds)
            coef = svm.coef_[column[0]]
        names = self.features.feature_names()
        words: dict[str, float] = {}
        grams: dict[str, float] = {}
        for index, weight in zip(x.indices, x.data * coef[x.indices], strict=True):
            name = str(names[index]).removeprefix("title:")
            if name.startswith("period:"):
                continue  # the date is not a term of the text
            target = grams if name.startswith("«") else words
            target[name] = target.get(name, 0.0) + float(weight)
        ranked = sorted(
            ((name, weight) for name, weight in {**words, **grams}.items() if weight > 0),
            key=lambda item: -item[1],
        )
        chosen: list[tuple[str, float]] = []
        for name, weight in ranked:
            if name.startswith("«") and any(name.strip("«»") in word for word in words):
                continue
            chosen.append((name, round(weight, 4)))
            if len(chosen) == n:
                break
        return chosen

    # --- files ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        if self.card is None:
            raise ModelError("the model is not trained")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump({"format": FILE_FORMAT, "card": self.card.as_dict(), "model": self}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TextModel:
        """A model saved by `save`. A model file is code (a pickle): load trusted files only."""
        try:
            payload = joblib.load(Path(path))
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ModelError(f"{path} is not a triage model file: {exc}") from exc
        if (
            not isinstance(payload, dict)
            or payload.get("format") != FILE_FORMAT
            or not isinstance(payload.get("model"), cls)
        ):
            raise ModelError(f"{path} is not a triage model file of format {FILE_FORMAT}")
        return payload["model"]


def read_card(path: str | Path) -> ModelCard:
    """The card of a model file."""
    model = TextModel.load(path)
    assert model.card is not None
    return model.card


def _with_headings(
    texts: list[str], y: np.ndarray, folds: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Relevance data with the heading of every multi-field text added as an example of its
    own, in its record's fold (so no record is half in training, half tested). A filter
    learnt from whole complaints otherwise scores their tweet-length titles far lower: on
    the Incheon complaints it kept 20% of the titles at its threshold, not 98%."""
    extra = [i for i, text in enumerate(texts) if FIELD_SEPARATOR in text]
    if not extra:
        return texts, y, folds
    headings = [texts[i].partition(FIELD_SEPARATOR)[0] for i in extra]
    return texts + headings, np.concatenate([y, y[extra]]), np.concatenate([folds, folds[extra]])


def _plain(value: Any) -> Label:
    """A numpy scalar or object as the plain bool or str it stands for."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    return str(value)
