"""The center's channel pages: the connector status of every account (연결 상태) with its
switches, each account's settings with the platform's guide (계정 설정), the outbox of
replies (답변 발송함), and the answer preview under the case page's answer form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from sotong.cases.models import Case
from sotong.cases.services import public_numbers_for
from sotong.channels import selectors
from sotong.channels.connectors.base import Connector, SettingField
from sotong.channels.credentials import connector_of, set_account_setting
from sotong.channels.guides import guide_for, platform_of_channel
from sotong.channels.health import account_health, resume_account, switch_account
from sotong.channels.models import AccountSetting, ReplyState
from sotong.channels.outbox import answered_message, public_case_link, reply_text, sending_connector
from sotong.channels.polling import is_polled
from sotong.directory.models import Account, Officer
from sotong.errors import InvalidInput, PermissionDenied
from sotong.lib.masking import mask_personal_data


def _center(request: HttpRequest) -> Officer:
    officer: Officer = request.user  # type: ignore[assignment]
    if not officer.sees_all_units:
        raise PermissionDenied("only the center manages the channels' connectors")
    return officer


# --- 연결 상태 ----------------------------------------------------------------------------


@login_required
def status(request: HttpRequest) -> HttpResponse:
    _center(request)
    return render(request, "workbench/connectors/status.html", {"rows": account_health()})


@login_required
@require_POST
def switch(request: HttpRequest, pk: int) -> HttpResponse:
    officer = _center(request)
    account = selectors.get_account(pk)
    on = request.POST.get("on") == "1"
    switch_account(account, on=on, actor=officer)
    text = _("%(account)s is switched on.") if on else _("%(account)s is switched off.")
    messages.success(request, text % {"account": account})
    return redirect(reverse("workbench:connectors") + f"#account-{account.pk}")


@login_required
@require_POST
def resume(request: HttpRequest, pk: int) -> HttpResponse:
    officer = _center(request)
    account = selectors.get_account(pk)
    _polls, replies = resume_account(account, actor=officer)
    messages.success(
        request,
        _("%(account)s resumed; %(count)d failed replies queued again.")
        % {"account": account, "count": replies},
    )
    return redirect(reverse("workbench:connectors") + f"#account-{account.pk}")


# --- 계정 설정 ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingRow:
    """One setting on the page: a secret shows only whether it is set, never its value."""

    field: SettingField
    is_set: bool
    value: str  # "" for a secret, always


def _setting_rows(account: Account) -> list[SettingRow]:
    connector = connector_of(account)
    stored = {s.name: s for s in AccountSetting.objects.filter(account=account)}
    rows = []
    for f in connector.settings_fields if connector else ():
        setting = stored.get(f.name)
        is_set = bool(setting and setting.stored_value)
        value = "" if f.secret or setting is None else setting.stored_value
        rows.append(SettingRow(field=f, is_set=is_set, value=value))
    return rows


def _save_settings(account: Account, rows: list[SettingRow], data: Any) -> list[str]:
    """Store what changed: a secret only when a new value is typed (empty keeps it), a
    plain setting when its value differs. Returns the names saved."""
    saved = []
    for row in rows:
        name = row.field.name
        if name not in data:
            continue
        value = data.get(name, "")
        if row.field.secret:
            if not value:
                continue
        else:
            value = value.strip()
            if value == row.value:
                continue
        set_account_setting(account, name, value)
        saved.append(name)
    return saved


@login_required
def account_settings(request: HttpRequest, pk: int) -> HttpResponse:
    _center(request)
    account = selectors.get_account(pk)
    connector = connector_of(account)
    rows = _setting_rows(account)
    if request.method == "POST":
        saved = _save_settings(account, rows, request.POST)
        if saved:
            labels = [r.field.label for r in rows if r.field.name in saved]
            messages.success(request, _("Saved: %(names)s.") % {"names": ", ".join(labels)})
        else:
            messages.info(request, _("Nothing changed."))
        return redirect("workbench:account_settings", pk=account.pk)
    platform = connector.platform if connector else platform_of_channel(account.channel.code)
    # By the connector's platform; a city's own connector for a known channel gets its guide.
    guide = guide_for(platform) or guide_for(platform_of_channel(account.channel.code))
    webhook_url = settings.PUBLIC_URL + reverse("hook", args=[platform, account.handle])
    return render(
        request,
        "workbench/connectors/settings.html",
        {
            "account": account,
            "connector": connector,
            "rows": rows,
            "guide": guide,
            "webhook_url": webhook_url,
            "polled": connector is not None and is_polled(connector),
            "sends": connector is not None and sending_connector(account.channel.code) is not None,
        },
    )


# --- 답변 발송함 --------------------------------------------------------------------------


@login_required
def outbox(request: HttpRequest) -> HttpResponse:
    _center(request)
    state = request.GET.get("state", "")
    if state and state not in ReplyState.values:
        raise InvalidInput("unknown state", field="state")
    deliveries = selectors.outbox_deliveries(state)[: selectors.OUTBOX_PAGE]
    return render(
        request,
        "workbench/connectors/outbox.html",
        {
            "deliveries": deliveries,
            "state": state,
            "states": ReplyState.choices,
            "page_size": selectors.OUTBOX_PAGE,
        },
    )


# --- The answer preview ------------------------------------------------------------------


@dataclass(frozen=True)
class PostPreview:
    """One post as the platform will count it."""

    text: str
    count: int


@dataclass(frozen=True)
class AnswerPreview:
    """What publishing will post on the case's channel (게시 미리보기)."""

    channel: str
    account: str  # the handle it is posted from
    posts: list[PostPreview]  # one, or the numbered thread's parts
    limit: int  # 0: no limit
    cut: bool  # the answer was shortened to fit
    elsewhere: bool  # the channel cannot post: an officer replies by another way
    counting: str  # how the platform counts, in words


def answer_preview(case: Case, text: str) -> AnswerPreview | None:
    """Exactly what `deliver_answer` would post for `text`, masked as publishing masks it,
    fitted by the platform's own counting rule (sotong.channels.outbox.reply_text). None:
    no text, or the case has no message to answer."""
    if not text.strip():
        return None
    message = answered_message(case)
    if message is None:
        return None
    account = message.account.reply_account if message.account else None
    connector = sending_connector(message.channel.code) if account else None
    can_send = connector is not None and account is not None and account.active
    raw = message.raw_payload if isinstance(message.raw_payload, dict) else {}
    body = mask_personal_data(text, allow=public_numbers_for(case))
    posted, parts = reply_text(body, public_case_link(case), connector if can_send else None, raw)
    if not can_send or connector is None:
        return AnswerPreview(
            channel=message.channel.name,
            account=account.handle if account else "",
            posts=[PostPreview(posted, len(posted))],
            limit=0,
            cut=False,
            elsewhere=True,
            counting=_("characters"),
        )
    full, _parts = reply_text(body, public_case_link(case), None)
    counted = connector.length
    posts = [PostPreview(p, counted(p)) for p in (parts or [posted])]
    weighted = type(connector).length is not Connector.length
    return AnswerPreview(
        channel=message.channel.name,
        account=account.handle if account else "",
        posts=posts,
        limit=connector.reply_limit(raw),
        cut=not parts and posted != full,
        elsewhere=False,
        counting=_("as the platform counts") if weighted else _("characters"),
    )
