"""Open data: cases and statistics as CSV and JSON downloads, the page that explains them,
and the machine-readable description of the public API (OpenAPI 3.1, from openapi.yaml).
The files' columns and rows come from `sotong.portal.exports`."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from sotong.cases.models import case_number
from sotong.portal import exports
from sotong.portal.filters import case_key, filters_from_query
from sotong.portal.selectors import CaseFilters, answer_time_labels

DEFAULT_LICENCE = "공공누리 제1유형 (KOGL Type 1)"
FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")
# The query parameters of the case list that the downloads take too.
CASE_PARAMETERS = ("channel", "category", "unit", "district", "state", "since", "until", "q")


def licence() -> str:
    return getattr(settings, "SOTONG_OPEN_DATA_LICENCE", DEFAULT_LICENCE)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise Http404("unknown format")


def _filters_echo(filters: CaseFilters) -> dict[str, str]:
    values = {
        "channel": filters.channel,
        "category": filters.category,
        "unit": filters.unit,
        "district": filters.district,
        "state": filters.state,
        "since": filters.since.isoformat() if filters.since else "",
        "until": filters.until.isoformat() if filters.until else "",
        "q": filters.query,
    }
    return {name: value for name, value in values.items() if value}


def _limit(query: QueryDict) -> int | None:
    """The `limit` parameter: a positive whole number, or absent for every row."""
    value = query.get("limit", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError("limit must be a positive whole number")
    return int(value)


def _download(chunks: Iterator[str], fmt: str, name: str) -> StreamingHttpResponse:
    stamp = timezone.localdate().strftime("%Y%m%d")
    response = StreamingHttpResponse(
        (chunk.encode("utf-8") for chunk in chunks), content_type=FORMATS[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="sotong-{name}-{stamp}.{fmt}"'
    # Public data without cookies or credentials: any site may read it.
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _envelope(filters: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": exports.SCHEMA_VERSION,
        "generated_at": timezone.localtime().isoformat(timespec="seconds"),
        "licence": licence(),
        "filters": filters,
    }


def cases(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The filtered public cases, newest first, streamed; `before` (a case number) and
    `limit` take a file in parts."""
    _check_format(fmt)
    filters = filters_from_query(request.GET)
    before = case_key(request.GET.get("before", "").strip())
    try:
        limit = _limit(request.GET)
    except ValueError as error:
        return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
    export = exports.CaseExport(filters, before=before, limit=limit)
    if fmt == "csv":
        return _download(exports.csv_stream(exports.CASE_COLUMNS, export.records()), fmt, "cases")
    echo: dict[str, Any] = _filters_echo(filters)
    if before is not None:
        echo["before"] = case_number(before)
    if limit is not None:
        echo["limit"] = limit

    def trailer() -> dict[str, Any]:
        following = None
        if export.next_before is not None:
            query = request.GET.copy()
            query["before"] = case_number(export.next_before)
            following = f"{settings.PUBLIC_URL}{request.path}?{query.urlencode()}"
        return {"count": export.count, "next": following}

    return _download(
        exports.json_stream(_envelope(echo), "cases", export.records(), trailer), fmt, "cases"
    )


def statistics(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The daily counters, streamed: filtered by `since`, `until` and `dimension`."""
    _check_format(fmt)
    period = filters_from_query(request.GET)
    dimension = request.GET.get("dimension", "").strip()
    filters = exports.StatisticsFilters(
        since=period.since,
        until=period.until,
        dimension=dimension if dimension in exports.STATISTICS_DIMENSIONS else "",
    )
    records = exports.statistics_records(filters)
    if fmt == "csv":
        chunks = exports.csv_stream(exports.STATISTICS_COLUMNS, records)
    else:
        echo = {
            "since": filters.since.isoformat() if filters.since else "",
            "until": filters.until.isoformat() if filters.until else "",
            "dimension": filters.dimension,
        }
        envelope = _envelope({k: v for k, v in echo.items() if v})
        chunks = exports.json_stream(envelope, "statistics", records)
    return _download(chunks, fmt, "statistics")


def index(request: HttpRequest) -> HttpResponse:
    """What the downloads are, with links carrying the list's current filters."""
    query = QueryDict(mutable=True)
    for name in CASE_PARAMETERS:
        if value := request.GET.get(name, "").strip():
            query[name] = value
    suffix = f"?{query.urlencode()}" if query else ""
    links = {
        f"{kind}_{fmt}": reverse(f"portal:data_{kind}", kwargs={"fmt": fmt})
        for kind in ("cases", "statistics")
        for fmt in FORMATS
    }
    return render(
        request,
        "portal/data.html",
        {
            "links": links,
            "case_suffix": suffix,
            "filters": _filters_echo(filters_from_query(request.GET)),
            "case_columns": exports.CASE_COLUMNS,
            "statistics_columns": exports.STATISTICS_COLUMNS,
            "measures": exports.MEASURES,
            "answer_time_bins": answer_time_labels(),
            "schema_version": exports.SCHEMA_VERSION,
            "licence": licence(),
            "openapi": reverse("portal:openapi"),
        },
    )


@cache
def _openapi_document() -> dict[str, Any]:
    with OPENAPI_FILE.open(encoding="utf-8") as file:
        document: dict[str, Any] = yaml.safe_load(file)
    return document


def openapi_document() -> dict[str, Any]:
    """The API description with this installation's address as its server."""
    document = copy.deepcopy(_openapi_document())
    document["servers"] = [{"url": settings.PUBLIC_URL}]
    if licence() != DEFAULT_LICENCE:
        document["info"]["license"] = {"name": licence()}
    return document


def api_description(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(openapi_document(), json_dumps_params={"ensure_ascii": False})
    response["Access-Control-Allow-Origin"] = "*"
    return response
