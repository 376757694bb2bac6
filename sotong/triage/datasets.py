"""Labelled texts for training and evaluating triage models: JSON lines or CSV files, one or
several text fields per record, the label `relevant` read as a boolean; the hash that names
the training data in a model card, and a deterministic held-out split.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sotong.triage.periods import PeriodError, year_of
from sotong.triage.text_features import FIELD_SEPARATOR

RELEVANCE_LABEL = "relevant"
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}

Label = str | bool


class DatasetError(ValueError):
    """A data file cannot be read as labelled texts; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    """One labelled text. Several fields are joined by FIELD_SEPARATOR (the first one is the
    heading); `source` is `file:line` for error messages and reports; `date` is when it was
    written, where the data says (a router learns which unit owned a matter when)."""

    text: str
    label: Label
    source: str = ""
    date: str | None = None


@dataclass
class Dataset:
    """The examples read from one or more files, and how many rows had no text at all."""

    examples: list[Example] = field(default_factory=list)
    skipped_blank: int = 0

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def extend(self, other: Dataset) -> None:
        self.examples.extend(other.examples)
        self.skipped_blank += other.skipped_blank

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def labels(self) -> list[Label]:
        return [e.label for e in self.examples]

    @property
    def dates(self) -> list[str | None] | None:
        """The examples' dates, or None when no example has one."""
        if all(e.date is None for e in self.examples):
            return None
        return [e.date for e in self.examples]


def parse_fields(value: str) -> tuple[str, ...]:
    """`title,text` -> ("title", "text")."""
    fields = tuple(part.strip() for part in value.split(",") if part.strip())
    if not fields:
        raise DatasetError(f"no field named in {value!r}")
    return fields


def read_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a JSON lines file (.jsonl, .ndjson, .json) or a CSV file
    (.csv; .tsv is tab-separated) with a header row."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            # utf-8-sig: spreadsheets exported from Excel start with a byte-order mark.
            with path.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                if not reader.fieldnames:
                    raise DatasetError(f"{path}: empty CSV file (a header row is needed)")
                for row in reader:
                    yield reader.line_num, dict(row)
            return
        if suffix not in (".jsonl", ".ndjson", ".json"):
            raise DatasetError(f"{path}: unknown format {suffix!r} (use .jsonl or .csv)")
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise DatasetError(f"{path}:{number}: a line must hold one JSON object")
                yield number, record
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def parse_label(value: Any, label_field: str, where: str = "") -> Label:
    """The label as the models take it: a bool for `relevant`, else a non-empty string."""
    prefix = f"{where}: " if where else ""
    if label_field == RELEVANCE_LABEL:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise DatasetError(f"{prefix}{label_field!r} must be true or false, not {value!r}")
    if value is None or isinstance(value, dict | list) or not str(value).strip():
        raise DatasetError(f"{prefix}{label_field!r} is empty or not a plain value")
    return str(value).strip()


def load_examples(
    path: str | Path,
    text_fields: Sequence[str],
    label_field: str,
    default_label: Label | None = None,
    date_field: str | None = None,
) -> Dataset:
    """The labelled texts of one file. The text fields present in a row are joined (empty
    ones left out); a row with none of them is an error, a row whose fields are all empty
    is skipped and counted. A row without the label field takes `default_label`, or is an
    error when there is none. With `date_field`, each row's date is read too (YYYY-MM-DD,
    YYYY.MM.DD, YYYYMMDD or ISO 8601); a row without one is undated, one that is not a date
    is an error."""
    if not text_fields:
        raise DatasetError("no text field given")
    data = Dataset()
    for number, record in read_records(path):
        where = f"{path}:{number}"
        if not any(name in record for name in text_fields):
            raise DatasetError(
                f"{where}: none of the text fields {', '.join(text_fields)} "
                f"(the row has {', '.join(sorted(record)) or 'no fields'})"
            )
        parts = [
            " ".join(str(record[name]).split())
            for name in text_fields
            if record.get(name) not in (None, "")
        ]
        parts = [p for p in parts if p]
        if not parts:
            data.skipped_blank += 1
            continue
        if label_field in record and record[label_field] not in (None, ""):
            label = parse_label(record[label_field], label_field, where)
        elif default_label is not None:
            label = default_label
        else:
            raise DatasetError(
                f"{where}: no {label_field!r} label (give a default label for such rows)"
            )
        when = None
        if date_field is not None and record.get(date_field) not in (None, ""):
            try:
                year_of(str(record[date_field]))
            except PeriodError as exc:
                raise DatasetError(f"{where}: {date_field!r}: {exc}") from exc
            when = str(record[date_field]).strip()
        data.examples.append(Example(FIELD_SEPARATOR.join(parts), label, where, when))
    return data


def examples_sha256(
    texts: Sequence[str], labels: Sequence[Label], dates: Sequence[Any] | None = None
) -> str:
    """A hash of the labelled texts themselves (and their dates, where given), in order: the
    same data gives the same hash whatever file format or field order it came in."""
    digest = hashlib.sha256()
    for index, (text, label) in enumerate(zip(texts, labels, strict=True)):
        when = dates[index] if dates is not None else None
        item = [label, text] if when is None else [label, text, str(when)]
        digest.update(json.dumps(item, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def in_holdout(text: str, share: float = 0.2, salt: str = "sotong-holdout") -> bool:
    """Whether a text belongs to the held-out part: decided by a hash of the text, so a
    text is always on the same side however the data is ordered or grown."""
    value = int(hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()[:12], 16)
    return value % 10_000 < share * 10_000


def split_holdout(
    examples: Sequence[Example], share: float = 0.2, salt: str = "sotong-holdout"
) -> tuple[list[Example], list[Example]]:
    """(training part, held-out part) by hash of the text."""
    train: list[Example] = []
    held: list[Example] = []
    for example in examples:
        (held if in_holdout(example.text, share, salt) else train).append(example)
    return train, held
