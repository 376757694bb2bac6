"""Each account's connector health (연결 상태) for the center's status page, and the
center's switches on an account's connector: off and on, and resume after re-authorization.

`assess` is pure over plain facts (the account's poll state and what its webhook and reply
deliveries count) and decides one state with the reasons a person reads; `account_health`
gathers those facts for every account in a bounded number of queries.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from sotong.channels import selectors
from sotong.channels.connectors.base import Connector
from sotong.channels.connectors.registry import connector_for_channel
from sotong.channels.models import PollState
from sotong.channels.outbox import retry_delivery
from sotong.channels.polling import is_polled, resume_polling, switch_polling
from sotong.directory.models import Account, Officer
from sotong.errors import PermissionDenied, SotongError

log = logging.getLogger(__name__)

# A webhook delivery waiting this long to be processed, or a polled account not fetched for
# this long (or three poll intervals, if longer), is lagging.
LAG_LIMIT = timedelta(minutes=5)
# Failed webhook deliveries are counted over this window.
FAILURE_WINDOW = timedelta(hours=24)


class HealthState(models.TextChoices):
    """From worst to best, as the page sorts and colours them."""

    SWITCHED_OFF = "off", gettext_lazy("switched off")
    NO_CONNECTOR = "no_connector", gettext_lazy("no connector installed")
    NOT_CONFIGURED = "not_configured", gettext_lazy("not configured")
    NEEDS_REAUTHORIZATION = "reauthorize", gettext_lazy("needs re-authorization")
    RATE_LIMITED = "rate_limited", gettext_lazy("rate limited")
    FAILING = "failing", gettext_lazy("failing")
    LAGGING = "lagging", gettext_lazy("lagging")
    WAITING = "waiting", gettext_lazy("nothing received yet")
    HEALTHY = "healthy", gettext_lazy("healthy")


@dataclass(frozen=True)
class AccountFacts:
    """What is known of one account's connector, as plain data."""

    connector: Connector | None
    switched_on: bool  # the account is active and its channel enabled
    polled: bool  # its connector fetches (PollState applies)
    polling_on: bool = True  # PollState.enabled
    missing_settings: tuple[str, ...] = ()  # required settings without a value
    needs_reauthorization: bool = False  # PollState.needs_reauthorization
    last_success_at: datetime | None = None  # PollState.last_success_at
    next_poll_at: datetime | None = None
    poll_errors: int = 0  # PollState.error_count (consecutive)
    last_error: str = ""  # PollState.last_error
    activity: selectors.WebhookActivity = field(default_factory=selectors.WebhookActivity)
    replies: selectors.ReplyActivity = field(default_factory=selectors.ReplyActivity)


@dataclass(frozen=True)
class AccountHealth:
    """One row of the status page."""

    account: Account
    facts: AccountFacts
    state: HealthState
    reasons: tuple[str, ...]
    lag: timedelta | None  # None: nothing to measure yet
    last_success_at: datetime | None  # the last fetch or webhook delivery
    rate_limited_until: datetime | None
    sends_stopped: bool  # answers from this account cannot be posted now

    @property
    def configured(self) -> bool:
        return self.facts.connector is not None and not self.facts.missing_settings

    @property
    def lag_minutes(self) -> int | None:
        return None if self.lag is None else int(self.lag.total_seconds() // 60)

    @property
    def switched_on(self) -> bool:
        return self.facts.switched_on and self.facts.polling_on


def _lag_limit(facts: AccountFacts) -> timedelta:
    if facts.polled and facts.connector is not None:
        return max(LAG_LIMIT, 3 * facts.connector.poll_interval)
    return LAG_LIMIT


def _lag(facts: AccountFacts, now: datetime) -> timedelta | None:
    lags = []
    if facts.polled and facts.last_success_at is not None:
        lags.append(now - facts.last_success_at)
    if facts.activity.oldest_pending_at is not None:
        lags.append(now - facts.activity.oldest_pending_at)
    elif facts.activity.last_received_at is not None:
        lags.append(timedelta(0))
    return max(lags) if lags else None


def _poll_rate_limited_until(facts: AccountFacts, now: datetime) -> datetime | None:
    if (
        facts.next_poll_at is not None
        and facts.next_poll_at > now
        and facts.last_error.startswith(selectors.POLL_RATE_LIMITED)
    ):
        return facts.next_poll_at
    return None


def assess(facts: AccountFacts, now: datetime) -> tuple[HealthState, list[str], bool]:
    """The account's state, the reasons a person reads, and whether sends stop. Pure."""
    reasons: list[str] = []
    if facts.connector is None:
        return HealthState.NO_CONNECTOR, [_("No connector for this channel is installed.")], True
    if not facts.switched_on or not facts.polling_on:
        reasons.append(
            _(
                "Switched off: nothing is received or fetched for this account, and answers "
                "to it are left to be replied elsewhere."
            )
        )
        return HealthState.SWITCHED_OFF, reasons, True
    if facts.missing_settings:
        reasons.append(
            _("Required settings missing: %(names)s.")
            % {"names": ", ".join(facts.missing_settings)}
        )
        return HealthState.NOT_CONFIGURED, reasons, True
    if facts.needs_reauthorization or facts.replies.reauthorization_failed:
        reasons.append(
            _(
                "The platform refused the account's token (expired or revoked). Fetching and "
                "sending replies from this account stop until a new token is saved in the "
                "account settings and the account is resumed."
            )
        )
        if facts.last_error:
            reasons.append(_("Last error: %(error)s") % {"error": facts.last_error})
        return HealthState.NEEDS_REAUTHORIZATION, reasons, True
    rate_limited_until = _poll_rate_limited_until(facts, now)
    if rate_limited_until is not None or facts.replies.rate_limited:
        if rate_limited_until is not None:
            reasons.append(_("Fetching waits for the platform's rate limit to reset."))
        if facts.replies.rate_limited:
            reasons.append(
                _("%(count)d replies wait for the platform's rate limit to reset.")
                % {"count": facts.replies.rate_limited}
            )
        return HealthState.RATE_LIMITED, reasons, False
    failing = False
    if facts.poll_errors:
        failing = True
        reasons.append(
            _("%(count)d fetches in a row failed: %(error)s")
            % {"count": facts.poll_errors, "error": facts.last_error}
        )
    if facts.activity.failed_recently:
        failing = True
        reasons.append(
            _("%(count)d webhook deliveries failed in the last 24 hours.")
            % {"count": facts.activity.failed_recently}
        )
    if facts.replies.failed:
        failing = True
        reasons.append(
            _("%(count)d replies failed; retry them or record a reply made by hand.")
            % {"count": facts.replies.failed}
        )
    if facts.replies.waiting:
        failing = True
        reasons.append(
            _("%(count)d replies wait to be tried again after an error.")
            % {"count": facts.replies.waiting}
        )
    if failing:
        return HealthState.FAILING, reasons, False
    lag = _lag(facts, now)
    if lag is None:
        return HealthState.WAITING, [_("Nothing has been received or fetched yet.")], False
    if lag > _lag_limit(facts):
        reasons.append(_("Behind by more than %(minutes)d minutes.") % {"minutes": lag // _MINUTE})
        return HealthState.LAGGING, reasons, False
    return HealthState.HEALTHY, reasons, False


_MINUTE = timedelta(minutes=1)


def _facts(
    account: Account,
    settings: Collection[str],
    activity: selectors.WebhookActivity,
    replies: selectors.ReplyActivity,
) -> AccountFacts:
    connector = connector_for_channel(account.channel.code)
    poll: PollState | None = getattr(account, "poll_state", None)
    polled = connector is not None and is_polled(connector)
    missing = tuple(
        f.name
        for f in (connector.settings_fields if connector else ())
        if f.required and f.name not in settings
    )
    return AccountFacts(
        connector=connector,
        switched_on=account.active and account.channel.enabled,
        polled=polled,
        polling_on=poll.enabled if (polled and poll is not None) else True,
        missing_settings=missing,
        needs_reauthorization=bool(poll and poll.needs_reauthorization),
        last_success_at=poll.last_success_at if poll else None,
        next_poll_at=poll.next_poll_at if poll else None,
        poll_errors=poll.error_count if poll else 0,
        last_error=poll.last_error if poll else "",
        activity=activity,
        replies=replies,
    )


def health_of(account: Account, facts: AccountFacts, now: datetime) -> AccountHealth:
    state, reasons, stopped = assess(facts, now)
    successes = [t for t in (facts.last_success_at, facts.activity.last_received_at) if t]
    limited_until = None
    if state == HealthState.RATE_LIMITED:
        limited_until = _poll_rate_limited_until(facts, now) or facts.replies.next_attempt_at
    return AccountHealth(
        account=account,
        facts=facts,
        state=state,
        reasons=tuple(reasons),
        lag=_lag(facts, now),
        last_success_at=max(successes) if successes else None,
        rate_limited_until=limited_until,
        sends_stopped=stopped,
    )


def account_health(now: datetime | None = None) -> list[AccountHealth]:
    """Every account's health, by channel and handle, in six queries whatever their
    number. An account whose replies go out through another account (the mayor's, through
    the center's) shares that account's stop."""
    now = now or timezone.now()
    accounts = list(selectors.connector_accounts())
    settings = selectors.stored_setting_names()
    activity = selectors.webhook_activity(now - FAILURE_WINDOW)
    replies = selectors.reply_activity(now)
    rows = [
        health_of(
            account,
            _facts(
                account,
                settings.get(account.pk, set()),
                activity.get(account.pk, selectors.WebhookActivity()),
                replies.get(account.pk, selectors.ReplyActivity()),
            ),
            now,
        )
        for account in accounts
    ]
    by_pk = {row.account.pk: row for row in rows}
    for i, row in enumerate(rows):
        via = by_pk.get(row.account.replies_via_id or 0)
        if via is not None and via.sends_stopped and not row.sends_stopped:
            note = _("Answers go out through %(account)s, which cannot send now: %(state)s.") % {
                "account": via.account.handle,
                "state": via.state.label,
            }
            rows[i] = replace(row, reasons=(*row.reasons, note), sends_stopped=True)
    return rows


# --- The center's switches --------------------------------------------------------------


def _check_center(actor: Officer) -> None:
    if not actor.sees_all_units:
        raise PermissionDenied("only the center can switch connectors")


@transaction.atomic
def switch_account(account: Account, *, on: bool, actor: Officer) -> None:
    """연결 켜기/끄기: the account's connector on or off. Off, its webhooks are refused,
    it is not polled and answers to it become "reply elsewhere"; on, it is polled at once.
    Other accounts are untouched."""
    _check_center(actor)
    Account.objects.filter(pk=account.pk).update(active=on)
    selectors.forget_hook_targets()  # update() sends no signal
    account.active = on
    connector = connector_for_channel(account.channel.code)
    if connector is not None and is_polled(connector):
        PollState.objects.get_or_create(account=account)
    switch_polling(PollState.objects.filter(account=account), on)
    log.info("%s switched the connector of %s %s", actor, account, "on" if on else "off")


def resume_account(account: Account, *, actor: Officer) -> tuple[int, int]:
    """재인증 후 재개: after a new token was saved, poll again at once with errors cleared,
    and send again the replies that failed for want of re-authorization. Returns (polls
    resumed, replies queued again)."""
    _check_center(actor)
    resumed = resume_polling(PollState.objects.filter(account=account))
    retried = 0
    for delivery in selectors.reauthorization_failures(account):
        try:
            retry_delivery(delivery, actor=actor)
            retried += 1
        except SotongError as exc:  # the case moved on (closed, merged): its page says so
            log.info("reply delivery %s not retried: %s", delivery.pk, exc)
    log.info("%s resumed %s: %d poll(s), %d reply(ies)", actor, account, resumed, retried)
    return resumed, retried
