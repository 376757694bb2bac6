"""The city's directory: units, officers, case types, categories with their triage rules,
channels and official accounts.

All of it is data a city edits (in the admin, or by loading a directory file); nothing
here names Seoul.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class Unit(models.Model):
    """A city department, a district office (자치구청) or the center (소셜미디어센터)."""

    class Kind(models.TextChoices):
        CENTER = "center", _("Center")
        DEPARTMENT = "department", _("City department")
        DISTRICT = "district", _("District office")

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=120)
    name_en = models.CharField(_("English name"), max_length=120, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    phone = models.CharField(_("public phone"), max_length=40, blank=True)
    requires_approval = models.BooleanField(
        _("answers need a supervisor's approval"), default=False
    )
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("parent unit")
    )
    district_name = models.CharField(
        _("district governed"),
        max_length=40,
        blank=True,
        help_text=_("For a district office: the district's name as citizens write it (종로구)."),
    )
    aliases = models.JSONField(_("other names in texts"), default=list, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("unit")
        verbose_name_plural = _("units")
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name


class Officer(AbstractUser):
    """A person who signs in: center operator, officer (업무담당자), supervisor or administrator."""

    class Role(models.TextChoices):
        CENTER = "center", _("Center operator")
        OFFICER = "officer", _("Officer")
        SUPERVISOR = "supervisor", _("Supervisor")
        ADMINISTRATOR = "admin", _("Administrator")

    unit = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="officers",
        verbose_name=_("unit"),
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.OFFICER)
    phone = models.CharField(_("work phone"), max_length=40, blank=True)

    class Meta:
        verbose_name = _("officer")
        verbose_name_plural = _("officers")

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    @property
    def sees_all_units(self) -> bool:
        """Center operators and administrators work across units; others within their own."""
        return self.role in {self.Role.CENTER, self.Role.ADMINISTRATOR} or self.is_superuser


class DeadlineUnit(models.TextChoices):
    BUSINESS_DAYS = "business_days", _("business days")
    CLOCK_HOURS = "clock_hours", _("clock hours")


class CaseType(models.Model):
    """A kind of case with its deadline policy (처리기한): simple opinion, request, urgent…"""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=80)
    name_en = models.CharField(_("English name"), max_length=80, blank=True)
    deadline_amount = models.PositiveIntegerField(_("deadline"))
    deadline_unit = models.CharField(
        _("deadline unit"), max_length=16, choices=DeadlineUnit.choices
    )
    urgent = models.BooleanField(_("urgent (notify at once)"), default=False)

    class Meta:
        verbose_name = _("case type")
        verbose_name_plural = _("case types")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Category(models.Model):
    """A matter citizens write about, the city unit that owns it, and whether it is
    usually a district matter (then a district named in the text takes it)."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=80)
    name_en = models.CharField(_("English name"), max_length=80, blank=True)
    owner = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="owned_categories", verbose_name=_("owner")
    )
    district_matter = models.BooleanField(_("usually a district matter"), default=False)
    case_type = models.ForeignKey(CaseType, on_delete=models.PROTECT, verbose_name=_("case type"))
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TriageRule(models.Model):
    """One keyword or regular expression of the rule layer.

    With a category it votes for that category; without one it is a request cue, a sign
    that a text asks something of the city even when no category is recognised.
    """

    class Kind(models.TextChoices):
        KEYWORD = "keyword", _("keyword")
        PATTERN = "pattern", _("regular expression")

    category = models.ForeignKey(
        Category,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="rules",
        verbose_name=_("category"),
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    text = models.CharField(_("keyword or pattern"), max_length=200)
    weight = models.FloatField(_("weight"), default=1.0)

    class Meta:
        verbose_name = _("triage rule")
        verbose_name_plural = _("triage rules")
        constraints = [
            models.UniqueConstraint(fields=["category", "kind", "text"], name="triage_rule_unique")
        ]

    def __str__(self) -> str:
        return self.text

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from sotong.triage.rules import validate_pattern

        if self.kind == self.Kind.PATTERN:
            try:
                validate_pattern(self.text)
            except ValueError as exc:
                raise ValidationError({"text": str(exc)}) from exc


class Channel(models.Model):
    """A way citizens reach the city: X, Instagram, e-mail, the 120 call center, the web form…"""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=80)
    name_en = models.CharField(_("English name"), max_length=80, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("channel")
        verbose_name_plural = _("channels")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """An official account on a channel; replies may go out from another account
    (the mayor's account is answered by the center's reply account)."""

    channel = models.ForeignKey(
        Channel, on_delete=models.PROTECT, related_name="accounts", verbose_name=_("channel")
    )
    handle = models.CharField(_("handle"), max_length=120)
    name = models.CharField(_("name"), max_length=120)
    unit = models.ForeignKey(
        Unit, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("run by")
    )
    replies_via = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="replies_for",
        verbose_name=_("replies posted by"),
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["channel", "handle"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "handle"], name="account_unique_handle")
        ]

    def __str__(self) -> str:
        return f"{self.channel.code}:{self.handle}"

    @property
    def reply_account(self) -> Account:
        return self.replies_via or self


class PlaceDirectory(models.Model):
    """The city's gazetteer (districts with their 동, stations, landmarks, roads), as loaded
    from its `gazetteer.yaml`: triage reads it to tell where a message is about."""

    data = models.JSONField(_("gazetteer"))
    loaded_at = models.DateTimeField(_("loaded at"), auto_now=True)

    class Meta:
        verbose_name = _("gazetteer")
        verbose_name_plural = _("gazetteer")

    def __str__(self) -> str:
        return f"gazetteer ({len(self.data.get('districts', []))} districts)"
