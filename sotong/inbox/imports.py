"""Messages that officers bring in by hand: the 120 call center's exported records (CSV or
Excel files, imported as a job) and single posts pasted from platforms with no receiving API
(the manual channel). Both end in `sotong.inbox.services` ingest, so they are triaged like
any other message.

Call-center files (120 다산콜센터 상담 기록)
--------------------------------------------
One record per row; the first row holds the column names. Columns may come in any order and
under any name: the officer maps them to these fields (Korean and English names below are
recognised automatically), and other columns are kept, unread, in each message's raw payload.

| field          | required | recognised names (examples)          | becomes                        |
|----------------|----------|--------------------------------------|--------------------------------|
| record_id      | yes      | 접수번호, 상담번호, 민원번호, record id | the message's external id (at most 255 characters); the import is idempotent on it |
| received_at    | yes      | 접수일시, 상담일시, 등록일시, received at | the time written: `2024-03-05 14:22[:10]`, `2024.03.05 14:22`, `2024/3/5 오후 2:22`, `2024년 3월 5일 14시 22분`, `20240305142210`, ISO 8601, or an Excel date; Korean time when no zone is given |
| text           | yes      | 상담내용, 민원내용, 내용, text        | the message text (at most SOTONG_MAX_TEXT_CHARS characters with title and district) |
| title          | no       | 제목, 민원제목, title, subject        | put before the text on a line of its own |
| contact        | no       | 연락처, 전화번호, 휴대폰, phone         | the author, which officers see to call back; never public |
| district       | no       | 자치구, 행정동, 지역, 주소, district    | put before the text as `[종로구 창신동]` (as the web form does), for triage's location |
| category_hint  | no       | 상담유형, 분류, 유형, category          | kept in the raw payload for the officer; triage decides the category |
| agent          | no       | 상담원, 상담사, 접수자, agent           | kept in the raw payload |

Files: CSV in UTF-8 (with or without BOM), CP949/EUC-KR or UTF-16 with BOM, separated by
commas, tabs or semicolons (detected from the header row); or Excel .xlsx (the first sheet;
the old .xls format is refused with a request to save as .xlsx). At most
`SOTONG_IMPORT_MAX_BYTES` (20 MB) and `SOTONG_IMPORT_MAX_ROWS` (50,000 rows); blank rows
are skipped.

Rejected rows do not block the file: every row is checked first, the rejected ones are
listed with their row number and reason, and all valid rows are stored in one transaction
(so a failure while storing leaves nothing stored, and the file can simply be uploaded
again). Fix the rejected rows and import the file again: rows already imported are counted
as "already imported" and nothing is stored twice. With `strict` (a checkbox, or `--strict`
on the command) one rejected row rejects the whole file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from sotong.directory.models import Account, Officer
from sotong.errors import InvalidInput, PermissionDenied
from sotong.inbox.models import ImportBatch, Message
from sotong.inbox.normalize import MAX_ID, MAX_URL, NormalizedMessage
from sotong.inbox.services import IngestResult, ingest_batch, ingest_message
from sotong.jobs.queue import enqueue
from sotong.lib.korean_text import clean_text

log = logging.getLogger(__name__)

CALLCENTER = "callcenter"
MANUAL = "manual"
IMPORT_JOB = "sotong.inbox.imports.run_import"

MAX_FILE_BYTES: int = getattr(settings, "SOTONG_IMPORT_MAX_BYTES", 20 * 1024 * 1024)
MAX_ROWS: int = getattr(settings, "SOTONG_IMPORT_MAX_ROWS", 50_000)
MAX_COLUMNS = 200
PROGRESS_EVERY = 500
# Clocks differ and exports are cut at midnight: a record up to a day ahead is accepted.
FUTURE_TOLERANCE = timedelta(days=1)
EARLIEST_YEAR = 1990

ENCODINGS = {
    "auto": _("detect automatically"),
    "utf-8": "UTF-8",
    "cp949": "CP949 / EUC-KR",
}


# --- Permissions ---------------------------------------------------------------------------


def check_can_import(officer: Officer | None) -> None:
    """The 120 call center's records come in through the center (or an administrator).
    `None` is the system itself (the `import_calls` command)."""
    if officer is None:
        return
    if not officer.is_active or not officer.sees_all_units:
        raise PermissionDenied("only the center imports call-center records")


def check_can_enter_manually(officer: Officer) -> None:
    """Any active officer, of the center or of a unit, may paste a post from a platform
    that Sotong cannot receive from."""
    if not officer.is_active:
        raise PermissionDenied("this account is switched off")


# --- Fields and column mapping -------------------------------------------------------------


@dataclass(frozen=True)
class ImportField:
    code: str
    label: Any  # a lazy translation
    required: bool
    names: tuple[str, ...]  # recognised column names, compared after _fold()


FIELDS: tuple[ImportField, ...] = tuple(
    ImportField(code, label, required, tuple(names.split()))
    for code, label, required, names in (
        (
            "record_id",
            _("Source record id"),
            True,
            "접수번호 민원접수번호 상담번호 상담접수번호 민원번호 관리번호 접수id 상담id 일련번호 "
            "recordid sourceid sourcerecordid caseid ticketid callid id",
        ),
        (
            "received_at",
            _("Received at"),
            True,
            "접수일시 접수일자 접수일 접수시간 상담일시 상담일자 등록일시 등록일자 수신일시 통화일시 "
            "일시 날짜 receivedat received datetime date createdat calldate calltime",
        ),
        (
            "text",
            _("Text"),
            True,
            "상담내용 민원내용 접수내용 문의내용 신고내용 민원요지 요지 내용 본문 "
            "text content body description details message",
        ),
        ("title", _("Title"), False, "제목 민원제목 상담제목 건명 title subject"),
        (
            "contact",
            _("Caller contact (personal, never public)"),
            False,
            "연락처 민원인연락처 신고자연락처 전화번호 휴대폰 휴대폰번호 휴대전화 발신번호 이메일 "
            "callercontact contact phone tel mobile caller",
        ),
        (
            "district",
            _("District / neighbourhood"),
            False,
            "자치구 구 행정동 동 구동 지역 발생지역 발생위치 위치 주소 "
            "district neighbourhood neighborhood area location address",
        ),
        (
            "category_hint",
            _("Category hint"),
            False,
            "상담유형 민원유형 상담분류 민원분류 분류 유형 대분류 중분류 소분류 카테고리 "
            "categoryhint category type",
        ),
        (
            "agent",
            _("Agent"),
            False,
            "상담원 상담원명 상담사 접수자 담당상담원 agent operator handledby",
        ),
    )
)
FIELD_CODES = tuple(f.code for f in FIELDS)
REQUIRED = tuple(f.code for f in FIELDS if f.required)

_FOLD = re.compile(r"[\s_\-./()\[\]:·]+")


def _fold(name: str) -> str:
    return _FOLD.sub("", clean_text(name)).casefold()


def guess_mapping(headers: Sequence[str]) -> dict[str, int]:
    """Field code → column index for the columns whose names we recognise: exact names
    first (so 접수번호 wins over a column merely containing it), then names that contain a
    recognised long name (민원접수번호(120)). Each column serves at most one field."""
    folded = [_fold(h) for h in headers]
    mapping: dict[str, int] = {}
    taken: set[int] = set()
    for exact in (True, False):
        for spec in FIELDS:
            if spec.code in mapping:
                continue
            for name in spec.names:
                if not exact and len(name) < 3:  # 구, 동, id: too short to look inside names
                    continue
                hit = next(
                    (
                        i
                        for i, h in enumerate(folded)
                        if i not in taken and (h == name if exact else name in h)
                    ),
                    None,
                )
                if hit is not None:
                    mapping[spec.code] = hit
                    taken.add(hit)
                    break
    return mapping


def check_mapping(mapping: dict[str, int], n_columns: int) -> dict[str, int]:
    """The mapping an officer chose, or InvalidInput naming what is wrong with it."""
    cleaned: dict[str, int] = {}
    for code, index in mapping.items():
        if code not in FIELD_CODES:
            raise InvalidInput(f"unknown field '{code}'", field=code)
        if not isinstance(index, int) or not 0 <= index < n_columns:
            raise InvalidInput(f"'{code}' names a column the file does not have", field=code)
        cleaned[code] = index
    missing = [code for code in REQUIRED if code not in cleaned]
    if missing:
        raise InvalidInput(
            f"choose the column for: {', '.join(missing)}", field=missing[0], missing=missing
        )
    used: dict[int, str] = {}
    for code, index in cleaned.items():
        if index in used:
            raise InvalidInput(
                f"one column cannot be both '{used[index]}' and '{code}'", field=code
            )
        used[index] = code
    return cleaned


# --- Reading files -------------------------------------------------------------------------

Cell = str | int | float | datetime | date | time | bool | None


@dataclass
class Table:
    """A file's column names and its rows (row number as a spreadsheet shows it, cells)."""

    headers: list[str]
    rows: list[tuple[int, list[Cell]]]
    kind: str
    encoding: str = ""
    # The bytes were not all valid in the encoding: rows holding U+FFFD are rejected.
    broken_bytes: bool = False


def file_kind(filename: str, content: bytes) -> str:
    """'xlsx' or 'csv', by the bytes first (a renamed file is still what it is)."""
    if content.startswith(b"\xd0\xcf\x11\xe0"):
        raise InvalidInput(
            "this is an old Excel (.xls) file: save it as .xlsx or CSV and upload again"
        )
    if content.startswith(b"PK\x03\x04"):
        return ImportBatch.Kind.XLSX
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise InvalidInput("the file is not a valid .xlsx workbook")
    return ImportBatch.Kind.CSV


def decode_csv(content: bytes, encoding: str = "auto") -> tuple[str, str, bool]:
    """The text, the encoding used, and whether some bytes were invalid in it (replaced by
    U+FFFD). Automatic detection: a BOM decides; otherwise UTF-8 if every byte is valid
    UTF-8, then CP949 (a superset of EUC-KR, which Korean exports often use); if neither
    fits the whole file, the one that loses fewer characters."""
    if encoding not in ENCODINGS and encoding != "utf-16":  # UTF-16 is known by its BOM
        raise InvalidInput(f"unknown encoding '{encoding}'", field="encoding")
    if encoding == "auto":
        if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            candidates = ["utf-16"]
        elif content.startswith(codecs.BOM_UTF8):
            candidates = ["utf-8"]
        else:
            candidates = ["utf-8", "cp949"]
    else:
        candidates = [encoding]
    for name in candidates:
        try:
            return _decode(content, name, "strict"), name, False
        except UnicodeDecodeError:
            continue
    best = min(candidates, key=lambda name: _decode(content, name, "replace").count("\ufffd"))
    return _decode(content, best, "replace"), best, True


def _decode(content: bytes, name: str, errors: str) -> str:
    return content.decode("utf-8-sig" if name == "utf-8" else name, errors)


def _delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _check_size(rows: int, columns: int) -> None:
    if rows > MAX_ROWS:
        raise InvalidInput(f"the file has more than {MAX_ROWS} rows: split it and import the parts")
    if columns > MAX_COLUMNS:
        raise InvalidInput(f"the file has more than {MAX_COLUMNS} columns")


def _blank(cells: Sequence[Cell]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _read_csv(content: bytes, encoding: str) -> Table:
    text, used, broken = decode_csv(content, encoding)
    text = text.replace("\x00", "")
    # Long texts are this module's to refuse, row by row, not the csv module's (its default
    # field limit, 128 KiB, would fail the whole file).
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FILE_BYTES))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    headers: list[str] | None = None
    rows: list[tuple[int, list[Cell]]] = []
    number = 0
    try:
        for record in reader:
            number += 1
            if headers is None:
                headers = list(record)
                continue
            if not _blank(record):
                rows.append((number, list(record)))
                _check_size(len(rows), len(record))
    except csv.Error as exc:
        raise InvalidInput(
            f"the CSV file cannot be read at line {reader.line_num}: {exc}"
        ) from None
    if not headers or _blank(headers):
        raise InvalidInput("the first row must hold the column names")
    _check_size(len(rows), len(headers))
    return Table(_headers(headers), rows, ImportBatch.Kind.CSV, used, broken)


def _read_xlsx(content: bytes) -> Table:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:
        # openpyxl raises whatever its zip and XML layers raise (BadZipFile, KeyError,
        # ValueError, XML errors…) on a damaged or foreign file: all mean the same here.
        log.info("unreadable workbook: %r", exc)
        raise InvalidInput("the file is not a valid .xlsx workbook") from None
    try:
        sheet = book.worksheets[0]
        headers: list[Cell] | None = None
        rows: list[tuple[int, list[Cell]]] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if headers is None:
                headers = list(values)
                continue
            if not _blank(values):
                rows.append((number, list(values)))
                _check_size(len(rows), len(values))
    except InvalidInput:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as exc:
        log.info("damaged workbook: %r", exc)
        raise InvalidInput("the workbook is damaged and cannot be read") from None
    finally:
        book.close()
    if not headers or _blank(headers):
        raise InvalidInput("the first row must hold the column names")
    header_texts = [_cell_text(h) for h in headers]
    while header_texts and not header_texts[-1]:  # sheets often carry empty columns
        header_texts.pop()
    _check_size(len(rows), len(header_texts))
    return Table(_headers(header_texts), rows, ImportBatch.Kind.XLSX, "")


def _headers(names: Sequence[Cell]) -> list[str]:
    """Column names made unique and never empty, as the mapping form and raw payloads use
    them."""
    seen: dict[str, int] = {}
    result = []
    for index, name in enumerate(names, start=1):
        text = _cell_text(name)[:100] or f"({index})"
        seen[text] = seen.get(text, 0) + 1
        result.append(text if seen[text] == 1 else f"{text} ({seen[text]})")
    return result


def read_table(filename: str, content: bytes, encoding: str = "auto") -> Table:
    """The file's columns and rows, or InvalidInput saying why it cannot be imported."""
    if len(content) > MAX_FILE_BYTES:
        raise InvalidInput(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if not content.strip():
        raise InvalidInput("the file is empty")
    if file_kind(filename, content) == ImportBatch.Kind.XLSX:
        return _read_xlsx(content)
    return _read_csv(content, encoding)


# --- Checking rows -------------------------------------------------------------------------

REASONS = {
    "missing_id": _("the source record id is empty"),
    "id_too_long": _("the source record id is longer than 255 characters"),
    "duplicate_id": _("the same record id is on an earlier row of this file"),
    "missing_text": _("the text is empty"),
    "text_too_long": _("the text is too long"),
    "missing_date": _("the date is empty"),
    "bad_date": _("the date cannot be read"),
    "future_date": _("the date is in the future"),
    "too_long": _("a value is longer than 255 characters"),
    "broken_characters": _("the row holds bytes that are not valid in the file's encoding"),
}


@dataclass(frozen=True)
class Rejection:
    row: int
    record_id: str
    code: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "record_id": self.record_id,
            "code": self.code,
            "detail": self.detail,
        }


def describe(rejected: dict[str, Any]) -> str:
    """A rejected row's reason in the reader's language."""
    reason = str(REASONS.get(rejected.get("code", ""), rejected.get("code", "")))
    detail = rejected.get("detail")
    return f"{reason} ({detail})" if detail else reason


@dataclass
class CheckedRows:
    messages: list[NormalizedMessage] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def _cell_text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))  # a record id Excel stored as a number: 20240305001.0
    elif isinstance(value, datetime | date | time):
        text = value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    else:
        text = str(value)
    # Lone surrogates (possible in a hand-made workbook) become "?", as no database takes them.
    text = text.encode("utf-8", "replace").decode("utf-8")
    return clean_text(text).strip()


_DATE = re.compile(
    r"^(?P<y>\d{4})\s*(?:[-./]|년)\s*(?P<m>\d{1,2})\s*(?:[-./]|월)\s*(?P<d>\d{1,2})\s*(?:일)?\.?"
    r"(?:[\sT]+(?P<time>.+))?$"
)
_COMPACT = re.compile(
    r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})(?:(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})?)?$"
)
_TIME = re.compile(
    r"^(?P<ampm1>오전|오후|AM|PM|am|pm)?\s*(?P<H>\d{1,2})\s*(?::|시)\s*(?P<M>\d{1,2})?\s*(?:분)?"
    r"\s*(?::?\s*(?P<S>\d{1,2})(?:\.\d+)?\s*(?:초)?)?\s*(?P<ampm2>오전|오후|AM|PM|am|pm)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_received_at(value: Cell) -> datetime:
    """A record's time from what call-center exports hold (see the module docstring);
    ValueError if it cannot be read. A time without a zone is the city's local time."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not 20_000 < value < 80_000:  # an Excel serial date between 1954 and 2119
            raise ValueError("a number that is not a date")
        from openpyxl.utils.datetime import from_excel

        moment = from_excel(value)
    elif isinstance(value, str):
        moment = _parse_date_text(clean_text(value).strip())
    else:
        raise ValueError("not a date")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    if moment.year < EARLIEST_YEAR:
        raise ValueError("before 1990")
    return moment


def _parse_date_text(text: str) -> datetime:
    if not text:
        raise ValueError("empty")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    compact = _COMPACT.match(text)
    if compact:
        parts = compact.groupdict()
        return datetime(
            int(parts["y"]),
            int(parts["m"]),
            int(parts["d"]),
            int(parts["H"] or 0),
            int(parts["M"] or 0),
            int(parts["S"] or 0),
        )
    found = _DATE.match(text)
    if not found:
        raise ValueError(text)
    day = date(int(found["y"]), int(found["m"]), int(found["d"]))
    if not found["time"]:
        return datetime.combine(day, time())
    clock = _TIME.match(found["time"].strip())
    if not clock:
        raise ValueError(text)
    hour, minute, second = int(clock["H"]), int(clock["M"] or 0), int(clock["S"] or 0)
    ampm = (clock["ampm1"] or clock["ampm2"] or "").upper()
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError(text)
        hour = hour % 12 + (12 if ampm in {"오후", "PM"} else 0)
    moment = datetime.combine(day, time(hour, minute, second))
    if clock["tz"]:
        moment = moment.replace(tzinfo=_zone(clock["tz"]))
    return moment


def _zone(text: str) -> dt_timezone:
    if text == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return dt_timezone(offset if text[0] == "+" else -offset)


def check_rows(
    table: Table,
    mapping: dict[str, int],
    *,
    account: str = "",
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> CheckedRows:
    """Every row checked against the mapping: the messages to store, and the rows rejected
    with their reasons. Pure: no database. A record id seen on an earlier row rejects the
    later row (the earlier one is kept)."""
    latest = (now or timezone.now()) + FUTURE_TOLERANCE
    result = CheckedRows()
    first_row: dict[str, int] = {}
    for done, (number, cells) in enumerate(table.rows, start=1):
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done)
        checked = _check_row(table, mapping, number, cells, latest, first_row)
        if isinstance(checked, Rejection):
            result.rejected.append(checked)
            continue
        result.messages.append(
            NormalizedMessage(
                channel=CALLCENTER,
                account=account,
                external_id=checked["record_id"],
                text=checked["text"],
                sent_at=checked["sent_at"],
                author=checked.get("contact", ""),
                raw={
                    "source": "callcenter-import",
                    "row": number,
                    "fields": {code: checked["fields"][code] for code in sorted(checked["fields"])},
                    "columns": {
                        header: _cell_text(cells[i]) if i < len(cells) else ""
                        for i, header in enumerate(table.headers)
                    },
                },
            )
        )
    if progress is not None:
        progress(len(table.rows))
    return result


def _check_row(
    table: Table,
    mapping: dict[str, int],
    number: int,
    cells: list[Cell],
    latest: datetime,
    first_row: dict[str, int],
) -> dict[str, Any] | Rejection:
    values = {
        code: _cell_text(cells[index]) if index < len(cells) else ""
        for code, index in mapping.items()
    }
    record_id = values["record_id"]

    def rejection(code: str, detail: str = "") -> Rejection:
        return Rejection(number, record_id[:80], code, detail)

    if table.broken_bytes and any("\ufffd" in _cell_text(c) for c in cells):
        return rejection("broken_characters", table.encoding)
    if not record_id:
        return rejection("missing_id")
    if len(record_id) > MAX_ID:
        return rejection("id_too_long")
    if record_id in first_row:
        return rejection("duplicate_id", str(first_row[record_id]))
    first_row[record_id] = number
    if not values["received_at"]:
        return rejection("missing_date")
    try:
        sent_at = parse_received_at(cells[mapping["received_at"]])
    except (ValueError, OverflowError):
        return rejection("bad_date", values["received_at"][:40])
    if sent_at > latest:
        return rejection("future_date", values["received_at"][:40])
    text = values["text"]
    if not text:
        return rejection("missing_text")
    for name in ("contact", "agent", "category_hint"):
        if len(values.get(name, "")) > MAX_ID:
            return rejection("too_long", name)
    title, district = values.get("title", ""), values.get("district", "")
    if title and title not in text:
        text = f"{title}\n{text}"
    if district and district not in text:
        text = f"[{district}] {text}"
    limit = settings.SOTONG_MAX_TEXT_CHARS
    if len(text) > limit:
        return rejection("text_too_long", f"{len(text)} > {limit}")
    return {
        "record_id": record_id,
        "text": text,
        "sent_at": sent_at,
        "contact": values.get("contact", ""),
        "fields": values,
    }


# --- The import, step by step ---------------------------------------------------------------


def upload_import(
    officer: Officer | None, filename: str, content: bytes, *, encoding: str = "auto"
) -> ImportBatch:
    """Step 1: keep the file, read its column names and guess the mapping. The file is read
    whole here so that a file that cannot be imported is refused at once."""
    check_can_import(officer)
    table = read_table(filename, content, encoding)
    if not table.rows:
        raise InvalidInput("the file has column names but no rows")
    account = Account.objects.filter(channel__code=CALLCENTER, active=True).order_by("pk").first()
    return ImportBatch.objects.create(
        created_by=officer,
        filename=clean_text(filename)[-255:] or "upload",
        kind=table.kind,
        encoding=table.encoding if table.kind == ImportBatch.Kind.CSV else "",
        content=content,
        headers=table.headers,
        mapping=guess_mapping(table.headers),
        account=account,
        total_rows=len(table.rows),
    )


def preview_rows(batch: ImportBatch, limit: int = 5) -> tuple[Table, list[list[str]]]:
    """The file read again, with its first rows as text for the mapping form."""
    table = read_table(batch.filename, bytes(batch.content), batch.encoding or "auto")
    width = len(table.headers)
    return table, [
        [_cell_text(c) for c in (cells + [None] * width)[:width]] for _, cells in table.rows[:limit]
    ]


def start_import(
    batch: ImportBatch,
    officer: Officer | None,
    mapping: dict[str, int],
    *,
    account: Account | None = None,
    strict: bool = False,
    queue: bool = True,
) -> ImportBatch:
    """Step 2: the officer's mapping is checked and the import job queued (or, with
    `queue=False`, left for the caller to run with `perform_import`)."""
    check_can_import(officer)
    if batch.status != ImportBatch.Status.UPLOADED:
        raise InvalidInput("this import has already been started")
    if account is not None and (account.channel.code != CALLCENTER):
        raise InvalidInput("choose an account of the call-center channel", field="account")
    batch.mapping = check_mapping(mapping, len(batch.headers))
    batch.account = account or batch.account
    batch.strict = strict
    batch.status = ImportBatch.Status.QUEUED
    with transaction.atomic():
        batch.save(update_fields=["mapping", "account", "strict", "status"])
        if queue:
            enqueue(IMPORT_JOB, batch.pk)
    return batch


def _set(batch_id: int, **values: Any) -> None:
    ImportBatch.objects.filter(pk=batch_id).update(**values)


def run_import(batch_id: int) -> None:
    """Step 3, the job: check every row, then store the valid ones in one transaction.

    Safe to run twice or after a crash: nothing is stored until the last step, which runs
    in one transaction together with the batch's final state, and a finished batch is left
    alone. Any failure marks the batch failed with the reason, with nothing stored.
    """
    batch = ImportBatch.objects.select_related("account").filter(pk=batch_id).first()
    if batch is None or batch.finished or batch.status == ImportBatch.Status.UPLOADED:
        return
    try:
        perform_import(batch)
    except Exception as exc:
        log.exception("call-center import %s failed", batch_id)
        record_failure(batch_id, exc)


def record_failure(batch_id: int, error: Exception) -> None:
    """Mark an import failed, saying why; whatever it had stored was rolled back."""
    message = (
        error.message if isinstance(error, InvalidInput) else f"{type(error).__name__}: {error}"
    )
    # A run that failed after another run finished the import must not undo its report.
    ImportBatch.objects.filter(pk=batch_id).exclude(status=ImportBatch.Status.DONE).update(
        status=ImportBatch.Status.FAILED,
        error=message[:2000],
        created_count=0,
        already_count=0,
        content=b"",
        finished_at=timezone.now(),
    )


def perform_import(
    batch: ImportBatch, progress: Callable[[int], None] | None = None
) -> ImportBatch:
    """Check and store; `progress` is told how many rows have been checked."""
    _set(
        batch.pk,
        status=ImportBatch.Status.VALIDATING,
        started_at=timezone.now(),
        processed_rows=0,
        error="",
    )
    table = read_table(batch.filename, bytes(batch.content), batch.encoding or "auto")

    def report(done: int) -> None:
        _set(batch.pk, processed_rows=done)
        if progress is not None:
            progress(done)

    checked = check_rows(
        table,
        batch.mapping,
        account=batch.account.handle if batch.account else "",
        progress=report,
    )
    rejected = [r.as_dict() for r in checked.rejected]
    _set(
        batch.pk,
        status=ImportBatch.Status.SAVING,
        total_rows=len(table.rows),
        rejected_count=len(rejected),
        rejected_rows=rejected,
    )
    if batch.strict and rejected:
        _set(
            batch.pk,
            status=ImportBatch.Status.FAILED,
            error=f"{len(rejected)} row(s) rejected; with 'strict' nothing is imported",
            content=b"",
            finished_at=timezone.now(),
        )
        batch.refresh_from_db()
        return batch
    with transaction.atomic():
        locked = ImportBatch.objects.select_for_update().get(pk=batch.pk)
        if locked.finished:  # another run of this job got here first
            return locked
        new = ingest_batch(checked.messages)
        _set(
            batch.pk,
            status=ImportBatch.Status.DONE,
            created_count=len(new),
            already_count=len(checked.messages) - len(new),
            content=b"",
            finished_at=timezone.now(),
        )
    batch.refresh_from_db()
    return batch


def stalled_imports(age: timedelta) -> list[int]:
    """Imports queued or running for longer than `age`, whose job was lost (a broker that
    was down, a worker killed); `resume_imports` queues them again."""
    cutoff = timezone.now() - age
    queued = ImportBatch.objects.filter(status=ImportBatch.Status.QUEUED, created_at__lt=cutoff)
    running = ImportBatch.objects.filter(
        status__in=[ImportBatch.Status.VALIDATING, ImportBatch.Status.SAVING],
        started_at__lt=cutoff,
    )
    return sorted(
        set(queued.values_list("pk", flat=True)) | set(running.values_list("pk", flat=True))
    )


def resume_imports() -> int:
    """A periodic safety net: run again the imports whose job was lost."""
    # After `retry` seconds django-q2 itself runs an unfinished job again; lost ones after that.
    timeout = int(str(settings.Q_CLUSTER.get("retry", 330)))
    stalled = stalled_imports(timedelta(seconds=timeout))
    for pk in stalled:
        enqueue(IMPORT_JOB, pk)
    return len(stalled)


# --- The manual channel ---------------------------------------------------------------------

# Query parameters that only say where a visitor came from: the same post, shared twice,
# must give the same link.
_TRACKING = re.compile(r"^(utm_.*|fbclid|gclid|ref|from|src|trackingcode|nclid)$", re.I)
_NAVER_MOBILE = {"m.blog.naver.com": "blog.naver.com", "m.cafe.naver.com": "cafe.naver.com"}


def canonical_link(url: str) -> str:
    """The link as Sotong compares it: scheme and host in lower case, no `www.`, no
    fragment, no tracking parameters, parameters sorted, no trailing slash; Naver's mobile
    and `PostView` forms of a blog post folded to `blog.naver.com/<blog>/<post>`."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput("the link must be an http(s) address", field="link")
    host = parts.hostname.lower().removeprefix("www.")
    host = _NAVER_MOBILE.get(host, host)
    if parts.port and parts.port not in {80, 443}:
        host = f"{host}:{parts.port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    )
    path = parts.path.rstrip("/") or "/"
    if host == "blog.naver.com" and path.lower() in {"/postview.naver", "/postview.nhn"}:
        params = dict(query)
        if params.get("blogId") and params.get("logNo"):
            path, query = f"/{params['blogId']}/{params['logNo']}", []
    return urlunsplit(("https", host, path, urlencode(query), ""))


def manual_external_id(link: str) -> str:
    """The external id of a pasted post: derived from its canonical link, so pasting the
    same post twice (even through a mobile or shared link) finds the first."""
    return "link-" + hashlib.sha256(canonical_link(link).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class ManualPost:
    text: str
    link: str
    platform: str
    written_at: datetime
    author: str = ""
    account: Account | None = None


def enter_manual_post(officer: Officer, post: ManualPost) -> IngestResult:
    """Store a post an officer pasted, on the manual channel; a post already entered (same
    link) is returned as it is, not stored again. Replies to it go out by hand: the outbox
    has no connector for the manual channel."""
    check_can_enter_manually(officer)
    text = clean_text(post.text).strip()
    if not text:
        raise InvalidInput("paste the post's text", field="text")
    if len(text) > settings.SOTONG_MAX_TEXT_CHARS:
        raise InvalidInput("the text is too long", field="text")
    if len(post.link) > MAX_URL:
        raise InvalidInput("the link is too long", field="link")
    if post.written_at > timezone.now() + timedelta(minutes=5):
        raise InvalidInput("the time written is in the future", field="written_at")
    if post.account is not None and post.account.channel.code != MANUAL:
        raise InvalidInput("choose an account of the manual channel", field="account")
    account = post.account or (
        Account.objects.filter(channel__code=MANUAL, active=True).order_by("pk").first()
    )
    link = post.link.strip()
    return ingest_message(
        NormalizedMessage(
            channel=MANUAL,
            account=account.handle if account else "",
            external_id=manual_external_id(link),
            text=text,
            sent_at=post.written_at,
            author=clean_text(post.author).strip()[:MAX_ID],
            attachments=[{"url": link, "type": "link", "name": clean_text(post.platform)[:MAX_ID]}],
            raw={
                "source": "manual",
                "link": link,
                "canonical_link": canonical_link(link),
                "platform": clean_text(post.platform).strip(),
                "entered_by": officer.get_username(),
            },
        )
    )


def recent_manual_messages(officer: Officer, limit: int = 20) -> list[Message]:
    """The latest posts entered by hand, for the page where officers enter them: all of
    them for the center, an officer's own for everyone else."""
    posts = Message.objects.filter(channel__code=MANUAL)
    if not officer.sees_all_units:
        posts = posts.filter(raw_payload__entered_by=officer.get_username())
    return list(posts.select_related("case_link__case").order_by("-received_at", "-pk")[:limit])
