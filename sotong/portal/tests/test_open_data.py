"""Open data: the case and statistics downloads in CSV and JSON (documented columns, masked
texts only, formula-safe cells, the list's filters, parts by `limit` and `before`), the
/data/ page, docs/open-data.md, and the OpenAPI description, which validates and whose
every GET path answers as it documents."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client
from django.urls import Resolver404, resolve
from django.utils import timezone
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from sotong.cases import services
from sotong.cases.models import Case
from sotong.directory.models import Unit
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.portal import exports
from sotong.portal.models import PublicCase, Tally
from sotong.portal.open_data import OPENAPI_FILE
from sotong.portal.selectors import answer_time_labels, overview
from sotong.triage.services import triage_messages

DOCS = Path(__file__).resolve().parents[3] / "docs" / "open-data.md"
PHONE = "010-1234-5678"
EMAIL = "citizen@mail.example"
AUTHOR = "kim_citizen_1984"
TEXTS = {
    "personal": f"종로구 창신동 보안등이 꺼졌어요 고쳐주세요. 제 번호는 {PHONE}, 메일 {EMAIL}",
    "formula": '=HYPERLINK("http://evil.example","보기") 종로구 골목 보안등 고장 고쳐주세요',
    "mapo": "마포구 도로에 포트홀이 생겼어요 위험해요 고쳐주세요",
    "hold": "종로구 보안등 깜빡거려요 고쳐주세요",
    "merged": "종로구 창신동 보안등 또 꺼졌어요 고쳐주세요",
}
ANSWER = (
    "소중한 의견 감사합니다. 말씀하신 보안등 고장에 대하여 교체하였습니다. "
    "문의는 종로구청(02-2148-1114)으로 연락 주십시오."
)
CASE_NAMES = [c.name for c in exports.CASE_COLUMNS]


@pytest.fixture
def cases(people) -> dict[str, Case]:
    """Five cases made through the real services: one answered, one on hold, one merged
    into the answered one, two in progress."""
    messages = ingest_batch(
        [
            NormalizedMessage(channel="x", external_id=f"od-{key}", text=text, author=AUTHOR)
            for key, text in TEXTS.items()
        ]
    )
    triage_messages([m.pk for m in messages])
    by_key = {}
    for key, message in zip(TEXTS, messages, strict=True):
        by_key[key] = Case.objects.get(case_messages__message=message)
    actor = people["center"]
    services.draft_answer(by_key["personal"], ANSWER, actor=actor)
    services.publish_answer(by_key["personal"], actor=actor, override_reason="테스트")
    services.hold_case(by_key["hold"], reason="예산 확보 후 교체 예정", actor=actor)
    services.merge_case(by_key["merged"], by_key["personal"], actor=actor)
    return {key: Case.objects.get(pk=case.pk) for key, case in by_key.items()}


def body(response) -> bytes:
    assert response.status_code == 200, response
    assert response.streaming
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[list[str]]:
    raw = body(response)
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM that makes Excel read UTF-8
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def get_json(response) -> dict[str, Any]:
    return json.loads(body(response).decode("utf-8"))


# --- Cases -----------------------------------------------------------------------------


def test_cases_csv_has_the_documented_columns_newest_first_with_masked_texts(cases):
    response = Client().get("/data/cases.csv")
    assert response["Content-Type"].startswith("text/csv")
    assert re.fullmatch(
        r'attachment; filename="sotong-cases-\d{8}\.csv"', response["Content-Disposition"]
    )
    header, *rows = csv_rows(response)
    assert header == CASE_NAMES
    numbers = [row[0] for row in rows]
    assert numbers == sorted((c.number for c in cases.values()), reverse=True)

    record = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    answered = record[cases["personal"].number]
    assert answered["state"] == "answered" and answered["answered_on_time"] == "true"
    assert answered["unit"] == "district-jongno" and answered["district"] == "종로구"
    assert answered["reports"] == "2"  # the merged case's message joined it
    assert "보안등" in answered["text"] and "[전화번호]" in answered["text"]
    assert "교체하였습니다" in answered["answer"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00", answered["received_at"])
    held = record[cases["hold"].number]
    assert held["state"] == "on_hold" and held["hold_reason"] == "예산 확보 후 교체 예정"
    assert held["answered_at"] == "" and held["answered_on_time"] == ""
    merged = record[cases["merged"].number]
    assert merged["state"] == "merged" and merged["merged_into"] == cases["personal"].number

    text = "\n".join(",".join(row) for row in rows)
    assert PHONE not in text and EMAIL not in text and AUTHOR not in text


def test_a_text_starting_with_a_formula_is_neutralised(cases):
    header, *rows = csv_rows(Client().get("/data/cases.csv"))
    row = next(r for r in rows if r[0] == cases["formula"].number)
    cell = row[header.index("text")]
    assert cell.startswith("'=HYPERLINK(")
    # JSON carries the text as it is: no spreadsheet reads it.
    data = get_json(Client().get("/data/cases.json"))
    assert any(c["text"].startswith("=HYPERLINK(") for c in data["cases"])


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_every_formula_start_gets_an_apostrophe(value):
    assert exports.csv_cell(value) == "'" + value
    assert exports.csv_cell("보안등 " + value) == "보안등 " + value


def test_json_holds_the_same_cases_as_the_csv(cases):
    data = get_json(Client().get("/data/cases.json"))
    assert data["schema_version"] == exports.SCHEMA_VERSION
    assert data["filters"] == {} and data["count"] == len(cases) and data["next"] is None
    assert data["licence"] == "공공누리 제1유형 (KOGL Type 1)"
    assert [list(c) for c in data["cases"]] == [CASE_NAMES] * len(cases)
    _, *rows = csv_rows(Client().get("/data/cases.csv"))
    as_csv = [[exports.csv_cell(c[name]) for name in CASE_NAMES] for c in data["cases"]]
    assert as_csv == rows
    assert PHONE not in json.dumps(data, ensure_ascii=False)


def numbers_of(query: str) -> list[str]:
    return [c["number"] for c in get_json(Client().get(f"/data/cases.json?{query}"))["cases"]]


def test_the_lists_filters_narrow_the_downloads(cases):
    assert numbers_of("district=마포구") == [cases["mapo"].number]
    assert numbers_of("state=answered") == [cases["personal"].number]
    assert numbers_of("state=on_hold&unit=district-jongno") == [cases["hold"].number]
    assert numbers_of("q=포트홀") == [cases["mapo"].number]
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert numbers_of(f"since={tomorrow}") == []
    assert len(numbers_of("state=nonsense")) == len(cases)  # unknown values are dropped
    data = get_json(Client().get("/data/cases.json?district=마포구&q=포트홀"))
    assert data["filters"] == {"district": "마포구", "q": "포트홀"}
    _, *rows = csv_rows(Client().get("/data/cases.csv?district=마포구"))
    assert [r[0] for r in rows] == [cases["mapo"].number]


def test_limit_and_before_take_the_file_in_parts(cases, settings):
    everything = numbers_of("")
    collected = []
    address = "/data/cases.json?limit=2&district=종로구"
    while address:
        data = get_json(Client().get(address))
        assert data["count"] == len(data["cases"]) <= 2
        collected += [c["number"] for c in data["cases"]]
        address = (data["next"] or "").removeprefix(settings.PUBLIC_URL)
    assert collected == [n for n in everything if n != cases["mapo"].number]
    _, *rows = csv_rows(Client().get(f"/data/cases.csv?limit=2&before={everything[1]}"))
    assert [r[0] for r in rows] == everything[2:4]
    assert Client().get("/data/cases.json?limit=abc").status_code == 400
    assert Client().get("/data/cases.csv?limit=0").status_code == 400


def test_cases_stream_in_keyset_batches_without_losing_or_repeating(cases, monkeypatch):
    monkeypatch.setattr(exports, "BATCH", 2)
    assert numbers_of("") == sorted((c.number for c in cases.values()), reverse=True)
    assert len(numbers_of("limit=3")) == 3


@pytest.mark.parametrize("path", ["/data/cases.xlsx", "/data/statistics.xml", "/data/cases."])
def test_unknown_format_is_not_found(directory, path):
    assert Client().get(path).status_code == 404


def test_withdrawn_text_is_left_out(cases):
    PublicCase.objects.filter(pk=cases["mapo"].pk).update(withdrawn=True)
    data = get_json(Client().get("/data/cases.json?district=마포구"))
    assert data["cases"][0]["withdrawn"] is True and data["cases"][0]["text"] == ""


# --- Statistics ------------------------------------------------------------------------


def test_statistics_agree_with_the_overview(cases):
    today = timezone.localdate()
    data = get_json(Client().get(f"/data/statistics.json?since={today}&until={today}"))
    assert data["schema_version"] == exports.SCHEMA_VERSION
    rows = data["statistics"]
    assert rows and all(r["day"] == today.isoformat() for r in rows)
    totals = {r["measure"]: r["count"] for r in rows if r["dimension"] == "all"}
    figures = overview().periods["today"]
    for measure, count in figures.counts.items():
        assert totals.get(measure, 0) == count, measure
    assert totals["received"] == len(TEXTS) and totals["relevant"] == len(cases)
    assert totals["answered"] == totals["on_time"] == 1
    assert totals["on_hold"] == totals["merged"] == 1
    by_district = {
        (r["key"], r["measure"]): r["count"] for r in rows if r["dimension"] == "district"
    }
    assert by_district[("마포구", "relevant")] == 1
    (answer_time,) = [r for r in rows if r["dimension"] == "answer_time"]
    assert answer_time["key"] in answer_time_labels() and answer_time["count"] == 1
    units = {r["key"]: r["name"] for r in rows if r["dimension"] == "unit"}
    assert units["district-jongno"] == Unit.objects.get(code="district-jongno").name


def test_statistics_csv_filters_and_batches(cases, monkeypatch):
    header, *rows = csv_rows(Client().get("/data/statistics.csv?dimension=channel"))
    assert header == [c.name for c in exports.STATISTICS_COLUMNS]
    assert rows and {r[1] for r in rows} == {"channel"}
    tomorrow = timezone.localdate() + timedelta(days=1)
    assert csv_rows(Client().get(f"/data/statistics.csv?since={tomorrow}"))[1:] == []
    # Small batches walk the composite key without losing or repeating a counter.
    monkeypatch.setattr(exports, "BATCH", 3)
    _, *batched = csv_rows(Client().get("/data/statistics.csv"))
    expected = Tally.objects.filter(period="day").exclude(count=0).count()
    assert len(batched) == expected
    keys = [tuple(r[:5]) for r in batched]
    assert len(set(keys)) == expected


# --- The page and the docs -------------------------------------------------------------


def test_data_page_lists_columns_links_with_filters_and_the_licence(directory, settings):
    html = Client().get("/data/?district=종로구&state=answered&page=9").content.decode()
    for column in exports.CASE_COLUMNS + exports.STATISTICS_COLUMNS:
        assert f"<code>{column.name}</code>" in html
    for measure in exports.MEASURES:
        assert f"<code>{measure.name}</code>" in html
    links = re.findall(r'href="(/data/[^"]*)"', html)
    query = "?district=%EC%A2%85%EB%A1%9C%EA%B5%AC&amp;state=answered"  # page= is not a filter
    assert f"/data/cases.csv{query}" in links and f"/data/cases.json{query}" in links
    assert "/data/statistics.json" in links and "/data/" in links  # and every case
    assert "공공누리 제1유형 (KOGL Type 1)" in html
    settings.SOTONG_OPEN_DATA_LICENCE = "CC BY 4.0"
    assert "CC BY 4.0" in Client().get("/data/").content.decode()


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each table of a Markdown text as rows of cells, header and rule left out."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current[2:])
            current = []
    return tables


def test_docs_describe_exactly_the_columns_and_measures():
    from django.utils import translation

    tables = markdown_tables(DOCS.read_text(encoding="utf-8"))

    def expected(columns: tuple[exports.Column, ...]) -> list[list[str]]:
        return [
            [f"`{c.name}`", c.type + (" or null" if c.nullable else ""), str(c.description)]
            for c in columns
        ]

    with translation.override("en"):
        assert expected(exports.CASE_COLUMNS) in tables
        assert expected(exports.STATISTICS_COLUMNS) in tables
        measures = [[f"`{m.name}`", m.dimensions, str(m.description)] for m in exports.MEASURES]
        assert measures in tables
    assert " · ".join(f"`{b}`" for b in answer_time_labels()) in DOCS.read_text(encoding="utf-8")
    assert f'"schema_version": "{exports.SCHEMA_VERSION}"' in DOCS.read_text(encoding="utf-8")


# --- The API description ---------------------------------------------------------------


def test_openapi_document_validates_and_agrees_with_the_files(directory, settings):
    settings.PUBLIC_URL = "https://sotong.example.org"
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": "https://sotong.example.org"}]
    schemas = document["components"]["schemas"]
    assert list(schemas["Case"]["properties"]) == CASE_NAMES
    assert list(schemas["StatisticsRow"]["properties"]) == [
        c.name for c in exports.STATISTICS_COLUMNS
    ]
    assert schemas["StatisticsRow"]["properties"]["measure"]["enum"] == [
        m.name for m in exports.MEASURES
    ]
    assert schemas["StatisticsRow"]["properties"]["dimension"]["enum"] == list(
        exports.STATISTICS_DIMENSIONS
    )
    for name in ("/live/overview.json", "/data/cases.{format}", "/open311/v2/requests.{format}"):
        assert name in document["paths"]


DOCUMENT = yaml.safe_load(OPENAPI_FILE.read_text(encoding="utf-8"))


def get_operations() -> list[tuple[str, str]]:
    """Each documented GET as a concrete address, once per format."""
    parameters = DOCUMENT["components"]["parameters"]
    found = []
    for template, item in DOCUMENT["paths"].items():
        if "get" not in item:
            continue
        path_parameters = [
            parameters[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
            for p in item["get"].get("parameters", [])
        ]
        path_parameters = [p for p in path_parameters if p["in"] == "path"]
        formats = next(
            (p["schema"]["enum"] for p in path_parameters if p["name"] == "format"), [""]
        )
        for fmt in formats:
            address = template.replace("{format}", fmt)
            for p in path_parameters:
                address = address.replace("{" + p["name"] + "}", str(p.get("example", "x")))
            found.append((template, address))
    return found


@pytest.mark.parametrize(("template", "address"), get_operations())
def test_every_documented_get_path_answers_as_documented(cases, template, address):
    # The example case number stands for a case that exists here.
    address = address.replace("S0000001", cases["personal"].number)
    try:
        resolve(address)
    except Resolver404:
        pytest.skip(f"{address} is not served in this checkout yet")
    try:
        response = Client().get(address)
    except NotImplementedError:
        pytest.skip(f"{address} is a stub in this checkout yet")
    responses = DOCUMENT["paths"][template]["get"]["responses"]
    assert str(response.status_code) in responses, (address, response.status_code)
    documented = responses[str(response.status_code)]
    if "$ref" in documented:
        documented = DOCUMENT["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    if "content" not in documented:
        return
    media_type = response["Content-Type"].split(";")[0]
    assert media_type in documented["content"], (address, media_type)
    if media_type == "application/json":
        content = b"".join(response.streaming_content) if response.streaming else response.content
        # The schema's $refs point into the document's components: give it them.
        schema = {
            **documented["content"][media_type]["schema"],
            "components": DOCUMENT["components"],
        }
        Draft202012Validator(schema).validate(json.loads(content))
