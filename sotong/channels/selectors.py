"""Reads the channels share: which account a webhook URL names, a case's reply deliveries,
and what the center's connector pages count (accounts' settings, deliveries, the outbox)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import BooleanField, Count, ExpressionWrapper, Max, Min, Q, QuerySet

from sotong.cases.models import Case
from sotong.channels.connectors.base import AccountConfig, Connector
from sotong.channels.credentials import account_config
from sotong.channels.models import (
    AccountSetting,
    DeliveryState,
    ReplyDelivery,
    ReplyState,
    WebhookDelivery,
)
from sotong.channels.outbox import LOCAL_PREFIX, NEEDS_REAUTHORIZATION, RATE_LIMITED
from sotong.directory.models import Account
from sotong.errors import NotFound

# How a last_error begins when the platform's rate limit holds it: the poller writes the
# exception's name ("RateLimited: …"), the outbox its RATE_LIMITED prefix.
POLL_RATE_LIMITED = "RateLimited"


# Webhook targets (the account and its decrypted settings) are kept this long per process:
# reading and decrypting them was half the cost of accepting a delivery. A change made in
# this process clears them at once (signals in apps.py); other processes see it within
# this time.
HOOK_TARGET_SECONDS = 10.0
_hook_targets: dict[tuple[str, str], tuple[float, Account, AccountConfig]] = {}


def hook_target(connector: Connector, handle: str) -> tuple[Account, AccountConfig]:
    """The account a webhook is for (see `hook_account`) and its settings, decrypted."""
    key = (connector.platform, handle)
    now = time.monotonic()
    cached = _hook_targets.get(key)
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    account = hook_account(connector, handle)
    config = account_config(account)
    if len(_hook_targets) > 10_000:  # handles come from URLs: bound what they can fill
        _hook_targets.clear()
    _hook_targets[key] = (now + HOOK_TARGET_SECONDS, account, config)
    return account, config


def forget_hook_targets(**_: object) -> None:
    """An account, its settings or its channel changed: read them again."""
    _hook_targets.clear()


def hook_account(connector: Connector, handle: str) -> Account:
    """The active account with this handle on one of the connector's channels (enabled),
    or NotFound. If two channels of one connector had the same handle, the first channel
    by code wins; handles differ in practice (a page name, an @name)."""
    account = (
        Account.objects.select_related("channel")
        .filter(
            channel__code__in=connector.channel_codes(),
            channel__enabled=True,
            handle=handle,
            active=True,
        )
        .order_by("channel__code")
        .first()
    )
    if account is None:
        raise NotFound(f"no active {connector.platform} account '{handle}'")
    return account


def case_deliveries(case: Case) -> QuerySet[ReplyDelivery]:
    """The case's reply deliveries, oldest first, with what the case page shows of them."""
    return (
        ReplyDelivery.objects.filter(case=case)
        .select_related("account__channel", "message__channel", "recorded_by")
        .order_by("created_at", "pk")
    )


# --- The center's connector pages --------------------------------------------------------


def connector_accounts() -> QuerySet[Account]:
    """Every account with what its status row shows (channel, unit, reply account, poll
    state), by channel and handle."""
    return Account.objects.select_related(
        "channel", "unit", "replies_via__channel", "poll_state"
    ).order_by("channel__code", "handle")


def get_account(pk: int) -> Account:
    account = connector_accounts().filter(pk=pk).first()
    if account is None:
        raise NotFound(f"no account #{pk}")
    return account


def stored_setting_names(accounts: Iterable[int] | None = None) -> dict[int, set[str]]:
    """The names of the settings each account has a value for (values are not read)."""
    rows = AccountSetting.objects.exclude(stored_value="")
    if accounts is not None:
        rows = rows.filter(account_id__in=list(accounts))
    found: dict[int, set[str]] = defaultdict(set)
    for account_id, name in rows.values_list("account_id", "name"):
        found[account_id].add(name)
    return dict(found)


@dataclass(frozen=True)
class WebhookActivity:
    """An account's webhook deliveries, as the status page counts them."""

    last_received_at: datetime | None = None
    oldest_pending_at: datetime | None = None
    failed_recently: int = 0


def webhook_activity(failed_since: datetime) -> dict[int, WebhookActivity]:
    """Per account: the last delivery received, the oldest still waiting to be processed,
    and how many failed since `failed_since`. One grouped query."""
    rows = WebhookDelivery.objects.values("account_id").annotate(
        last=Max("received_at"),
        oldest_pending=Min("received_at", filter=Q(state=DeliveryState.PENDING)),
        failed=Count("pk", filter=Q(state=DeliveryState.FAILED, received_at__gte=failed_since)),
    )
    return {
        row["account_id"]: WebhookActivity(row["last"], row["oldest_pending"], row["failed"])
        for row in rows.order_by()
    }


@dataclass(frozen=True)
class ReplyActivity:
    """An account's reply deliveries (as the reply account), as the status page counts them.

    `reauthorization_failed`: the newest delivery the platform answered (sent by the outbox,
    or failed) failed because the platform wants the account re-authorized."""

    failed: int = 0
    waiting: int = 0  # pending after an error, until next_attempt_at
    rate_limited: int = 0  # of those, waiting for the platform's rate-limit reset
    next_attempt_at: datetime | None = None
    reauthorization_failed: bool = False


def reply_activity(now: datetime) -> dict[int, ReplyActivity]:
    """Per reply account: failed deliveries, those waiting to retry, and whether the last
    answer from the platform was "needs re-authorization". Two grouped queries."""
    waiting = Q(state=ReplyState.PENDING, next_attempt_at__gt=now) & ~Q(last_error="")
    reauthorization = Q(state=ReplyState.FAILED, last_error__startswith=NEEDS_REAUTHORIZATION)
    rows = (
        ReplyDelivery.objects.filter(account__isnull=False)
        .values("account_id")
        .annotate(
            failed=Count("pk", filter=Q(state=ReplyState.FAILED)),
            waiting=Count("pk", filter=waiting),
            rate_limited=Count(
                "pk",
                filter=waiting
                & (
                    Q(last_error__istartswith=RATE_LIMITED)
                    | Q(last_error__startswith=POLL_RATE_LIMITED)
                ),
            ),
            next_attempt=Min("next_attempt_at", filter=waiting),
            last_reauthorization=Max("pk", filter=reauthorization),
            last_sent=Max("pk", filter=Q(state=ReplyState.SENT, recorded_by__isnull=True)),
        )
        .order_by()
    )
    return {
        row["account_id"]: ReplyActivity(
            failed=row["failed"],
            waiting=row["waiting"],
            rate_limited=row["rate_limited"],
            next_attempt_at=row["next_attempt"],
            reauthorization_failed=row["last_reauthorization"] is not None
            and (row["last_sent"] is None or row["last_reauthorization"] > row["last_sent"]),
        )
        for row in rows
    }


def reauthorization_failures(account: Account) -> QuerySet[ReplyDelivery]:
    """The account's deliveries that failed because it needs re-authorization."""
    return ReplyDelivery.objects.filter(
        account=account,
        state=ReplyState.FAILED,
        last_error__startswith=NEEDS_REAUTHORIZATION,
    ).order_by("pk")


OUTBOX_PAGE = 200


def outbox_deliveries(state: str = "") -> QuerySet[ReplyDelivery]:
    """The outbox, newest first, optionally of one state, each marked `local` when the
    demo's local outbox took it instead of a platform; bounded by the caller."""
    deliveries = (
        ReplyDelivery.objects.select_related("case", "account__channel", "message__channel")
        .annotate(
            local=ExpressionWrapper(
                Q(platform_reply_id__startswith=LOCAL_PREFIX), output_field=BooleanField()
            )
        )
        .order_by("-created_at", "-pk")
    )
    return deliveries.filter(state=state) if state else deliveries
