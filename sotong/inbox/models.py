"""Normalized citizen messages (whatever channel they came from), connector tokens, and the
call-center import batches that officers upload."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from sotong.directory.models import Account, Channel


class TriageState(models.TextChoices):
    PENDING = "pending", _("waiting for triage")
    DONE = "done", _("triaged")


class Message(models.Model):
    """One message as a citizen wrote it, normalized across channels.

    (channel, external_id) is unique, so a message delivered twice is stored once. The text
    is kept exactly as given (HTML and scripts included) and escaped wherever it is shown.
    """

    channel = models.ForeignKey(
        Channel, on_delete=models.PROTECT, related_name="messages", verbose_name=_("channel")
    )
    account = models.ForeignKey(
        Account,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
        verbose_name=_("account"),
    )
    external_id = models.CharField(_("external id"), max_length=255)
    author_handle = models.CharField(_("author"), max_length=255, blank=True)
    text = models.TextField(_("text"))
    # The text with personal data masked, computed once at ingest by the one masking
    # function: every public output reads this, none masks on its own.
    public_text = models.TextField(_("text, personal data masked"))
    sent_at = models.DateTimeField(_("written at"))
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    attachments = models.JSONField(_("attachments"), default=list, blank=True)
    in_reply_to = models.CharField(_("in reply to"), max_length=255, blank=True)
    raw_payload = models.JSONField(_("raw payload"), null=True, blank=True)
    # Set when the platform says the citizen deleted it (sotong/channels Withdrawal), at
    # ingest if the deletion came first. Public outputs leave its text out; officers see it.
    withdrawn_at = models.DateTimeField(_("deleted on the platform at"), null=True, blank=True)
    triage_state = models.CharField(
        _("triage state"),
        max_length=8,
        choices=TriageState.choices,
        default=TriageState.PENDING,
    )

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], name="message_unique_per_channel"
            )
        ]
        indexes = [models.Index(fields=["triage_state", "received_at"])]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.external_id}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConnectorToken(models.Model):
    """A bearer token with which one connector posts messages to `POST /api/v1/messages`.

    Only the SHA-256 of the token is stored; the token itself is shown once, at creation.
    """

    name = models.CharField(_("name"), max_length=80, unique=True)
    channel = models.ForeignKey(
        Channel,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        verbose_name=_("limited to channel"),
        help_text=_("Empty: the token may post to any channel."),
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("connector token")
        verbose_name_plural = _("connector tokens")

    def __str__(self) -> str:
        return self.name


class ImportBatch(models.Model):
    """One uploaded call-center (120) file and what its import did: the file waits here for
    the column mapping, then a job checks every row and stores the valid ones at once.

    The uploaded bytes are kept while the import waits or runs (an interrupted run starts
    again from them) and emptied when it ends; the messages keep each row in their raw
    payload.
    """

    class Status(models.TextChoices):
        UPLOADED = "uploaded", _("waiting for the column mapping")
        QUEUED = "queued", _("waiting to start")
        VALIDATING = "validating", _("checking rows")
        SAVING = "saving", _("saving messages")
        DONE = "done", _("imported")
        FAILED = "failed", _("failed, nothing imported")

    class Kind(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel (.xlsx)"

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    filename = models.CharField(_("file name"), max_length=255)
    kind = models.CharField(_("file type"), max_length=8, choices=Kind.choices)
    encoding = models.CharField(_("text encoding"), max_length=32, blank=True)
    content = models.BinaryField(_("file"), editable=False, default=b"")
    headers = models.JSONField(_("column names"), default=list)
    mapping = models.JSONField(_("column mapping"), default=dict, blank=True)
    account = models.ForeignKey(
        Account,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("account"),
    )
    strict = models.BooleanField(_("import nothing if any row is rejected"), default=False)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.UPLOADED
    )
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    processed_rows = models.PositiveIntegerField(_("rows checked"), default=0)
    created_count = models.PositiveIntegerField(_("new messages"), default=0)
    already_count = models.PositiveIntegerField(_("already imported"), default=0)
    rejected_count = models.PositiveIntegerField(_("rejected rows"), default=0)
    # [{"row": 7, "record_id": "…", "code": "missing_text", "detail": ""}, …]
    rejected_rows = models.JSONField(_("rejected rows"), default=list, blank=True)
    error = models.TextField(_("error"), blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("call-center import")
        verbose_name_plural = _("call-center imports")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_status_display()})"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}
