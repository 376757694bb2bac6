"""JSON API for officers' tools: read a case, act on it. Session sign-in (and CSRF) as on
the pages; the same services and the same permission checks."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from sotong.cases import selectors
from sotong.cases.dispatch import perform
from sotong.cases.models import Case
from sotong.cases.workflow import Action
from sotong.directory.models import Officer
from sotong.errors import InvalidInput, NotAuthenticated
from sotong.inbox.api import read_body
from sotong.inbox.normalize import decode_json_body


def _officer(request: HttpRequest) -> Officer:
    if not request.user.is_authenticated:
        raise NotAuthenticated("sign in first")
    return request.user  # type: ignore[return-value]


def case_json(case: Case) -> dict[str, Any]:
    answers = selectors.case_answers(case)
    return {
        "id": case.pk,
        "number": case.number,
        "status": case.status,
        "unit": case.unit.code if case.unit else None,
        "officer": case.officer.get_username() if case.officer else None,
        "category": case.category.code if case.category else None,
        "case_type": case.case_type.code,
        "urgent": case.urgent,
        "district": case.district_name,
        "opened_at": case.opened_at.isoformat(),
        "deadline_at": case.deadline_at.isoformat(),
        "answered_at": case.answered_at.isoformat() if case.answered_at else None,
        "hold_reason": case.hold_reason,
        "merged_into": case.merged_into_id,
        "messages": [
            {
                "id": link.message.pk,
                "channel": link.message.channel.code,
                "text": link.message.text,
                "withdrawn_at": link.message.withdrawn_at.isoformat()
                if link.message.withdrawn_at
                else None,
            }
            for link in selectors.case_messages(case)
        ],
        "answer": (
            {
                "text": answers[-1].text,
                "published_at": answers[-1].published_at.isoformat()
                if answers[-1].published_at
                else None,
                "guideline": answers[-1].guideline_report,
            }
            if answers
            else None
        ),
    }


@require_GET
def get_case(request: HttpRequest, pk: int) -> JsonResponse:
    case = selectors.get_case_for(_officer(request), pk)
    return JsonResponse(case_json(case))


@require_POST
def case_action(request: HttpRequest, pk: int, action: str) -> JsonResponse:
    officer = _officer(request)
    case = selectors.get_case_for(officer, pk)
    params = decode_json_body(read_body(request)) if request.body else {}
    if not isinstance(params, dict):
        raise InvalidInput("the body must be a JSON object")
    result = perform(case, action, params, officer)
    body = case_json(selectors.get_case_for(officer, pk))
    if action == Action.SPLIT and isinstance(result, Case):
        body["split_into"] = {"id": result.pk, "number": result.number}
    return JsonResponse(body)
