"""Account settings and webhook deliveries in the admin.

A secret setting is entered once and never shown again: the admin says only whether it
is set, and a new value replaces it. Deliveries are read-only, for looking into one the
parser ignored or that failed; so are poll states, with actions to switch polling on or off
and to resume it after re-authorization.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from sotong.channels.credentials import set_account_setting, setting_fields
from sotong.channels.models import (
    AccountSetting,
    PollState,
    PollStateQuerySet,
    WebhookDelivery,
    Withdrawal,
)
from sotong.channels.polling import resume_polling, switch_polling
from sotong.errors import InvalidInput


class AccountSettingForm(forms.ModelForm):
    new_value = forms.CharField(
        label=_("new value"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Secret values are never shown again. Leave empty to keep the stored value."),
    )

    class Meta:
        model = AccountSetting
        fields = ["account", "name"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        account, name = data.get("account"), data.get("name")
        if account is not None and name:
            fields = setting_fields(account)
            if name not in fields:
                known = ", ".join(sorted(fields)) or "-"
                self.add_error("name", _("Not a setting of this account's connector (%s).") % known)
        if not data.get("new_value") and self.instance.pk is None:
            self.add_error("new_value", _("Enter a value."))
        return data


@admin.register(AccountSetting)
class AccountSettingAdmin(admin.ModelAdmin):
    form = AccountSettingForm
    list_display = ["account", "name", "secret", "shown_value", "updated_at"]
    list_filter = ["account__channel", "secret"]
    list_select_related = ["account__channel"]
    search_fields = ["account__handle", "name"]

    @admin.display(description=_("value"))
    def shown_value(self, setting: AccountSetting) -> str:
        if setting.secret:
            return str(_("set")) if setting.stored_value else str(_("not set"))
        return setting.stored_value

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["account", "name", "shown_value"] if obj is not None else []

    def save_model(
        self, request: HttpRequest, obj: AccountSetting, form: Any, change: bool
    ) -> None:
        value = form.cleaned_data.get("new_value")
        if not value:  # an unchanged secret: nothing to store
            return
        try:
            saved = set_account_setting(obj.account, obj.name, value)
        except InvalidInput as exc:  # form.clean checked the name already
            raise ValueError(exc.message) from exc
        obj.pk, obj.secret, obj.stored_value = saved.pk, saved.secret, saved.stored_value


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["pk", "platform", "account", "received_at", "state", "message_count", "reason"]
    list_filter = ["platform", "state"]
    list_select_related = ["account__channel"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Withdrawal)
class WithdrawalAdmin(admin.ModelAdmin):
    list_display = ["external_id", "channel", "recorded_at"]
    list_filter = ["channel"]
    search_fields = ["external_id"]


@admin.register(PollState)
class PollStateAdmin(admin.ModelAdmin):
    list_display = [
        "account",
        "enabled",
        "needs_reauthorization",
        "last_success_at",
        "last_attempt_at",
        "next_poll_at",
        "error_count",
        "last_error",
        "items_total",
    ]
    list_filter = ["enabled", "needs_reauthorization", "account__channel"]
    list_select_related = ["account__channel"]
    search_fields = ["account__handle"]
    readonly_fields = [f.name for f in PollState._meta.fields]
    actions = ["enable", "disable", "resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Switch polling on"), permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[PollState]) -> None:
        switch_polling(queryset, True)

    @admin.action(description=_("Switch polling off"), permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[PollState]) -> None:
        switch_polling(queryset, False)

    @admin.action(description=_("Resume polling (after re-authorization)"), permissions=["change"])
    def resume(self, request: HttpRequest, queryset: PollStateQuerySet) -> None:
        resume_polling(queryset)
