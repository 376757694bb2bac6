"""Open311 GeoReport v2 views: parse, call a selector or the service, render in the asked
format. Every error, including a wrong method, format, jurisdiction or body, is answered
in the spec's error format with its HTTP status, from one place (`open311_view`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from sotong.errors import InvalidInput, NotAuthenticated, NotFound, SotongError
from sotong.inbox.api import read_body
from sotong.portal.caching import micro_cached
from sotong.portal.open311 import params, selectors
from sotong.portal.open311.formats import (
    CONTENT_TYPES,
    FORMATS,
    render_errors,
    render_list,
    render_object,
)
from sotong.portal.open311.services import authenticate, submit_service_request
from sotong.portal.selectors import is_english

logger = logging.getLogger(__name__)

DEFAULT_JURISDICTION = "seoul.go.kr"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)

View = Callable[..., HttpResponse]


def jurisdiction() -> str:
    return getattr(settings, "SOTONG_OPEN311_JURISDICTION", DEFAULT_JURISDICTION)


def _document(fmt: str, body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type=CONTENT_TYPES[fmt])


def error_response(fmt: str, status: int, description: str) -> HttpResponse:
    return _document(fmt, render_errors(fmt, [(status, description)]), status=status)


def _status(error: SotongError) -> int:
    # The spec answers a missing or wrong api_key with 403, not 401.
    return 403 if isinstance(error, NotAuthenticated) else error.status


def _check_jurisdiction(request: HttpRequest) -> None:
    given = (request.POST.get("jurisdiction_id") if request.method == "POST" else None) or (
        request.GET.get("jurisdiction_id", "")
    )
    given = given.strip()
    if given and given.lower() != jurisdiction().lower():
        raise NotFound(f"jurisdiction_id '{given[:100]}' was not found")


def open311_view(*methods: str) -> Callable[[View], View]:
    """An Open311 endpoint answering `methods` in `.json` or `.xml`, with every error in
    the spec's format. CSRF-exempt: clients are programs, and POST needs an api_key."""
    allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, fmt: str, **kwargs: Any) -> HttpResponse:
            out = fmt if fmt in FORMATS else "json"
            try:
                if request.method not in allowed:
                    response = error_response(
                        out, 405, f"method {request.method} is not allowed here"
                    )
                    response["Allow"] = ", ".join(sorted(allowed))
                    return response
                if fmt not in FORMATS:
                    raise NotFound(f"unknown format '.{fmt[:20]}': use .json or .xml")
                if request.method == "POST":
                    read_body(request)  # refuses an oversized body before parsing it
                _check_jurisdiction(request)
                return view(request, fmt, **kwargs)
            except SotongError as error:
                return error_response(out, _status(error), error.message)
            except RequestDataTooBig:
                return error_response(out, 413, "the request body is too large")
            except (SuspiciousOperation, MultiPartParserError, UnreadablePostError) as error:
                return error_response(out, 400, f"the request cannot be read: {error}"[:300])
            except Exception:
                logger.exception("Open311 %s %s failed", request.method, request.path)
                return error_response(out, 500, "general service error")

        return csrf_exempt(wrapper)

    return decorate


@open311_view("GET")
def service_list(request: HttpRequest, fmt: str) -> HttpResponse:
    records = selectors.service_list(english=is_english())
    return _document(fmt, render_list(fmt, "services", "service", records))


@open311_view("GET")
def service_definition(request: HttpRequest, fmt: str, code: str) -> HttpResponse:
    definition = selectors.service_definition(code) if params.is_service_code(code) else None
    if definition is None:
        raise NotFound(f"service_code '{code[:64]}' was not found")
    return _document(fmt, render_object(fmt, "service_definition", definition))


@micro_cached()  # a GET, alike for every client within the second; never a POST
@open311_view("GET", "POST")
def service_requests(request: HttpRequest, fmt: str) -> HttpResponse:
    if request.method == "POST":
        return _create(request, fmt)
    query = params.request_query(request.GET, timezone.now())
    records = selectors.service_requests(query, english=is_english())
    return _document(fmt, render_list(fmt, "service_requests", "request", records))


def _create(request: HttpRequest, fmt: str) -> HttpResponse:
    if request.content_type == "application/json":
        raise InvalidInput("send the request as application/x-www-form-urlencoded")
    connector = authenticate(request.POST.get("api_key") or request.GET.get("api_key", ""))
    submission = params.submission(request.POST)
    token = submit_service_request(submission, connector=connector)
    notice = _(
        "Received. Once it has been routed to the unit in charge, "
        "GET tokens/%(token)s.%(format)s gives its service_request_id."
    ) % {"token": token, "format": fmt}
    record = {"token": token, "service_notice": notice, "account_id": None}
    return _document(fmt, render_list(fmt, "service_requests", "request", [record]))


@open311_view("GET")
def service_request(request: HttpRequest, fmt: str, number: str) -> HttpResponse:
    case_id = params.parse_request_id(number)
    record = selectors.service_request(case_id, english=is_english()) if case_id else None
    if record is None:
        raise NotFound(f"service_request_id '{number[:30]}' was not found")
    return _document(fmt, render_list(fmt, "service_requests", "request", [record]))


@open311_view("GET")
def token_status(request: HttpRequest, fmt: str, token: str) -> HttpResponse:
    record = selectors.token_request(token) if _TOKEN.fullmatch(token) else None
    if record is None:
        raise NotFound("token was not found")
    return _document(fmt, render_list(fmt, "service_requests", "request", [record]))


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Anything else under /open311/v2/: the spec's 404, in XML when the path asks for it."""
    fmt = "xml" if request.path.endswith(".xml") else "json"
    return error_response(fmt, 404, "no such resource: see services, requests and tokens")
