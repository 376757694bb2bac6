"""Open311 GeoReport v2 documents in the spec's two formats: JSON by the Spark convention
and XML without a namespace, both UTF-8; its w3 date-times, written and read. Pure: plain
records in, bytes out.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, tzinfo

from django.utils import timezone

CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}
FORMATS = frozenset(CONTENT_TYPES)

# A record is one element of a list (a service, a request, an error): field name to value,
# in the order the spec lists them. A list value holds nested records (a definition's
# attributes) and is written in XML as the plural element around singular ones.
Value = str | int | float | bool | None | Sequence["Record"]
Record = Mapping[str, Value]
_SINGULAR = {"attributes": "attribute", "values": "value"}

# Characters XML 1.0 cannot carry (most C0 controls, lone surrogates, U+FFFE/U+FFFF):
# dropped from every string, in both formats, so no stored text can break a document.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(value: str) -> str:
    return _NOT_XML.sub("", value)


def _json_value(value: Value) -> object:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list | tuple):
        return [_json_record(item) for item in value]
    return value


def _json_record(record: Record) -> dict[str, object]:
    return {clean(key): _json_value(value) for key, value in record.items()}


def _xml_text(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return clean(str(value))


def _xml_fill(parent: ET.Element, record: Record) -> None:
    for key, value in record.items():
        child = ET.SubElement(parent, key)
        if isinstance(value, list | tuple):
            for item in value:
                _xml_fill(ET.SubElement(child, _SINGULAR.get(key, "item")), item)
        else:
            child.text = _xml_text(value)


def _xml_document(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


def render_list(fmt: str, root: str, item: str, records: Sequence[Record]) -> bytes:
    """A list document: a JSON array, or `<root><item>…</item>…</root>`."""
    if fmt == "json":
        return json.dumps(
            [_json_record(r) for r in records], ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
    element = ET.Element(root)
    for record in records:
        _xml_fill(ET.SubElement(element, item), record)
    return _xml_document(element)


def render_object(fmt: str, root: str, record: Record) -> bytes:
    """A single-object document (the service definition): a JSON object, or `<root>…`."""
    if fmt == "json":
        return json.dumps(_json_record(record), ensure_ascii=False).encode("utf-8")
    element = ET.Element(root)
    _xml_fill(element, record)
    return _xml_document(element)


def render_errors(fmt: str, errors: Sequence[tuple[int, str]]) -> bytes:
    """The spec's error document: `[{"code": 404, "description": "…"}]` or
    `<errors><error><code>404</code><description>…</description></error></errors>`."""
    records: list[Record] = [
        {"code": code, "description": description} for code, description in errors
    ]
    return render_list(fmt, "errors", "error", records)


# --- Date-times ------------------------------------------------------------------------


def w3_datetime(moment: datetime | None) -> str | None:
    """A moment in the w3 profile of ISO 8601, in local time with its offset:
    2024-05-01T09:30:00+09:00."""
    if moment is None:
        return None
    return timezone.localtime(moment).isoformat(timespec="seconds")


_W3 = re.compile(
    r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?)?)?",
    re.ASCII,
)
_SPACE_FOR_PLUS = re.compile(r"(T[\d:.]+) (\d{2}(:?\d{2})?)$")


def parse_w3_datetime(value: str, zone: tzinfo | None = None) -> datetime:
    """A w3 date-time (2010-01-01T00:00:00Z, …+09:00, or just 2010-01-01 or 2010-01) as an
    aware datetime; one without an offset is taken in the site's time zone. A `+` sent
    unencoded in a query string arrives as a space and is read as the `+` it was.
    Raises ValueError for anything else."""
    text = _SPACE_FOR_PLUS.sub(r"\1+\2", value.strip())
    if not _W3.fullmatch(text):
        raise ValueError(f"not a w3 date-time: {value!r}")
    zone = zone or timezone.get_current_timezone()
    if "T" not in text:
        parts = [int(p) for p in text.split("-")] + [1, 1]
        day = date(parts[0], parts[1], parts[2])
        moment = datetime.combine(day, time.min)
    else:
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        # Python 3.11 reads at most six fractional digits.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = timezone.make_aware(moment, zone)
    if not 1900 <= moment.year <= 9000:
        raise ValueError(f"date out of range: {value!r}")
    return moment
