"""The minimal public site: published cases with masked text, a case page, and the form to
write to the city with its receipt. (The full portal — statistics, search, open data,
Open311 — builds on these selectors.)"""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from django.core import signing
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from sotong.cases import selectors
from sotong.cases.services import compute_case_deadline
from sotong.directory.models import CaseType, Unit
from sotong.errors import NotFound
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_message

RECEIPT_SALT = "sotong.receipt"


def home(request: HttpRequest) -> HttpResponse:
    number = request.GET.get("number", "").strip()
    if number:
        return redirect("portal:case", number=number)
    page = Paginator(selectors.public_cases(), 20).get_page(request.GET.get("page"))
    return render(request, "portal/home.html", {"page": page})


def case_page(request: HttpRequest, number: str) -> HttpResponse:
    case = selectors.get_public_case(number)
    return render(
        request,
        "portal/case.html",
        {
            "case": case,
            "messages_": selectors.public_case_messages(case),
            "answer": selectors.published_answer(case),
        },
    )


class WriteForm(forms.Form):
    text = forms.CharField(
        label=_("What would you like to tell the city?"),
        widget=forms.Textarea(attrs={"rows": 6}),
        max_length=5000,
    )
    district = forms.ChoiceField(label=_("District (optional)"), required=False)
    contact = forms.CharField(
        label=_("Contact for the reply (optional, never shown publicly)"),
        required=False,
        max_length=200,
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        districts = Unit.objects.filter(kind=Unit.Kind.DISTRICT, active=True).exclude(
            district_name=""
        )
        choices = [("", "—")] + [(u.district_name, u.district_name) for u in districts]
        self.fields["district"].choices = choices  # type: ignore[attr-defined]


def write(request: HttpRequest) -> HttpResponse:
    form = WriteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        text = form.cleaned_data["text"]
        if form.cleaned_data["district"] and form.cleaned_data["district"] not in text:
            text = f"[{form.cleaned_data['district']}] {text}"
        result = ingest_message(
            NormalizedMessage(
                channel="web",
                account="portal",
                external_id=f"web-{uuid.uuid4()}",
                text=text,
                author=form.cleaned_data["contact"],
                raw={"form": "write", "contact": form.cleaned_data["contact"]},
            )
        )
        token = signing.dumps(result.message.pk, salt=RECEIPT_SALT)
        return redirect("portal:receipt", token=token)
    return render(request, "portal/write.html", {"form": form})


def receipt(request: HttpRequest, token: str) -> HttpResponse:
    """What the citizen who wrote sees: received when, expected by when, and the case number
    once triage has opened one. The signed token keeps other people's receipts private."""
    try:
        pk = signing.loads(token, salt=RECEIPT_SALT)
    except signing.BadSignature:
        raise NotFound("no such receipt") from None
    message = Message.objects.filter(pk=pk).select_related("case_link__case").first()
    if message is None:
        raise NotFound("no such receipt")
    link = getattr(message, "case_link", None)
    case = link.case if link else None
    default_type = CaseType.objects.filter(code="request").first()
    expected = (
        case.deadline_at
        if case
        else (compute_case_deadline(default_type, message.received_at)[0] if default_type else None)
    )
    return render(
        request,
        "portal/receipt.html",
        {
            "message": message,
            "case": case,
            "expected": expected,
            "now": timezone.now(),
            "public_url": settings.PUBLIC_URL,
        },
    )
