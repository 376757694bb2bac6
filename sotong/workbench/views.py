"""Pages for the center and officers: the triage queue, the unit inbox, the case page with
its actions and the live guideline check. Views parse, call a service or selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from sotong.cases import selectors
from sotong.cases.dispatch import perform
from sotong.cases.models import Case
from sotong.cases.permissions import check_permission
from sotong.cases.services import (
    check_case_answer,
    current_answer,
    mark_notifications_read,
    requires_approval,
)
from sotong.cases.workflow import Action, CaseStatus, allowed_actions
from sotong.channels.selectors import case_deliveries
from sotong.directory.models import Category, Officer, Unit
from sotong.errors import InvalidInput, PermissionDenied
from sotong.triage import selectors as triage_selectors
from sotong.triage.services import review_decision
from sotong.workbench.connectors import answer_preview


def _officer(request: HttpRequest) -> Officer:
    return request.user  # type: ignore[return-value]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if _officer(request).sees_all_units:
        return redirect("workbench:triage")
    return redirect("workbench:inbox")


@login_required
def triage_queue(request: HttpRequest) -> HttpResponse:
    officer = _officer(request)
    if not officer.sees_all_units:
        raise PermissionDenied("only the center reviews triage")
    return render(
        request,
        "workbench/triage_queue.html",
        {
            "decisions": triage_selectors.explain(triage_selectors.waiting_decisions()[:100]),
            "waiting": triage_selectors.waiting_decisions().count(),
            "categories": Category.objects.filter(active=True).select_related("owner"),
            "units": Unit.objects.filter(active=True),
        },
    )


@login_required
@require_POST
def triage_review(request: HttpRequest, pk: int) -> HttpResponse:
    officer = _officer(request)
    decision = triage_selectors.get_decision(pk)
    relevant = request.POST.get("relevant") == "yes"
    category = Category.objects.filter(code=request.POST.get("category", "")).first()
    unit = Unit.objects.filter(code=request.POST.get("unit", "")).first()
    if relevant and unit is None and category is not None:
        unit = category.owner
    case = review_decision(decision, actor=officer, relevant=relevant, category=category, unit=unit)
    if request.headers.get("HX-Request"):
        return render(request, "workbench/_triage_done.html", {"decision": decision, "case": case})
    return redirect("workbench:triage")


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    officer = _officer(request)
    status = request.GET.get("status", "open")
    if status not in {"open", ""} and status not in CaseStatus.values:
        raise InvalidInput("unknown status", field="status")
    cases = selectors.unit_inbox(officer, status=status)[:200]
    return render(
        request,
        "workbench/inbox.html",
        {
            "cases": cases,
            "status": status,
            "statuses": CaseStatus.choices,
            "notifications": selectors.unread_notifications(officer)[:20],
        },
    )


@login_required
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    officer = _officer(request)
    case = selectors.get_case_for(officer, pk)
    mark_notifications_read(officer, case)
    answer = current_answer(case)
    draft = answer if answer and answer.published_at is None else None
    actions = []
    for action in allowed_actions(case.status, requires_approval=requires_approval(case)):
        try:
            check_permission(officer, action, case)
        except PermissionDenied:
            continue
        actions.append(str(action))
    return render(
        request,
        "workbench/case.html",
        {
            "case": case,
            "messages_": selectors.case_messages(case),
            "triage": triage_selectors.case_decision(case),
            "timeline": selectors.case_timeline(case),
            "answers": selectors.case_answers(case),
            "deliveries": case_deliveries(case),
            "draft": draft,
            "report": check_case_answer(case, draft.text) if draft else None,
            "preview": answer_preview(case, draft.text) if draft else None,
            "actions": actions,
            "units": Unit.objects.filter(active=True),
            "categories": Category.objects.filter(active=True),
            "colleagues": Officer.objects.filter(unit_id=case.unit_id, is_active=True)
            if case.unit_id
            else [],
        },
    )


@login_required
@require_POST
def case_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    officer = _officer(request)
    case = selectors.get_case_for(officer, pk)
    result = perform(case, action, request.POST, officer)
    if action == Action.MERGE:
        return redirect("workbench:inbox")
    if action == Action.SPLIT and isinstance(result, Case):
        messages.success(
            request,
            _("The message now has a case of its own: %(number)s.") % {"number": result.number},
        )
    return redirect("workbench:case", pk=case.pk)


@login_required
@require_POST
def check_answer(request: HttpRequest, pk: int) -> HttpResponse:
    """The live guideline check under the answer form (HTMX, as the officer types)."""
    case = selectors.get_case_for(_officer(request), pk)
    text = request.POST.get("text", "")
    report = check_case_answer(case, text) if text.strip() else None
    return render(
        request,
        "workbench/_guideline.html",
        {"report": report, "preview": answer_preview(case, text)},
    )
