"""Sotong's domain errors and the one place that turns them into HTTP responses.

Services raise these; views never catch them one by one. The API gets a JSON body that
names the problem, pages get a short error page with the same message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


class SotongError(Exception):
    """Base of every domain error: a machine code, a human message, an HTTP status."""

    code = "error"
    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class InvalidInput(SotongError):
    code = "invalid_input"
    status = 400


class PayloadTooLarge(SotongError):
    code = "payload_too_large"
    status = 413


class NotAuthenticated(SotongError):
    code = "not_authenticated"
    status = 401


class PermissionDenied(SotongError):
    code = "permission_denied"
    status = 403


class NotFound(SotongError):
    code = "not_found"
    status = 404


class IllegalTransition(SotongError):
    """The case's state does not allow this action (e.g. publishing a case on hold)."""

    code = "illegal_transition"
    status = 409


class GuidelineIncomplete(SotongError):
    """An answer misses required guideline elements and no override reason was given."""

    code = "guideline_incomplete"
    status = 422


def is_api_request(request: HttpRequest) -> bool:
    """Machines call the API and the webhooks: they get JSON, not an error page."""
    return request.path.startswith(("/api/", "/hooks/"))


def error_response(request: HttpRequest, error: SotongError) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse(error.as_dict(), status=error.status)
    return render(request, "error.html", {"error": error}, status=error.status)


class DomainErrorMiddleware:
    """Maps every SotongError raised by a view to its response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, SotongError):
            return error_response(request, exception)
        return None
