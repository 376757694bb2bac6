"""Pages where officers bring messages in by hand: the 120 call-center import (upload, map
the columns, watch the progress, read the rejected rows) and the manual channel's form for
posts pasted from platforms with no API. Views parse and call `sotong.inbox.imports`."""

from __future__ import annotations

import csv

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from sotong.directory.models import Account, Officer
from sotong.errors import InvalidInput, NotFound
from sotong.inbox import imports
from sotong.inbox.models import ImportBatch
from sotong.inbox.normalize import MAX_URL

RECENT_BATCHES = 20
REJECTED_SHOWN = 200
PLATFORM_SUGGESTIONS = ("네이버 블로그", "네이버 카페", "다음 카페", "온라인 커뮤니티")


def _officer(request: HttpRequest) -> Officer:
    return request.user  # type: ignore[return-value]


def _batch(request: HttpRequest, pk: int) -> ImportBatch:
    imports.check_can_import(_officer(request))
    batch = ImportBatch.objects.select_related("account", "created_by").filter(pk=pk).first()
    if batch is None:
        raise NotFound("no such import")
    return batch


# --- Call-center import --------------------------------------------------------------------


class UploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Call-center file (CSV or Excel .xlsx)"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.xlsx,text/csv"}),
    )
    encoding = forms.ChoiceField(
        label=gettext_lazy("Text encoding of a CSV file"),
        choices=list(imports.ENCODINGS.items()),
        initial="auto",
    )


@login_required
def import_list(request: HttpRequest) -> HttpResponse:
    """Upload a file (step 1) and see the recent imports."""
    officer = _officer(request)
    imports.check_can_import(officer)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > imports.MAX_FILE_BYTES:
            raise InvalidInput(
                f"the file is larger than {imports.MAX_FILE_BYTES // (1024 * 1024)} MB",
                field="file",
            )
        batch = imports.upload_import(
            officer, upload.name, upload.read(), encoding=form.cleaned_data["encoding"]
        )
        return redirect("workbench:import_batch", pk=batch.pk)
    return render(
        request,
        "workbench/intake/imports.html",
        {
            "form": form,
            "fields": imports.FIELDS,
            "max_mb": imports.MAX_FILE_BYTES // (1024 * 1024),
            "max_rows": imports.MAX_ROWS,
            "batches": ImportBatch.objects.select_related("created_by").defer("content")[
                :RECENT_BATCHES
            ],
        },
    )


@login_required
def import_batch(request: HttpRequest, pk: int) -> HttpResponse:
    """Step 2, the column mapping, while the file waits for it; then its progress and report."""
    batch = _batch(request, pk)
    if batch.status != ImportBatch.Status.UPLOADED:
        return render(request, "workbench/intake/import_status.html", _status_context(batch))
    table, preview = imports.preview_rows(batch)
    chosen = {code: index for code, index in batch.mapping.items()}
    return render(
        request,
        "workbench/intake/import_mapping.html",
        {
            "batch": batch,
            "headers": list(enumerate(batch.headers)),
            "fields": [(spec, chosen.get(spec.code)) for spec in imports.FIELDS],
            "preview": preview,
            "broken_bytes": table.broken_bytes,
            "accounts": Account.objects.filter(channel__code=imports.CALLCENTER, active=True),
        },
    )


@login_required
@require_POST
def import_start(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _batch(request, pk)
    mapping: dict[str, int] = {}
    for spec in imports.FIELDS:
        value = request.POST.get(f"map_{spec.code}", "")
        if value == "":
            continue
        try:
            mapping[spec.code] = int(value)
        except ValueError:
            raise InvalidInput(f"'{spec.code}' names no column", field=spec.code) from None
    account = None
    if request.POST.get("account"):
        account = Account.objects.filter(
            pk=request.POST["account"] if request.POST["account"].isdigit() else 0,
            channel__code=imports.CALLCENTER,
        ).first()
        if account is None:
            raise InvalidInput("unknown account", field="account")
    imports.start_import(
        batch,
        _officer(request),
        mapping,
        account=account,
        strict=request.POST.get("strict") == "on",
    )
    return redirect("workbench:import_batch", pk=batch.pk)


def _status_context(batch: ImportBatch) -> dict[str, object]:
    shown = batch.rejected_rows[:REJECTED_SHOWN]
    return {
        "batch": batch,
        "percent": round(100 * batch.processed_rows / batch.total_rows) if batch.total_rows else 0,
        "rejected": [{**row, "reason": imports.describe(row)} for row in shown],
        "more_rejected": max(0, len(batch.rejected_rows) - len(shown)),
    }


@login_required
def import_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress fragment the status page polls (htmx) until the import has finished."""
    return render(
        request, "workbench/intake/_import_progress.html", _status_context(_batch(request, pk))
    )


@login_required
def import_rejected(request: HttpRequest, pk: int) -> HttpResponse:
    """The rejected rows as a CSV file (UTF-8 with BOM, which Excel opens correctly)."""
    batch = _batch(request, pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{batch.pk}-rejected.csv"'
    response.write("\ufeff")
    writer = csv.writer(response)
    writer.writerow([_("Row"), _("Source record id"), _("Reason")])
    for row in batch.rejected_rows:
        writer.writerow([row["row"], _spreadsheet_safe(row["record_id"]), imports.describe(row)])
    return response


def _spreadsheet_safe(value: str) -> str:
    """A value a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# --- Manual channel ------------------------------------------------------------------------


class ManualForm(forms.Form):
    text = forms.CharField(
        label=gettext_lazy("The post's text, as written"),
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=settings.SOTONG_MAX_TEXT_CHARS,
    )
    link = forms.URLField(
        label=gettext_lazy("Link to the post"), max_length=MAX_URL, assume_scheme="https"
    )
    platform = forms.CharField(
        label=gettext_lazy("Platform or source"),
        max_length=80,
        widget=forms.TextInput(attrs={"list": "platforms"}),
    )
    author = forms.CharField(label=gettext_lazy("Author as shown"), max_length=255, required=False)
    written_at = forms.DateTimeField(
        label=gettext_lazy("Written at"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    account = forms.ModelChoiceField(
        label=gettext_lazy("Account"),
        queryset=Account.objects.filter(channel__code=imports.MANUAL, active=True),
        required=False,
    )

    def clean_link(self) -> str:
        link: str = self.cleaned_data["link"]
        if not link.lower().startswith(("https://", "http://")):
            raise forms.ValidationError(_("The link must start with https:// or http://."))
        return link


@login_required
def manual_entry(request: HttpRequest) -> HttpResponse:
    officer = _officer(request)
    imports.check_can_enter_manually(officer)
    initial_account = (
        Account.objects.filter(channel__code=imports.MANUAL, active=True).order_by("pk").first()
    )
    form = ManualForm(request.POST or None, initial={"account": initial_account})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        result = imports.enter_manual_post(
            officer,
            imports.ManualPost(
                text=data["text"],
                link=data["link"],
                platform=data["platform"],
                written_at=data["written_at"],
                author=data["author"],
                account=data["account"],
            ),
        )
        if result.created:
            messages.success(request, _("The post was entered; triage will route it."))
        else:
            link = getattr(result.message, "case_link", None)
            where = (
                _(" (case %(number)s)") % {"number": link.case.number} if link is not None else ""
            )
            messages.info(
                request,
                _("This post was entered before%(where)s; nothing new was stored.")
                % {"where": where},
            )
        return redirect(reverse("workbench:manual_entry"))
    return render(
        request,
        "workbench/intake/manual.html",
        {
            "form": form,
            "platforms": PLATFORM_SUGGESTIONS,
            "recent": imports.recent_manual_messages(officer),
        },
    )
