"""Cases, their messages and answers, the append-only audit trail and notifications.

Models hold state only; every change goes through `sotong.cases.services`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from sotong.cases.workflow import CaseStatus
from sotong.directory.models import CaseType, Category, Unit
from sotong.inbox.models import Message


class Case(models.Model):
    """One matter a citizen raised, owned by a unit, answered by an officer before its deadline."""

    status = models.CharField(
        _("status"), max_length=12, choices=CaseStatus.choices, default=CaseStatus.NEW
    )
    case_type = models.ForeignKey(CaseType, on_delete=models.PROTECT, verbose_name=_("case type"))
    category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, verbose_name=_("category")
    )
    unit = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("unit"),
    )
    officer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("officer"),
    )
    district_name = models.CharField(_("district"), max_length=40, blank=True)
    urgent = models.BooleanField(_("urgent"), default=False)
    opened_at = models.DateTimeField(_("opened at"))
    deadline_at = models.DateTimeField(_("deadline"))
    # When the deadline sweep reminds the officer; kept so the sweep is one indexed query.
    remind_at = models.DateTimeField(_("reminder due"))
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    hold_reason = models.TextField(_("public reason for the hold"), blank=True)
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merged_cases",
        verbose_name=_("merged into"),
    )
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        indexes = [
            models.Index(fields=["unit", "status", "deadline_at"]),
            models.Index(fields=["status", "deadline_at"]),
            models.Index(fields=["status", "answered_at"]),
            models.Index(fields=["reminded_at", "remind_at"]),
            models.Index(fields=["escalated_at", "deadline_at"]),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def number(self) -> str:
        """The public case number given to the citizen (접수번호)."""
        return case_number(self.pk)


CASE_NUMBER_PREFIX = "S"


def case_number(pk: int | None) -> str:
    return f"{CASE_NUMBER_PREFIX}{pk:07d}" if pk is not None else "-"


def parse_case_number(number: str) -> int | None:
    number = number.strip().upper()
    if number.startswith(CASE_NUMBER_PREFIX):
        number = number[len(CASE_NUMBER_PREFIX) :]
    return int(number) if number.isdigit() and len(number) < 12 else None


class CaseMessage(models.Model):
    """A message belonging to a case; a message belongs to at most one case."""

    class Role(models.TextChoices):
        OPENED = "opened", _("opened the case")
        JOINED = "joined", _("joined the case")
        # The citizen's follow-up in the same platform thread (sotong/channels/threads.py).
        REPLY = "reply", _("follow-up in the thread")

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="case_messages")
    message = models.OneToOneField(Message, on_delete=models.PROTECT, related_name="case_link")
    role = models.CharField(max_length=8, choices=Role.choices)
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("case message")
        verbose_name_plural = _("case messages")

    def __str__(self) -> str:
        return f"{self.case} ← {self.message}"


class Answer(models.Model):
    """An officer's answer to a case. Drafts are edited in place; once published it is
    frozen, and a reopened case gets a new answer."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="answers")
    text = models.TextField(_("answer"))
    # Set at publishing by the one masking function; the public pages show only this.
    public_text = models.TextField(_("answer, personal data masked"), blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    guideline_report = models.JSONField(_("guideline check"), default=dict)
    override_reason = models.TextField(_("reason to publish despite missing elements"), blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("answer")
        verbose_name_plural = _("answers")
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"answer to {self.case}"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Bulk updates and deletes skip the model's guards, so the queryset refuses them too."""

    def update(self, **kwargs: object) -> int:
        raise ValueError("audit events cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ValueError("audit events cannot be deleted")


class AuditEvent(models.Model):
    """Who did what to a case, when, with the state before and after. Append-only:
    the model refuses updates and deletes, and a database trigger refuses them too."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="audit_events")
    action = models.CharField(max_length=32)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    actor_label = models.CharField(max_length=120)
    at = models.DateTimeField(db_index=True)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    note = models.TextField(blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} by {self.actor_label}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("audit events cannot be changed")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("audit events cannot be deleted")


class Notification(models.Model):
    """An in-app notice to an officer: assignment, reminder before a deadline, escalation."""

    class Kind(models.TextChoices):
        ASSIGNED = "assigned", _("assigned")
        URGENT = "urgent", _("urgent case")
        REMINDER = "reminder", _("deadline approaching")
        ESCALATION = "escalation", _("deadline passed")
        APPROVAL = "approval", _("approval requested")
        REPLY = "reply", _("the citizen replied after the answer")

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [
            # Sweeps may run twice; one reminder (or escalation) per case and person.
            models.UniqueConstraint(fields=["recipient", "case", "kind"], name="notification_once")
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.case} for {self.recipient}"
