"""How the product's out-of-the-box relevance filter does on real data it never saw: the
filter `make run` trains from the written seed examples alone (sotong/triage/data/
seed_examples.yaml), measured on real complaint titles and on real chatter, news comments,
fan talk and tweets from ../shared/data.

    .venv/bin/python bench/default_model.py [--limit 300]

Writes bench/results/default-model-latest.json and prints a summary. The data is read where
it lies (never copied); SOTONG_SHARED_DATA points elsewhere. `bench/triage.py` measures the
filter trained on the shared data itself (cross-validated); this measures the one a fresh
installation actually runs with.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# sotong.triage.examples reads the seed file but also knows the case models: Django must be
# set up to import it (no database is opened).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sotong.settings")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import django  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

django.setup()

from sotong.triage.classifier import RELEVANCE, RELEVANCE_LABEL_FIELD, TextModel  # noqa: E402
from sotong.triage.datasets import read_records  # noqa: E402
from sotong.triage.evaluation import relevance_metrics  # noqa: E402
from sotong.triage.examples import seed_examples  # noqa: E402
from sotong.triage.training import labelled  # noqa: E402

DATA = Path(os.environ.get("SOTONG_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results" / "default-model-latest.json"

# (folder, text field, relevant): complaint titles are tweet-length, like what a city's
# accounts receive; the negatives are what else reaches them.
SOURCES = (
    ("incheon-junggu-minwon", "title", True),
    ("ongjin-complaint-titles", "text", True),
    ("epeople-qna-titles", "text", True),
    ("korean-chatter", "text", False),
    ("kocasm-tweets", "text", False),
    ("kmhas-news-comments", "text", False),
    ("kocohub-entertainment-comments", "text", False),
    ("kr-newspaper-tweets", "text", False),
)
# About one message in ten that reach a city's accounts is city business: the precision the
# triage queue would see at that mix, whatever the mix of the benchmark's sources.
PREVALENCE = 0.10


@dataclass
class Source:
    name: str
    relevant: bool
    texts: list[str]
    kinds: list[str]  # the set's own `kind` tag (or the sub-corpus), for the breakdown


def default_relevance_model() -> TextModel:
    """The relevance filter exactly as `sotong triage bootstrap` trains it on a fresh
    installation: every seed example, the product's default model settings."""
    data = labelled(seed_examples(), RELEVANCE)
    return TextModel(RELEVANCE, RELEVANCE_LABEL_FIELD).fit(data.texts, data.labels)


def kind_of(record: dict[str, Any]) -> str:
    """The set's own tag of a row, for the breakdown: `kind` where the set has one, sentence
    or headline for the e-People titles, else the sub-corpus named in its id."""
    if record.get("kind"):
        return str(record["kind"])
    if "sentence_like" in record:
        return "sentence" if record["sentence_like"] else "headline"
    return str(record.get("id", "")).split("-")[0]


def load_sources(data_dir: Path = DATA, limit: int | None = None) -> list[Source]:
    """The first `limit` non-empty rows of each source's training part."""
    sources = []
    for name, field, relevant in SOURCES:
        path = data_dir / name / "train.jsonl"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is absent: the shared datasets live beside the repository"
            )
        texts: list[str] = []
        kinds: list[str] = []
        for _, record in read_records(path):
            text = str(record.get(field) or "").strip()
            if not text:
                continue
            texts.append(text)
            kinds.append(kind_of(record))
            if limit is not None and len(texts) >= limit:
                break
        sources.append(Source(name, relevant, texts, kinds))
    return sources


def measure(model: TextModel, sources: list[Source]) -> dict[str, Any]:
    """Per source the share flagged at the model's threshold; overall precision, recall and
    F1 there, recall at 95% precision and ROC AUC."""
    per_source: dict[str, Any] = {}
    truth_parts, p_parts = [], []
    threshold = model.threshold
    for source in sources:
        p = model.relevance(source.texts)
        flagged = p >= threshold
        kinds = np.array(source.kinds)
        per_source[source.name] = {
            "n": len(source.texts),
            "relevant": source.relevant,
            "flagged_share": round(float(flagged.mean()), 4),
            "by_kind": {
                kind: round(float(flagged[kinds == kind].mean()), 4)
                for kind, _ in Counter(source.kinds).most_common()
            }
            if len(set(source.kinds)) > 1
            else {},
        }
        truth_parts.append(np.full(len(p), source.relevant))
        p_parts.append(p)
    truth = np.concatenate(truth_parts)
    p = np.concatenate(p_parts)
    metrics = relevance_metrics(truth, p, threshold)
    recall = float((p[truth] >= threshold).mean())
    false_alarm = float((p[~truth] >= threshold).mean())
    flagged_relevant = recall * PREVALENCE
    flagged_other = false_alarm * (1 - PREVALENCE)
    return {
        "n": metrics["n"],
        "n_relevant": metrics["n_relevant"],
        "threshold": round(threshold, 6),
        "precision": metrics["precision"],
        "recall": metrics["recall"],
        "f1": metrics["f1"],
        "false_alarm_rate": round(false_alarm, 4),
        "precision_at_10pct_relevant": round(
            flagged_relevant / (flagged_relevant + flagged_other) if flagged_relevant else 0.0, 4
        ),
        "recall_at_precision_95": metrics["recall_at_precision_95"],
        "threshold_at_precision_95": metrics["threshold_at_precision_95"],
        "roc_auc": round(float(roc_auc_score(truth, p)), 4),
        "per_source": per_source,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="rows per source (default: all)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    try:
        sources = load_sources(DATA, args.limit)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from exc
    started = time.perf_counter()
    model = default_relevance_model()
    training_seconds = time.perf_counter() - started
    assert model.card is not None
    seeds = seed_examples()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {
            "version": model.card.version,
            "seed_examples": len(seeds),
            "seed_relevant": sum(e.relevant for e in seeds),
            "threshold": round(model.threshold, 6),
            "training_seconds": round(training_seconds, 1),
            "on_its_training_data": {
                k: model.card.metrics[k]
                for k in ("precision", "recall", "f1")
                if k in model.card.metrics
            },
        },
        "limit_per_source": args.limit,
        "data": str(DATA),
        **measure(model, sources),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print_summary(result)
    print(f"\nwritten to {args.output}")
    return 0


def print_summary(result: dict[str, Any]) -> None:
    model = result["model"]
    print(
        f"default relevance filter: {model['seed_examples']} seed examples "
        f"({model['seed_relevant']} relevant), threshold {model['threshold']:.4f}, "
        f"trained in {model['training_seconds']} s"
    )
    print(f"\n{'source':<34} {'n':>6}  flagged")
    for name, row in result["per_source"].items():
        tag = "complaints" if row["relevant"] else "not city business"
        print(f"{name:<34} {row['n']:>6}  {row['flagged_share']:>6.1%}  ({tag})")
        for kind, share in row["by_kind"].items():
            print(f"{'  ' + kind:<34} {'':>6}  {share:>6.1%}")
    print()
    for key in (
        "precision",
        "recall",
        "f1",
        "false_alarm_rate",
        "precision_at_10pct_relevant",
        "recall_at_precision_95",
        "roc_auc",
    ):
        print(f"{key:<34} {result[key]:>8.4f}")


if __name__ == "__main__":
    raise SystemExit(main())
