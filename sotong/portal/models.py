"""What the public sees, kept ready to read: one row per case with its masked text and the
columns the lists filter on (`PublicCase`), and the overview's counters (`Tally`).

Both are projections of the cases app, rewritten by `sotong.portal.projection` in the same
transaction as every change to a case, and rebuilt from scratch by `sotong rebuild-portal`.
Nothing else writes them; nothing in them is the source of truth.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from sotong.cases.models import Case, case_number
from sotong.directory.models import Category, Channel, Unit


class PublicState(models.TextChoices):
    """Where a case stands, as the public overview counts it. A case is in exactly one."""

    IN_PROGRESS = "in_progress", _("In progress")
    ON_HOLD = "on_hold", _("On hold")
    OVERDUE = "overdue", _("Overdue")
    ANSWERED = "answered", _("Answered")
    MERGED = "merged", _("Merged into another case")


class PublicCase(models.Model):
    """A case as the public portal, the open data and Open311 show it: masked text only.

    The list pages walk this table newest case first by primary key (keyset pagination),
    each filter with its own index; search goes through `search_tokens` (see
    `sotong.lib.search_text`), indexed by an FTS5 table on SQLite and a GIN-indexed
    tsvector column on PostgreSQL, both made by this app's migrations.
    """

    case = models.OneToOneField(
        Case, on_delete=models.CASCADE, primary_key=True, related_name="public"
    )
    state = models.CharField(_("state"), max_length=12, choices=PublicState.choices)
    status = models.CharField(_("status"), max_length=12)
    channel = models.ForeignKey(
        Channel, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    unit = models.ForeignKey(
        Unit, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    district_name = models.CharField(_("district"), max_length=40, blank=True)
    opened_at = models.DateTimeField(_("received at"))
    deadline_at = models.DateTimeField(_("deadline"))
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    answered_on_time = models.BooleanField(_("answered within the deadline"), default=False)
    updated_at = models.DateTimeField(_("last change"))
    # The opening message's masked text, empty when the citizen deleted it on the platform.
    text = models.TextField(_("message, personal data masked"), blank=True)
    withdrawn = models.BooleanField(_("deleted by the citizen"), default=False)
    answer_text = models.TextField(_("answer, personal data masked"), blank=True)
    hold_reason = models.TextField(_("public reason for the hold"), blank=True)
    merged_into = models.ForeignKey(
        Case, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reports = models.PositiveIntegerField(_("reports of this matter"), default=1)
    # sotong.lib.search_text: the normalized text searched for substrings, and its tokens.
    search_text = models.TextField(blank=True)
    search_tokens = models.TextField(blank=True)

    class Meta:
        verbose_name = _("public case")
        verbose_name_plural = _("public cases")
        indexes = [
            models.Index(fields=["channel", "-case"], name="publiccase_channel"),
            models.Index(fields=["category", "-case"], name="publiccase_category"),
            models.Index(fields=["unit", "-case"], name="publiccase_unit"),
            models.Index(fields=["district_name", "-case"], name="publiccase_district"),
            models.Index(fields=["state", "-case"], name="publiccase_state"),
            models.Index(fields=["opened_at"], name="publiccase_opened"),
            models.Index(fields=["updated_at"], name="publiccase_updated"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def number(self) -> str:
        return case_number(self.case_id)


class Tally(models.Model):
    """One counter of the overview: how many of something, for one period, by one dimension.

    `period` is "day" (the date itself) or "month" (its first day); `dimension` is "all"
    (key "") or one of channel, category, unit, district (key: the code or name), or
    "answer_time" (key: the bin of `sotong.portal.figures.ANSWER_TIME_BINS`). `measure` is
    "received" (messages), "relevant" (cases opened), a `PublicState`, "on_time" or
    "answered" for the answer-time bins. Changes add to the counters (an upsert of `+ n`),
    so concurrent writers never lose each other's counts.
    """

    period = models.CharField(max_length=5)
    day = models.DateField()
    dimension = models.CharField(max_length=12)
    key = models.CharField(max_length=64)
    measure = models.CharField(max_length=12)
    count = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("overview counter")
        verbose_name_plural = _("overview counters")
        constraints = [
            models.UniqueConstraint(
                fields=["period", "day", "dimension", "key", "measure"], name="tally_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.day} {self.dimension}={self.key} {self.measure}: {self.count}"
