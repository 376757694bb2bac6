"""What triage decided about each message, and every correction people made to it.

Corrections are kept as labelled examples so that a trained engine can learn from them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from sotong.directory.models import CaseType, Category, Unit
from sotong.inbox.models import Message


class TriageDecision(models.Model):
    """The triage result for one message: relevance, category, unit, confidence, reasons."""

    class Review(models.TextChoices):
        AUTOMATIC = "auto", _("routed automatically")
        WAITING = "waiting", _("waiting in the triage queue")
        REVIEWED = "reviewed", _("reviewed by the center")

    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, related_name="triage", verbose_name=_("message")
    )
    relevant = models.BooleanField(_("about city administration"), null=True)
    category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("category")
    )
    unit = models.ForeignKey(
        Unit, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("unit")
    )
    case_type = models.ForeignKey(
        CaseType, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("case type")
    )
    district_name = models.CharField(_("district named"), max_length=40, blank=True)
    urgent = models.BooleanField(_("urgent"), default=False)
    confidence = models.FloatField(_("confidence"))
    reasons = models.JSONField(_("reasons"), default=list)
    # The next most likely owners, [[code, probability], …], shown to whoever reviews it.
    alternatives = models.JSONField(_("alternatives"), default=list, blank=True)
    location = models.JSONField(_("place named"), default=dict, blank=True)
    # The rule set and the versions of the models that decided, in full (see engine_name).
    engine = models.CharField(_("engine and version"), max_length=200)
    review = models.CharField(_("review"), max_length=8, choices=Review.choices)
    decided_at = models.DateTimeField(_("decided at"), auto_now_add=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("triage decision")
        verbose_name_plural = _("triage decisions")
        indexes = [models.Index(fields=["review", "decided_at"])]

    def __str__(self) -> str:
        return f"triage of {self.message_id}"


class TriageCorrection(models.Model):
    """A person changed what triage decided: a labelled example for retraining."""

    class Field(models.TextChoices):
        RELEVANT = "relevant", _("relevance")
        CATEGORY = "category", _("category")
        UNIT = "unit", _("unit")

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="corrections")
    field = models.CharField(max_length=16, choices=Field.choices)
    before = models.CharField(max_length=80, blank=True)
    after = models.CharField(max_length=80, blank=True)
    engine = models.CharField(max_length=200, blank=True)  # of the decision corrected
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    corrected_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("triage correction")
        verbose_name_plural = _("triage corrections")

    def __str__(self) -> str:
        return f"{self.field}: {self.before} → {self.after}"


class TrainedModel(models.Model):
    """A trained triage model: its file, what it was trained on and how it measured.

    One model per kind is active; retraining adds a candidate and promotes it only when it
    measures no worse than the active one, and an administrator can roll back.
    """

    class Kind(models.TextChoices):
        RELEVANCE = "relevance", _("relevance")
        ROUTING = "routing", _("routing")

    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    version = models.CharField(_("version"), max_length=40, unique=True)
    path = models.CharField(_("file"), max_length=500)
    label_field = models.CharField(_("label"), max_length=40)
    data_sha256 = models.CharField(_("training data hash"), max_length=64)
    n_examples = models.PositiveIntegerField(_("training examples"))
    metrics = models.JSONField(_("metrics"), default=dict)
    created_at = models.DateTimeField(_("created at"))
    active = models.BooleanField(_("active"), default=False)
    promoted_at = models.DateTimeField(_("promoted at"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("trained model")
        verbose_name_plural = _("trained models")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(active=True), name="one_active_model_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.version}{' (active)' if self.active else ''}"
