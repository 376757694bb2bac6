"""What the channels keep: each account's connector settings (secret ones encrypted at
rest), every webhook delivery as it arrived, and the items platforms say were deleted."""

from __future__ import annotations

import base64

from django.db import models
from django.utils.translation import gettext_lazy as _

from sotong.directory.models import Account, Channel


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
        indexes = [models.Index(fields=["state", "received_at"])]

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
