"""What the channels keep: each account's connector settings (secret ones encrypted at
rest), every webhook delivery as it arrived, the items platforms say were deleted, and the
outbox of published answers going back to the citizens' threads."""

from __future__ import annotations

import base64

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from sotong.cases.models import Answer, Case
from sotong.directory.models import Account, Channel
from sotong.inbox.models import Message


class AccountSetting(models.Model):
    """One setting of an account's connector (앱 시크릿, 페이지 ID …).

    A secret value is stored as a Fernet token (sotong/channels/credentials.py) and never
    shown again; neither `__str__` nor `__repr__` nor the admin shows any value.
    """

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="settings", verbose_name=_("account")
    )
    name = models.CharField(_("setting"), max_length=64)
    secret = models.BooleanField(_("secret"), default=False, editable=False)
    # Plain text for an ordinary setting, a Fernet token for a secret one.
    stored_value = models.TextField(editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("account setting")
        verbose_name_plural = _("account settings")
        ordering = ["account", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="account_setting_unique")
        ]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.name}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("waiting")
    PROCESSED = "processed", _("processed")
    IGNORED = "ignored", _("ignored")
    FAILED = "failed", _("failed")


class WebhookDelivery(models.Model):
    """One signed webhook delivery, stored byte for byte before any parsing, so that a
    delivery the parser could not use is still there to look at and to process again.

    (account, body_sha256) is unique: a platform's retry or a replayed delivery is
    recognised and not processed twice.
    """

    account = models.ForeignKey(
        Account,
        on_delete=models.CASCADE,
        related_name="webhook_deliveries",
        verbose_name=_("account"),
    )
    platform = models.CharField(_("platform"), max_length=32)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    body = models.TextField(_("body"))
    body_is_base64 = models.BooleanField(_("body in base64"), default=False)
    body_sha256 = models.CharField(_("SHA-256 of the body"), max_length=64)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    reason = models.TextField(_("reason"), blank=True)
    message_count = models.PositiveIntegerField(_("new messages"), default=0)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "body_sha256"], name="webhook_delivery_once_per_body"
            )
        ]
        indexes = [
            models.Index(fields=["state", "received_at"]),
            # The connector status page: each account's latest delivery.
            models.Index(fields=["account", "received_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.platform} #{self.pk}"

    @property
    def raw_body(self) -> bytes:
        """The body exactly as it arrived."""
        if self.body_is_base64:
            return base64.b64decode(self.body)
        return self.body.encode("utf-8")


class Withdrawal(models.Model):
    """The platform says a citizen's item was deleted (삭제된 게시물).

    Kept by (channel, external id) rather than on the message, because a deletion may
    arrive before the item itself; public outputs are to leave such messages out.
    """

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, verbose_name=_("channel"))
    external_id = models.CharField(_("external id"), max_length=255)
    delivery = models.ForeignKey(
        WebhookDelivery,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="withdrawals",
        verbose_name=_("webhook delivery"),
    )
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("withdrawal")
        verbose_name_plural = _("withdrawals")
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], name="withdrawal_once_per_item"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.external_id}"


# --- Polling ----------------------------------------------------------------------------------


class PollStateQuerySet(models.QuerySet["PollState"]):
    def resume(self) -> int:
        """Poll these accounts again at once: new credentials were entered, or an
        administrator says the cause of the stop is fixed."""
        return self.update(
            needs_reauthorization=False, error_count=0, last_error="", next_poll_at=None
        )


class PollState(models.Model):
    """Where polling of one account stands (수집 상태): the platform's cursor, whether it is
    switched on, and its health for the center's status page.

    The cursor is written in the same transaction as the messages fetched with it, so it
    never runs ahead of what is stored (sotong/channels/polling.py).
    """

    account = models.OneToOneField(
        Account, on_delete=models.CASCADE, related_name="poll_state", verbose_name=_("account")
    )
    cursor = models.TextField(_("cursor"), blank=True)
    enabled = models.BooleanField(_("polling on"), default=True)
    needs_reauthorization = models.BooleanField(_("needs re-authorization"), default=False)
    # Null: due now. Also the lease of a running poll (see polling.LEASE).
    next_poll_at = models.DateTimeField(_("next poll at"), null=True, blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    last_success_at = models.DateTimeField(_("last success at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    error_count = models.PositiveIntegerField(_("consecutive errors"), default=0)
    items_total = models.PositiveBigIntegerField(_("messages fetched"), default=0)

    objects = PollStateQuerySet.as_manager()

    class Meta:
        verbose_name = _("poll state")
        verbose_name_plural = _("poll states")
        ordering = ["account"]
        indexes = [models.Index(fields=["enabled", "next_poll_at"])]

    def __str__(self) -> str:
        return f"poll {self.account_id}"


class ReplyState(models.TextChoices):
    PENDING = "pending", _("waiting to be sent")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    MANUAL = "manual", _("reply elsewhere")


class ReplyKind(models.TextChoices):
    ANSWER = "answer", _("answer")
    RECEIPT = "receipt", _("receipt")


class ReplyDelivery(models.Model):
    """One published answer going back to the citizen's message on its channel (답변 발송),
    or the case's receipt (접수 안내: case number and expected answer date, at most one per
    case, for accounts that send receipts).

    The outbox (sotong/channels/outbox.py) is its only writer. `idempotency_key` is fixed
    at creation and sent with every attempt, so a platform that honours it posts the reply
    once however often it is tried. `text` is exactly what is (or was) posted.
    """

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="reply_deliveries", verbose_name=_("case")
    )
    kind = models.CharField(
        _("kind"), max_length=8, choices=ReplyKind.choices, default=ReplyKind.ANSWER
    )
    answer = models.ForeignKey(
        Answer,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reply_deliveries",
        verbose_name=_("answer"),
    )
    message = models.ForeignKey(
        Message, on_delete=models.PROTECT, related_name="+", verbose_name=_("message answered")
    )
    # The account the reply is posted from (the message's account's reply account); none
    # for a message that came in through no account (web form, call center).
    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("reply account"),
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=120, unique=True)
    state = models.CharField(
        _("state"), max_length=8, choices=ReplyState.choices, default=ReplyState.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    # When the current send began: a delivery still `sending` long after is a crashed send.
    sending_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    platform_reply_id = models.CharField(_("reply id on the platform"), max_length=255, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("reply by hand recorded by"),
    )
    note = models.TextField(_("note"), blank=True)
    text = models.TextField(_("text posted"))
    # A numbered thread ("(1/3) …"), where the platform allows one and the text is longer
    # than one post; empty: `text` is posted as one.
    parts = models.JSONField(_("thread parts"), default=list, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("reply delivery")
        verbose_name_plural = _("reply deliveries")
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["answer", "message"], name="reply_delivery_once_per_answer_and_message"
            ),
            models.UniqueConstraint(
                fields=["case"],
                condition=models.Q(kind="receipt"),
                name="reply_delivery_one_receipt_per_case",
            ),
            models.CheckConstraint(
                condition=models.Q(kind="receipt") | models.Q(answer__isnull=False),
                name="reply_delivery_answer_has_answer",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["state", "sending_since"]),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} ({self.state})"
