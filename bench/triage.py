"""Sotong's triage benchmark: how well the trained engine routes and filters real Korean
complaints (cross-validation on ../shared/data, next to the plain baseline), and how fast it
is on one core (messages per second, model load time, memory).

    .venv/bin/python bench/triage.py [--folds 5] [--quick]

Writes bench/results/triage-<UTC time>.json and bench/results/triage-latest.json and prints
a summary. The data is read where it lies (never copied); SOTONG_SHARED_DATA points elsewhere.
"""

from __future__ import annotations

import os

# One core: the figures are per core, and BLAS threads would blur them.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sotong.triage import text_features  # noqa: E402
from sotong.triage.classifier import TextModel  # noqa: E402
from sotong.triage.datasets import FIELD_SEPARATOR, Dataset, load_examples  # noqa: E402
from sotong.triage.evaluation import (  # noqa: E402
    cross_validate,
    fold_assignment,
    recall_at_precision,
)

DATA = Path(os.environ.get("SOTONG_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS_DIR = ROOT / "bench" / "results"
SEED = 0

# Relevance: complaint titles (tweet-length) against what else reaches a city's accounts.
POSITIVE_TITLES = (
    ("incheon-junggu-minwon", "title"),
    ("ongjin-complaint-titles", "text"),
    ("epeople-qna-titles", "text"),
)
NEGATIVES = (
    ("korean-chatter", "text"),
    ("kocasm-tweets", "text"),
    ("kmhas-news-comments", "text"),
    ("kocohub-entertainment-comments", "text"),
    ("kr-newspaper-tweets", "text"),
)
# Proposals to Seoul: more positives in another voice, for training only (never tested).
EXTRA_POSITIVES = (("seoul-democracy-proposals", "title"),)

TARGETS = {
    "function_top1": 0.75,
    "function_top3": 0.92,
    "unit_top1": 0.55,
    "unit_top3": 0.75,
    "relevance_recall_at_precision_95": 0.98,
    "function_coverage_at_precision_90": 0.40,
    "tweet_messages_per_second": 2000,
}


def load(
    name: str,
    fields: Sequence[str],
    label_field: str,
    limit: int | None = None,
    date_field: str | None = None,
) -> Dataset:
    path = DATA / name / "train.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} is absent: the shared datasets live beside the repository")
    data = load_examples(path, tuple(fields), label_field, date_field=date_field)
    if limit is not None:
        data.examples = data.examples[:limit]
    return data


class Baseline:
    """The issue's baseline: character n-gram TF-IDF and a linear SVM, nothing else."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))
        self.svm = LinearSVC()

    @property
    def labels(self) -> list[Any]:
        return list(self.svm.classes_)

    @property
    def threshold(self) -> float:
        return 0.5

    def fit(
        self, texts: Sequence[str], labels: Sequence[Any], *, dates: Sequence[Any] | None = None
    ) -> Baseline:
        # The baseline reads the text alone: dates, where the data has them, are ignored.
        plain = [t.replace(FIELD_SEPARATOR, " ") for t in texts]
        self.svm.fit(self.vectorizer.fit_transform(plain), np.array(labels))
        return self

    def predict_proba(self, texts: Sequence[str], dates: Sequence[Any] | None = None) -> np.ndarray:
        plain = [t.replace(FIELD_SEPARATOR, " ") for t in texts]
        scores = self.svm.decision_function(self.vectorizer.transform(plain))
        if scores.ndim == 1:  # a monotone squash is enough for rankings and thresholds
            p = 1 / (1 + np.exp(-scores))
            return np.column_stack([1 - p, p])
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def brief(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "top1", "top3", "macro_f1", "coverage_at_precision", "calibration_error")
    keep_rel = ("n", "precision", "recall", "f1", "recall_at_precision_95", "threshold")
    return {k: metrics[k] for k in (keep_rel if "recall" in metrics else keep) if k in metrics}


# --- routing ----------------------------------------------------------------------------------


def routing(folds: int, limit: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in ("function", "unit"):
        data = load("incheon-junggu-minwon", ("title", "text"), label, limit, "date")
        started = time.perf_counter()
        engine = cross_validate(
            data.texts,
            data.labels,
            lambda label=label: TextModel("routing", label),
            folds=folds,
            dates=data.dates,
        )
        seconds = time.perf_counter() - started
        baseline = cross_validate(data.texts, data.labels, lambda: Baseline("routing"), folds=folds)
        # The same engine reading the text alone: what the date of posting adds.
        text_only = cross_validate(
            data.texts, data.labels, lambda label=label: TextModel("routing", label), folds=folds
        )
        out[label] = {
            **engine.metrics,
            "seconds": round(seconds, 1),
            "baseline": brief(baseline.metrics),
            "text_only": brief(text_only.metrics),
            "command": (
                f"sotong triage evaluate --cv {folds} --data {DATA}/incheon-junggu-minwon/"
                f"train.jsonl --text-field title,text --label-field {label} --date-field date"
            ),
        }
        print(f"  {label}: top-1 {engine.metrics['top1']:.3f} ({seconds:.0f} s)", flush=True)
    return out


# --- relevance --------------------------------------------------------------------------------


def relevance_data(limit: int | None) -> tuple[list[str], list[bool], list[str], Dataset]:
    texts: list[str] = []
    labels: list[bool] = []
    sources: list[str] = []
    for name, field in POSITIVE_TITLES + NEGATIVES:
        data = load(name, (field,), "relevant", limit)
        texts += data.texts
        labels += [bool(v) for v in data.labels]
        sources += [name] * len(data)
    extra = Dataset()
    for name, field in EXTRA_POSITIVES:
        extra.extend(load(name, (field,), "relevant", limit))
    return texts, labels, sources, extra


def length_only_auc(lengths: np.ndarray, truth: np.ndarray, folds: np.ndarray) -> float:
    """How well length alone separates the classes (cross-validated): 0.5 is not at all."""
    features = np.column_stack([np.log1p(lengths), lengths / 100.0])
    p = np.zeros(len(truth))
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        model = LogisticRegression().fit(features[train], truth[train])
        p[test] = model.predict_proba(features[test])[:, 1]
    return round(float(roc_auc_score(truth, p)), 4)


def length_matched(lengths: np.ndarray, truth: np.ndarray, width: int = 4) -> np.ndarray:
    """Indices of a subset in which relevant and other texts have the same length
    distribution: per bin of `width` characters, as many of each as the rarer one has."""
    rng = np.random.default_rng(SEED)
    bins = np.minimum(lengths // width, 100 // width)
    chosen: list[np.ndarray] = []
    for b in np.unique(bins):
        pos = np.flatnonzero((bins == b) & truth)
        neg = np.flatnonzero((bins == b) & ~truth)
        k = min(len(pos), len(neg))
        if k:
            chosen += [rng.choice(pos, k, replace=False), rng.choice(neg, k, replace=False)]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)


def subset_figures(
    p: np.ndarray, truth: np.ndarray, index: np.ndarray, baseline: np.ndarray
) -> dict[str, Any]:
    r95, _ = recall_at_precision(truth[index], p[index], 0.95)
    b95, _ = recall_at_precision(truth[index], baseline[index], 0.95)
    return {
        "n": int(len(index)),
        "n_relevant": int(truth[index].sum()),
        "recall_at_precision_95": round(r95, 4),
        "roc_auc": round(float(roc_auc_score(truth[index], p[index])), 4),
        "baseline_recall_at_precision_95": round(b95, 4),
    }


def relevance(folds: int, limit: int | None) -> dict[str, Any]:
    texts, labels, sources, extra = relevance_data(limit)
    truth = np.array(labels, dtype=bool)
    started = time.perf_counter()
    engine = cross_validate(
        texts,
        labels,
        lambda: TextModel("relevance", "relevant"),
        folds=folds,
        extra_train=(extra.texts, extra.labels),
    )
    seconds = time.perf_counter() - started
    print(f"  engine: {seconds:.0f} s", flush=True)
    baseline = cross_validate(texts, labels, lambda: Baseline("relevance"), folds=folds)
    p = engine.proba
    assert engine.thresholds is not None
    flagged = p >= engine.thresholds
    src = np.array(sources)
    per_source = {
        name: {
            "n": int((src == name).sum()),
            "relevant": bool(truth[src == name][0]),
            "flagged_share": round(float(flagged[src == name].mean()), 4),
        }
        for name in dict.fromkeys(sources)
    }

    lengths = np.array([len(t) for t in texts])
    fold_of = fold_assignment(labels, folds, SEED)
    matched = length_matched(lengths, truth)
    short = np.flatnonzero(lengths <= 20)
    length_check = {
        "median_chars_relevant": float(np.median(lengths[truth])),
        "median_chars_other": float(np.median(lengths[~truth])),
        "length_only_roc_auc": length_only_auc(lengths, truth, fold_of),
        "engine_roc_auc": round(float(roc_auc_score(truth, p)), 4),
        "length_matched": {
            **subset_figures(p, truth, matched, baseline.proba),
            "length_only_roc_auc": length_only_auc(
                lengths[matched], truth[matched], fold_of[matched]
            ),
            "how": "per 4-character length bin, as many relevant as other texts (seeded sample)",
        },
        "up_to_20_chars": subset_figures(p, truth, short, baseline.proba),
    }
    return {
        **engine.metrics,
        "seconds": round(seconds, 1),
        "positives": [f"{name} ({field})" for name, field in POSITIVE_TITLES],
        "negatives": [f"{name} ({field})" for name, field in NEGATIVES],
        "train_only_positives": [f"{name} ({field})" for name, field in EXTRA_POSITIVES],
        "per_source": per_source,
        "length_check": length_check,
        "baseline": brief(baseline.metrics),
    }


def relevance_as_in_the_issue(folds: int, limit: int | None) -> dict[str, Any]:
    """The issue's setting: a filter trained on whole complaints (title and body) and on
    everyday chatter, then asked about complaint titles alone (tweet-length) and unseen
    chatter. What it measures is whether a filter learnt from long posts holds on short
    messages."""
    whole = load("incheon-junggu-minwon", ("title", "text"), "relevant", limit)
    titles = load("incheon-junggu-minwon", ("title",), "relevant", limit)
    chatter = load("korean-chatter", ("text",), "relevant", limit)
    assert len(whole) == len(titles)
    labels = [True] * len(whole) + [False] * len(chatter)
    train_texts = whole.texts + chatter.texts
    test_texts = titles.texts + chatter.texts
    truth = np.array(labels)
    fold_of = fold_assignment(labels, folds, SEED)
    out: dict[str, Any] = {"n": len(labels), "n_relevant": len(whole)}
    factories: dict[str, Any] = {
        "engine": lambda: TextModel("relevance", "relevant"),
        "baseline": lambda: Baseline("relevance"),
    }
    for name, make in factories.items():
        p = np.zeros(len(labels))
        flagged = np.zeros(len(labels), dtype=bool)
        for fold in range(folds):
            train = np.flatnonzero(fold_of != fold)
            test = np.flatnonzero(fold_of == fold)
            model = make().fit([train_texts[i] for i in train], [labels[i] for i in train])
            p[test] = model.predict_proba([test_texts[i] for i in test])[:, 1]
            flagged[test] = p[test] >= model.threshold
        r95, _ = recall_at_precision(truth, p, 0.95)
        out[name] = {
            "recall_at_precision_95": round(r95, 4),
            "roc_auc": round(float(roc_auc_score(truth, p)), 4),
            "recall_at_own_threshold": round(float(flagged[truth].mean()), 4),
            "false_alarms_at_own_threshold": round(float(flagged[~truth].mean()), 4),
        }
    return out


# --- speed ------------------------------------------------------------------------------------


def messages_per_second(run: Any, texts: Sequence[str]) -> dict[str, float]:
    """Per message, as the worker decides them, and in one batch; CPU time of this process."""
    text_features.word_morphemes.cache_clear()
    text_features.normalize.cache_clear()
    started = time.process_time()
    for text in texts:
        run([text])
    single = len(texts) / (time.process_time() - started)
    text_features.word_morphemes.cache_clear()
    text_features.normalize.cache_clear()
    started = time.process_time()
    run(list(texts))
    batch = len(texts) / (time.process_time() - started)
    return {"one_at_a_time": round(single, 1), "batch": round(batch, 1)}


LOAD_PROBE = """
import json, resource, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
from sotong.triage.classifier import TextModel
t1 = time.perf_counter(); base = rss()
model = TextModel.load(sys.argv[1])
t2 = time.perf_counter(); loaded = rss()
model.predict_proba(["버스 정류장 안내판이 고장났어요"])
t3 = time.perf_counter()
print(json.dumps({"import_seconds": round(t1 - t0, 3), "load_seconds": round(t2 - t1, 3),
    "first_prediction_seconds": round(t3 - t2, 3), "rss_mb_before_load": round(base, 1),
    "rss_mb_after_load": round(loaded, 1), "rss_mb_after_first_prediction": round(rss(), 1),
    "model_mb": round(rss() - base, 1)}))
"""


def speed(limit: int | None) -> dict[str, Any]:
    texts, labels, _, extra = relevance_data(limit)
    rel = TextModel("relevance", "relevant").fit(texts + extra.texts, labels + extra.labels)
    complaints = load("incheon-junggu-minwon", ("title", "text"), "function", limit)
    fn = TextModel("routing", "function").fit(complaints.texts, complaints.labels)
    rel.predict_proba(["워밍업"])  # the analyser's first call loads its model (timed below)

    # Tweet-length: a seeded sample of the short texts (titles and chatter alike).
    short = [t for t in texts if len(t) <= 140]
    tweets = [short[i] for i in np.random.default_rng(SEED).permutation(len(short))[:2000]]
    posts = [t.replace(FIELD_SEPARATOR, " ") for t in complaints.texts[:300]]

    def both(batch: list[str]) -> None:
        rel.predict_proba(batch)
        fn.top_k(batch, 3)

    def triage(batch: list[str]) -> None:
        # As the product does it: every message through the filter, the flagged ones routed.
        flagged = rel.relevance(batch) >= rel.threshold
        fn.top_k([t for t, keep in zip(batch, flagged, strict=True) if keep], 3)

    out: dict[str, Any] = {
        "tweet_mean_chars": round(float(np.mean([len(t) for t in tweets])), 1),
        "post_mean_chars": round(float(np.mean([len(t) for t in posts])), 1),
    }
    for name, sample in (("tweet", tweets), ("post", posts)):
        out[name] = {
            "features_only": messages_per_second(rel.features.transform, sample),
            "relevance": messages_per_second(rel.predict_proba, sample),
            "routing": messages_per_second(lambda b: fn.top_k(b, 3), sample),
            "relevance_and_routing": messages_per_second(both, sample),
            "triage": messages_per_second(triage, sample),
        }
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (("relevance", rel), ("routing", fn)):
            path = model.save(Path(tmp) / f"{name}.joblib")
            probe = subprocess.run(
                [sys.executable, "-c", LOAD_PROBE, str(path)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            out[f"{name}_model"] = {
                **json.loads(probe.stdout.strip().splitlines()[-1]),
                "file_mb": round(path.stat().st_size / 2**20, 1),
                "n_features": int(model.features.transform(["가"]).shape[1]),
            }
    return out


# --- report -----------------------------------------------------------------------------------


def met(value: float, target: float) -> dict[str, Any]:
    return {"value": value, "target": target, "met": bool(value >= target)}


def environment() -> dict[str, Any]:
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        revision = ""
    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "git_revision": revision,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="400 rows a set: a smoke run")
    args = parser.parse_args(argv)
    limit = 400 if args.quick else None

    started = time.perf_counter()
    print("routing (incheon-junggu-minwon, title + text) …", flush=True)
    routing_results = routing(args.folds, limit)
    print("relevance (complaint titles against chatter) …", flush=True)
    relevance_results = relevance(args.folds, limit)
    print("relevance as in the issue (trained on whole complaints, tested on titles) …")
    relevance_results["as_in_the_issue"] = relevance_as_in_the_issue(args.folds, limit)
    print("speed …", flush=True)
    speed_results = speed(limit)

    fn, unit = routing_results["function"], routing_results["unit"]
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "folds": args.folds,
        "routing": routing_results,
        "relevance": relevance_results,
        "speed": speed_results,
        "targets": {
            "function_top1": met(fn["top1"], TARGETS["function_top1"]),
            "function_top3": met(fn["top3"], TARGETS["function_top3"]),
            "unit_top1": met(unit["top1"], TARGETS["unit_top1"]),
            "unit_top3": met(unit["top3"], TARGETS["unit_top3"]),
            "relevance_recall_at_precision_95": met(
                relevance_results["recall_at_precision_95"],
                TARGETS["relevance_recall_at_precision_95"],
            ),
            "function_coverage_at_precision_90": met(
                fn["coverage_at_precision"]["0.90"], TARGETS["function_coverage_at_precision_90"]
            ),
            "tweet_messages_per_second": met(
                speed_results["tweet"]["triage"]["batch"],
                TARGETS["tweet_messages_per_second"],
            ),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "environment": environment(),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    (RESULTS_DIR / f"triage-{stamp}.json").write_text(text)
    (RESULTS_DIR / "triage-latest.json").write_text(text)
    print_summary(result)
    return 0


def print_summary(result: dict[str, Any]) -> None:
    print()
    print(f"{'measure':<42} {'engine':>8} {'baseline':>9} {'target':>8}  met")
    for label in ("function", "unit"):
        r = result["routing"][label]
        for key in ("top1", "top3"):
            target = result["targets"].get(f"{label}_{key}", {}).get("target", "")
            print(
                f"{label + ' ' + key:<42} {r[key]:>8.3f} {r['baseline'][key]:>9.3f} "
                f"{target!s:>8}  {result['targets'].get(f'{label}_{key}', {}).get('met', '')}"
            )
        coverage = r["coverage_at_precision"]["0.90"]
        base = r["baseline"]["coverage_at_precision"]["0.90"]
        print(f"{label + ' routed at 90% precision':<42} {coverage:>8.3f} {base:>9.3f}")
    rel = result["relevance"]
    t = result["targets"]["relevance_recall_at_precision_95"]
    print(
        f"{'relevance recall at 95% precision':<42} {rel['recall_at_precision_95']:>8.3f} "
        f"{rel['baseline']['recall_at_precision_95']:>9.3f} {t['target']:>8}  {t['met']}"
    )
    matched = rel["length_check"]["length_matched"]
    print(
        f"{'  … on length-matched titles':<42} {matched['recall_at_precision_95']:>8.3f} "
        f"{matched['baseline_recall_at_precision_95']:>9.3f}"
    )
    short = rel["length_check"]["up_to_20_chars"]
    print(
        f"{'  … on texts of up to 20 characters':<42} {short['recall_at_precision_95']:>8.3f} "
        f"{short['baseline_recall_at_precision_95']:>9.3f}"
    )
    issue = rel["as_in_the_issue"]
    print(
        f"{'  trained on whole complaints, tested on titles':<42} "
        f"{issue['engine']['recall_at_precision_95']:>8.3f} "
        f"{issue['baseline']['recall_at_precision_95']:>9.3f}"
    )
    print(
        f"{'  length alone (ROC AUC, all / matched)':<42} "
        f"{rel['length_check']['length_only_roc_auc']:>8.3f} "
        f"{matched['length_only_roc_auc']:>9.3f}"
    )
    print(
        f"{'relevance at its threshold (prec / recall)':<42} "
        f"{rel['precision']:>8.3f} {rel['recall']:>9.3f}"
    )
    s = result["speed"]
    print(f"{'messages/s, one core':<42} {'each':>8} {'batch':>9}")
    for name in ("tweet", "post"):
        for step in ("features_only", "relevance", "relevance_and_routing", "triage"):
            v = s[name][step]
            print(
                f"{'  ' + name + ' ' + step.replace('_', ' '):<42} "
                f"{v['one_at_a_time']:>8.0f} {v['batch']:>9.0f}"
            )
    for name in ("relevance_model", "routing_model"):
        m = s[name]
        print(
            f"{name.replace('_', ' ') + ' load s / first call s / MB':<42} "
            f"{m['load_seconds']:>8.2f} {m['first_prediction_seconds']:>9.2f} "
            f"{m['model_mb']:>8.0f}"
        )
    print(f"\n{result['seconds']:.0f} s; bench/results/triage-latest.json")


if __name__ == "__main__":
    raise SystemExit(main())
