"""`sotong triage train` and `sotong triage evaluate`: train a relevance filter or a router
from labelled files, and measure one (on a file, or by cross-validation without a model)."""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sotong.triage.classifier import ModelError, TextModel, kind_for
from sotong.triage.datasets import (
    RELEVANCE_LABEL,
    Dataset,
    DatasetError,
    load_examples,
    parse_fields,
    parse_label,
)
from sotong.triage.evaluation import (
    cross_validate,
    format_report,
    relevance_metrics,
    routing_metrics,
)

DATA_HELP = """\
Data files are JSON lines (.jsonl) or CSV (.csv, with a header row). Each --data is
PATH[:TEXT_FIELDS[:LABEL_FIELD]]; the parts left out come from --text-field and
--label-field. TEXT_FIELDS may name several fields separated by commas (title,text): they
are joined with a space, and the first one also counts as the heading. The label
`relevant` trains the relevance filter and is read as true/false; any other label trains a
router. A row without the label field takes --default-label, or is an error.

Relevance from sets with different fields, e.g. complaint titles against chatter:

  sotong triage train --label-field relevant --model relevance.joblib \\
      --data complaints.jsonl:title --data chatter.jsonl:text

or, when the chatter has no `relevant` field at all:

  sotong triage train --label-field relevant --model relevance.joblib \\
      --data complaints.jsonl:title --relevant-negatives chatter.jsonl:text
"""


@dataclass(frozen=True)
class DataSpec:
    path: Path
    text_fields: tuple[str, ...]
    label_field: str


def parse_spec(spec: str, text_field: str, label_field: str | None) -> DataSpec:
    """PATH[:TEXT_FIELDS[:LABEL_FIELD]]; a path that itself holds a colon still works."""
    parts = spec.split(":")
    most = min(2, len(parts) - 1)
    extra = next(
        (k for k in range(most + 1) if Path(":".join(parts[: len(parts) - k])).is_file()), most
    )
    path = ":".join(parts[: len(parts) - extra])
    tail = parts[len(parts) - extra :]
    fields = parse_fields(tail[0] if len(tail) >= 1 and tail[0] else text_field)
    label = tail[1] if len(tail) >= 2 and tail[1] else label_field
    if not label:
        raise CommandError(f"{spec}: no label field (give --label-field)")
    return DataSpec(Path(path), fields, label)


class Command(BaseCommand):
    help = "Train and evaluate the trained triage models (relevance filter, router)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        parser.epilog = DATA_HELP
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(
            dest="action",
            required=True,
            metavar="train|evaluate|retrain|bootstrap|rollback|models",
        )
        retrain = actions.add_parser(
            "retrain",
            help="train candidates on the project's examples, the city's answered cases and "
            "every correction; promote each only if it is not worse on the held-out slice",
        )
        retrain.add_argument("--force", action="store_true", help="promote even if worse")
        actions.add_parser("bootstrap", help="train the first models if none is active")
        rollback = actions.add_parser("rollback", help="make the previously active model active")
        rollback.add_argument("kind", choices=["relevance", "routing"])
        actions.add_parser("models", help="list the trained models")

        train = actions.add_parser(
            "train",
            help="train a model from labelled files and save it",
            epilog=DATA_HELP,
            formatter_class=RawDescriptionHelpFormatter,
        )
        self._data_arguments(train, label_required=True)
        train.add_argument("--model", required=True, help="the model file to write (.joblib)")
        train.add_argument("--C", type=float, default=0.3, help="SVM regularisation (0.3)")
        train.add_argument(
            "--calibration-folds",
            type=int,
            default=5,
            help="folds of the out-of-fold scores that calibrate probabilities (5)",
        )
        train.add_argument(
            "--target-recall",
            type=float,
            default=0.98,
            help="relevance: the threshold keeps at least this recall on the training data",
        )

        evaluate = actions.add_parser(
            "evaluate",
            help="measure a model on labelled files, or cross-validate without one",
            epilog=DATA_HELP,
            formatter_class=RawDescriptionHelpFormatter,
        )
        self._data_arguments(evaluate, label_required=False)
        which = evaluate.add_mutually_exclusive_group(required=True)
        which.add_argument("--model", help="the model file to evaluate")
        which.add_argument(
            "--cv",
            type=int,
            metavar="K",
            help="k-fold cross-validation of a new model on the data (no model needed)",
        )
        evaluate.add_argument("--json", help="also write the metrics to this JSON file")
        evaluate.add_argument("--C", type=float, default=0.3, help="with --cv: as for train")

    def _data_arguments(self, parser: ArgumentParser, *, label_required: bool) -> None:
        parser.add_argument(
            "--data",
            action="append",
            required=True,
            metavar="PATH[:FIELDS[:LABEL]]",
            help="a labelled data file; repeat for several",
        )
        parser.add_argument(
            "--text-field", default="text", help="text field(s), comma-separated (text)"
        )
        parser.add_argument(
            "--label-field",
            required=label_required,
            help="the label: `relevant`, or a routing label such as unit"
            + ("" if label_required else " (default: the model's)"),
        )
        parser.add_argument("--default-label", help="the label of rows that lack the label field")
        parser.add_argument(
            "--date-field",
            help="routing: the field holding when each text was written (YYYY-MM-DD …); the "
            "router learns which unit owned a matter when (units are renamed) and routes new "
            "messages as of today",
        )
        parser.add_argument(
            "--relevant-negatives",
            action="append",
            default=[],
            metavar="PATH[:FIELDS]",
            help="relevance only: every row of this file is not relevant",
        )
        parser.add_argument(
            "--relevant-positives",
            action="append",
            default=[],
            metavar="PATH[:FIELDS]",
            help="relevance only: every row of this file is relevant",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] in {"retrain", "bootstrap", "rollback", "models"}:
            self.manage_product_models(options)
            return
        try:
            if options["action"] == "train":
                self.train(options)
            elif options["cv"] is not None:
                self.cross_validate(options)
            else:
                self.evaluate(options)
        except (DatasetError, ModelError) as exc:
            raise CommandError(str(exc)) from exc

    def manage_product_models(self, options: dict[str, Any]) -> None:
        """The product's own models, kept in the registry (see sotong.triage.training)."""
        from sotong.triage import registry, training
        from sotong.triage.models import TrainedModel

        action = options["action"]
        if action == "retrain":
            for result in training.retrain_all(force=options["force"]):
                self.stdout.write(str(result))
        elif action == "bootstrap":
            results = training.bootstrap()
            for result in results:
                self.stdout.write(str(result))
            if not results:
                self.stdout.write("Active triage models exist; nothing to do.")
        elif action == "rollback":
            try:
                restored = registry.rollback(options["kind"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{restored.kind} model {restored.version} is active again")
        else:
            for model in TrainedModel.objects.all():
                held = model.metrics.get("held_out", {})
                self.stdout.write(
                    f"{'*' if model.active else ' '} {model.kind:9} {model.version:45} "
                    f"n={model.n_examples:<6} held-out={held} {model.note}"
                )

    # --- data -------------------------------------------------------------------------------

    def load(self, options: dict[str, Any], label_field: str) -> Dataset:
        for option in ("relevant_negatives", "relevant_positives"):
            if options[option] and label_field != RELEVANCE_LABEL:
                raise CommandError(f"--{option.replace('_', '-')} needs --label-field relevant")
        data = Dataset()
        default = options["default_label"]
        for spec in options["data"]:
            parsed = parse_spec(spec, options["text_field"], label_field)
            if parsed.label_field != label_field:
                raise CommandError(
                    f"{spec}: label {parsed.label_field!r} differs from {label_field!r}; "
                    "one model learns one label"
                )
            label = parse_label(default, label_field, "--default-label") if default else None
            data.extend(
                load_examples(
                    parsed.path, parsed.text_fields, label_field, label, options["date_field"]
                )
            )
        for option, value in (("relevant_negatives", False), ("relevant_positives", True)):
            for spec in options[option]:
                parsed = parse_spec(spec, options["text_field"], "__none__")
                data.extend(load_examples(parsed.path, parsed.text_fields, "__none__", value))
        if not len(data):
            raise CommandError("the data holds no labelled text")
        if data.skipped_blank and options["verbosity"] > 0:
            self.stderr.write(f"skipped {data.skipped_blank} rows with no text")
        return data

    def _bar(self, options: dict[str, Any], total: int, desc: str) -> Any:
        from tqdm import tqdm

        return tqdm(
            total=total, desc=desc, unit="step", disable=options["verbosity"] == 0, file=sys.stderr
        )

    # --- actions ----------------------------------------------------------------------------

    def train(self, options: dict[str, Any]) -> None:
        label_field = options["label_field"]
        data = self.load(options, label_field)
        model = TextModel(
            kind_for(label_field),
            label_field,
            C=options["C"],
            calibration_folds=options["calibration_folds"],
            target_recall=options["target_recall"],
        )
        total = TextModel.progress_total(len(data), options["calibration_folds"])
        with self._bar(options, total, "training") as bar:
            model.fit(data.texts, data.labels, dates=data.dates, progress=bar)
        path = model.save(options["model"])
        card = model.card
        assert card is not None
        self.stdout.write(
            f"{card.version}: {card.n_examples} examples, {len(card.labels)} labels, "
            f"data sha256 {card.data_sha256[:12]}… → {path}"
        )
        self.stdout.write(
            format_report(card.metrics, f"estimated by {card.metrics['estimated_by']}")
        )

    def cross_validate(self, options: dict[str, Any]) -> None:
        label_field = options["label_field"]
        if not label_field:
            raise CommandError("--cv needs --label-field")
        folds = options["cv"]
        data = self.load(options, label_field)
        kind = kind_for(label_field)
        with self._bar(options, folds, "cross-validating") as bar:
            result = cross_validate(
                data.texts,
                data.labels,
                lambda: TextModel(kind, label_field, C=options["C"]),
                folds=folds,
                on_fold=lambda _: bar.update(1),
                dates=data.dates,
            )
        self.report(options, result.metrics, {"kind": kind, "label_field": label_field})

    def evaluate(self, options: dict[str, Any]) -> None:
        try:
            model = TextModel.load(options["model"])
        except FileNotFoundError as exc:
            raise CommandError(f"{options['model']}: no such model file") from exc
        card = model.card
        assert card is not None
        label_field = options["label_field"] or card.label_field
        if label_field != card.label_field:
            raise CommandError(f"the model predicts {card.label_field!r}, not {label_field!r}")
        data = self.load(options, label_field)
        proba = model.predict_proba(data.texts, data.dates)
        if model.kind == "relevance":
            metrics = relevance_metrics(
                [bool(v) for v in data.labels], proba[:, 1], model.threshold
            )
        else:
            metrics = routing_metrics(data.labels, proba, model.labels)
            unknown = sorted({str(v) for v in data.labels} - {str(v) for v in model.labels})
            metrics["labels_unknown_to_model"] = unknown
        self.report(
            options,
            metrics,
            {"kind": model.kind, "label_field": label_field, "model": card.as_dict()},
        )

    def report(
        self, options: dict[str, Any], metrics: dict[str, Any], about: dict[str, Any]
    ) -> None:
        title = f"{about['kind']} · {about['label_field']} · {', '.join(options['data'])}"
        self.stdout.write(format_report(metrics, title))
        if options.get("json"):
            path = Path(options["json"])
            path.parent.mkdir(parents=True, exist_ok=True)
            document = {**metrics, **about, "data": options["data"]}
            path.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
            self.stdout.write(f"wrote {path}")
