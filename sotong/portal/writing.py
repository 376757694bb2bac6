"""Writing to the city: the web form (category hint, text, place, contact, photo) and the
receipt the citizen keeps. The form is guarded by `sotong.portal.abuse`; what it sends goes
through ingest and triage like any other message."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from sotong.cases.services import compute_case_deadline
from sotong.directory.models import CaseType, Category, PlaceDirectory, Unit
from sotong.errors import NotFound
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_message
from sotong.lib import korean_text, photos
from sotong.lib.photos import CleanPhoto, PhotoRejected
from sotong.portal import abuse

RECEIPT_SALT = "sotong.receipt"
RATE_SCOPE = "write"
PHOTO_FOLDER = "portal/photos"


def max_photo_bytes() -> int:
    return int(getattr(settings, "SOTONG_FORM_MAX_PHOTO_BYTES", 10 * 1024 * 1024))


def neighbourhoods() -> list[tuple[str, list[str]]]:
    """The 동 of each district, from the loaded gazetteer (행정동, in Korean order)."""
    data = PlaceDirectory.objects.order_by("-loaded_at").values_list("data", flat=True).first()
    found = []
    for district in (data or {}).get("districts", []):
        names = sorted((district.get("dong") or {}).keys())
        if district.get("name") and names:
            found.append((district["name"], names))
    return sorted(found)


PHOTO_ERRORS = {
    PhotoRejected.TOO_LARGE: _("The photo is larger than %(size)s. Please choose a smaller one."),
    PhotoRejected.EMPTY: _("The photo file is empty."),
    PhotoRejected.TOO_MANY_PIXELS: _("The photo is too large to process."),
    PhotoRejected.UNREADABLE: _(
        "This file is not a photo we can read. Please choose a JPEG, PNG or WebP image."
    ),
}


class WriteForm(forms.Form):
    category = forms.ChoiceField(
        label=_("What is it about? (optional)"),
        required=False,
        help_text=_("If you are not sure, leave it: the city decides."),
    )
    text = forms.CharField(
        label=_("What would you like to tell the city?"),
        widget=forms.Textarea(attrs={"rows": 6}),
        max_length=5000,
    )
    district = forms.ChoiceField(label=_("District (optional)"), required=False)
    neighbourhood = forms.ChoiceField(label=_("Neighbourhood, 동 (optional)"), required=False)
    contact = forms.CharField(
        label=_("Contact for the reply (optional, never shown publicly)"),
        help_text=_("An e-mail address or a phone number."),
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "email"}),
    )
    photo = forms.FileField(
        label=_("Photo (optional)"),
        required=False,
        widget=forms.FileInput(attrs={"accept": "image/*"}),
    )
    # The honeypot: hidden by a CSS class and from screen readers; people leave it empty.
    website = forms.CharField(
        label=_("Leave this field empty"),
        required=False,
        widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        english = (translation.get_language() or "").startswith("en")
        categories = Category.objects.filter(active=True).order_by("name")
        self.fields["category"].choices = [("", _("Let the city decide"))] + [  # type: ignore[attr-defined]
            (c.code, (c.name_en or c.name) if english else c.name) for c in categories
        ]
        districts = Unit.objects.filter(kind=Unit.Kind.DISTRICT, active=True).exclude(
            district_name=""
        )
        self.fields["district"].choices = [("", "—")] + sorted(  # type: ignore[attr-defined]
            (u.district_name, u.district_name) for u in districts
        )
        self.fields["neighbourhood"].choices = [("", "—")] + [  # type: ignore[attr-defined]
            (district, [(f"{district} {dong}", dong) for dong in dongs])
            for district, dongs in neighbourhoods()
        ]
        self.fields["photo"].help_text = _(
            "JPEG, PNG or WebP, up to %(size)s. Only city staff see it; its location data "
            "is removed."
        ) % {"size": filesizeformat(max_photo_bytes())}

    def clean_text(self) -> str:
        return korean_text.clean_text(self.cleaned_data["text"]).strip()

    def clean_contact(self) -> str:
        contact = korean_text.clean_text(self.cleaned_data["contact"]).strip()
        if not contact:
            return ""
        if "@" in contact:
            try:
                validate_email(contact)
            except ValidationError:
                raise ValidationError(_("This does not look like an e-mail address.")) from None
            return contact
        digits = "".join(ch for ch in contact if ch.isdigit())
        if not (8 <= len(digits) <= 15) or any(ch not in "0123456789+-(). " for ch in contact):
            raise ValidationError(_("Please give an e-mail address or a phone number."))
        return contact

    def clean_photo(self) -> CleanPhoto | None:
        upload = self.cleaned_data.get("photo")
        if not upload:
            return None
        limit = max_photo_bytes()
        try:
            if upload.size is not None and upload.size > limit:
                raise PhotoRejected(PhotoRejected.TOO_LARGE)
            upload.seek(0)
            return photos.clean_photo(upload, max_bytes=limit)
        except PhotoRejected as exc:
            raise ValidationError(
                PHOTO_ERRORS[exc.reason] % {"size": filesizeformat(limit)}
            ) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        district, _sep, dong = (data.get("neighbourhood") or "").partition(" ")
        if district:
            if data.get("district") and data["district"] != district:
                self.add_error(
                    "neighbourhood",
                    _("This neighbourhood is in %(district)s, not in the district chosen.")
                    % {"district": district},
                )
            data["district"] = district
        data["dong"] = dong
        return data


@dataclass(frozen=True)
class Written:
    """What the citizen sent, as the form checked it."""

    text: str
    category: str = ""
    district: str = ""
    dong: str = ""
    contact: str = ""
    photo: CleanPhoto | None = None


def text_for_triage(written: Written) -> str:
    """The text triage reads: the place the citizen picked, in front, unless the text names
    it already. A district named outright decides the district office; the 동 helps when the
    text names a landmark several districts share."""
    place = [p for p in (written.district, written.dong) if p and p not in written.text]
    return f"[{' '.join(place)}] {written.text}" if place else written.text


def send_to_city(written: Written) -> Message:
    """Store the photo (under a random name, for officers only) and ingest the message on
    the web channel; triage decides its category and unit."""
    attachments = []
    if written.photo is not None:
        name = default_storage.save(
            f"{PHOTO_FOLDER}/{secrets.token_hex(16)}.{written.photo.extension}",
            ContentFile(written.photo.content),
        )
        attachments.append(
            {
                "type": written.photo.content_type,
                "name": f"photo.{written.photo.extension}",
                "storage": name,
            }
        )
    raw: dict[str, Any] = {"form": "write", "contact": written.contact}
    if written.category:
        raw["category_hint"] = written.category
    if written.district:
        raw["district"] = written.district
    if written.dong:
        raw["neighbourhood"] = written.dong
    result = ingest_message(
        NormalizedMessage(
            channel="web",
            account="portal",
            external_id=f"web-{uuid.uuid4()}",
            text=text_for_triage(written),
            author=written.contact,
            attachments=attachments,
            raw=raw,
        )
    )
    return result.message


def _form_page(
    request: HttpRequest, form: WriteForm, *, problem: str = "", status: int = 200
) -> HttpResponse:
    return render(
        request,
        "portal/write.html",
        {
            "form": form,
            "problem": problem,
            "token": abuse.issue_form_token(),
            "max_photo_bytes": max_photo_bytes(),
            "max_photo_size": filesizeformat(max_photo_bytes()),
        },
        status=status,
    )


def _kept(request: HttpRequest) -> WriteForm:
    """The citizen's text and choices, to show again after a refusal (never the honeypot)."""
    data = request.POST.copy()
    data.pop(abuse.HONEYPOT_FIELD, None)
    return WriteForm(data)


def write(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _form_page(request, WriteForm())
    try:
        abuse.count_submission(request, RATE_SCOPE)
    except abuse.RateLimited as exc:
        response = _form_page(request, _kept(request), problem=exc.message, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    try:
        if abuse.honeypot_filled(request.POST):
            raise abuse.FormRejected(
                str(
                    _(
                        "We could not accept this form. If you are a person, please leave the "
                        "field “Leave this field empty” empty and send again."
                    )
                )
            )
        token = abuse.check_form_token(request.POST.get(abuse.TOKEN_FIELD, ""))
    except abuse.FormRejected as exc:
        return _form_page(request, _kept(request), problem=exc.message, status=exc.status)
    form = WriteForm(request.POST, request.FILES)
    if not form.is_valid():
        return _form_page(request, form)
    try:
        abuse.claim_form_token(token)
    except abuse.FormRejected as exc:
        return _form_page(request, _kept(request), problem=exc.message, status=exc.status)
    data = form.cleaned_data
    message = send_to_city(
        Written(
            text=data["text"],
            category=data["category"],
            district=data["district"],
            dong=data["dong"],
            contact=data["contact"],
            photo=data["photo"],
        )
    )
    token_out = signing.dumps(message.pk, salt=RECEIPT_SALT)
    return redirect("portal:receipt", token=token_out)


def receipt(request: HttpRequest, token: str) -> HttpResponse:
    """What the citizen who wrote sees: received when, expected by when, and the case number
    once triage has opened one. The signed token keeps other people's receipts private."""
    try:
        pk = signing.loads(token, salt=RECEIPT_SALT)
    except signing.BadSignature:
        raise NotFound("no such receipt") from None
    message = Message.objects.filter(pk=pk).select_related("case_link__case__unit").first()
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
            "receipt_url": settings.PUBLIC_URL + request.path,
            "photo_count": len(message.attachments or []),
        },
    )
