"""Polling: the accounts whose platform is read by fetching (e-mail over IMAP, and later X
mentions, Mastodon, YouTube) are fetched by the cursor each keeps in its PollState.

`poll_due` (every minute) queues `poll_account` for each account that is due, and the IMAP
IDLE watcher (sotong/channels/mail_idle.py) queues it when a server announces mail. A poll
claims its account for a lease in a short transaction, fetches outside any transaction (a slow
server holds no lock), then stores the messages and the new cursor in one transaction: a
crash never moves the cursor past messages not stored, and a retry stores nothing twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    ConnectorError,
    FetchResult,
    NeedsReauthorization,
    PermanentError,
    RateLimited,
    TransientError,
    retry_delay,
)
from sotong.channels.connectors.registry import connector_for_channel, connectors
from sotong.channels.credentials import CredentialsUnreadable, account_config
from sotong.channels.models import PollState, PollStateQuerySet
from sotong.channels.services import record_withdrawals
from sotong.directory.models import Account
from sotong.errors import SotongError
from sotong.inbox.services import ingest_batch
from sotong.jobs.queue import enqueue

log = logging.getLogger(__name__)

POLL_JOB = "sotong.channels.polling.poll_account"
EVERY = timedelta(minutes=1)  # an account in good health, at most (Connector.poll_interval)
SLOW = timedelta(hours=1)  # after a permanent error, or while settings are missing
# A running poll holds its account this long, longer than a job may run
# (SOTONG_JOB_TIMEOUT_SECONDS, 300 s): a worker killed mid-fetch frees it when it ends.
LEASE = timedelta(minutes=10)
# poll_due ticks once a minute and a poll starts a moment after its tick: an account due
# a few seconds after the tick is taken at that tick rather than a whole minute later.
EARLY = timedelta(seconds=15)
MAX_ERROR_CHARS = 2000


def is_polled(connector: Connector) -> bool:
    """Whether the connector fetches (the base class's `fetch` says it does not)."""
    return type(connector).fetch is not Connector.fetch


def polled_accounts() -> QuerySet[Account]:
    """Active accounts, on enabled channels, whose connector fetches."""
    codes = {code for c in connectors().values() if is_polled(c) for code in c.channel_codes()}
    return Account.objects.filter(active=True, channel__enabled=True, channel__code__in=codes)


def missing_settings(connector: Connector, config: AccountConfig) -> list[str]:
    """The required settings the account lacks (polling waits for them)."""
    return [f.name for f in connector.settings_fields if f.required and not config.get(f.name)]


def _due_filter(now: datetime) -> Q:
    return Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now + EARLY)


def poll_due() -> int:
    """The scheduled job: queue a poll for every polled account that is due, switched on
    and not waiting for re-authorization; returns how many were queued."""
    accounts = polled_accounts()
    new = accounts.filter(poll_state__isnull=True).values_list("pk", flat=True)
    PollState.objects.bulk_create([PollState(account_id=pk) for pk in new], ignore_conflicts=True)
    due = list(
        PollState.objects.filter(account__in=accounts, enabled=True, needs_reauthorization=False)
        .filter(_due_filter(timezone.now()))
        .values_list("account_id", flat=True)
    )
    for account_id in due:
        enqueue(POLL_JOB, account_id)
    return len(due)


def poll_account(account_id: int, *, woken: bool = False) -> str:
    """The job: fetch the account's new items and store them with the new cursor. Returns
    what happened: "polled", or why not ("not due", "busy", "disabled", an error …).

    `woken`: the platform has just announced new items (IMAP IDLE), so the account is
    polled now even if not due; a poll that holds it (its lease) is still waited for."""
    account = Account.objects.select_related("channel").filter(pk=account_id).first()
    connector = connector_for_channel(account.channel.code) if account else None
    if account is None or connector is None or not is_polled(connector):
        return "not polled"
    if not (account.active and account.channel.enabled):
        return "inactive"
    PollState.objects.get_or_create(account=account)
    claimed = _claim(account, woken=woken)
    if isinstance(claimed, str):
        return claimed
    state, claimed_at = claimed, claimed.last_attempt_at
    assert claimed_at is not None
    try:
        config = account_config(account)
        missing = missing_settings(connector, config)
        if missing:
            error = f"not configured: missing {', '.join(missing)}"
            _record_error(state, claimed_at, error, timezone.now() + SLOW, count=False)
            return "not configured"
        result = connector.fetch(config, state.cursor)
    except RateLimited as exc:
        # Taken EARLY before next_poll_at: add it, so no poll starts before retry_at.
        retry = max(exc.retry_at, timezone.now()) + EARLY
        _record_error(state, claimed_at, _describe(exc), retry, count=False)
        return "rate limited"
    except (NeedsReauthorization, CredentialsUnreadable) as exc:
        _record_error(state, claimed_at, _describe(exc), None, reauthorize=True)
        return "needs re-authorization"
    except PermanentError as exc:
        _record_error(state, claimed_at, _describe(exc), timezone.now() + SLOW)
        return "permanent error"
    except (TransientError, ConnectorError) as exc:
        _record_error(
            state, claimed_at, _describe(exc), timezone.now() + retry_delay(state.error_count + 1)
        )
        return "transient error"
    except NotImplementedError as exc:  # the connector does not fetch for this account
        _record_error(state, claimed_at, str(exc), timezone.now() + SLOW)
        return "not polled"
    except Exception as exc:
        _record_error(
            state, claimed_at, _describe(exc), timezone.now() + retry_delay(state.error_count + 1)
        )
        raise
    try:
        return _store(account, state, claimed_at, result, connector.poll_interval)
    except SotongError as exc:  # the channel was switched off, the handle does not match
        _record_error(state, claimed_at, _describe(exc), timezone.now() + SLOW)
        return "not stored"
    except Exception as exc:
        _record_error(
            state, claimed_at, _describe(exc), timezone.now() + retry_delay(state.error_count + 1)
        )
        raise


def _claim(account: Account, *, woken: bool = False) -> PollState | str:
    """Take the account for one poll, or say why not; a row another worker is locking at
    this moment is skipped rather than waited for, where the database can skip."""
    skip_locked = connection.features.has_select_for_update_skip_locked
    now = timezone.now()
    with transaction.atomic():
        state = (
            PollState.objects.select_for_update(skip_locked=skip_locked)
            .filter(account=account)
            .first()
        )
        if state is None:
            return "busy"
        if not state.enabled:
            return "disabled"
        if state.needs_reauthorization:
            return "needs re-authorization"
        if state.next_poll_at is not None and state.next_poll_at > now + EARLY:
            # A running poll holds the account until exactly LEASE after its claim; a woken
            # poll waits for it too (the running poll may well fetch the announced mail).
            leased = state.last_attempt_at is not None and (
                state.next_poll_at == state.last_attempt_at + LEASE
            )
            if leased or not woken:
                return "not due"  # also while another poll holds the lease
        state.last_attempt_at = now
        state.next_poll_at = now + LEASE
        state.save(update_fields=["last_attempt_at", "next_poll_at"])
    return state


def _locked_if_still_ours(state: PollState, claimed_at: datetime) -> PollState | None:
    current = PollState.objects.select_for_update().get(pk=state.pk)
    if current.last_attempt_at != claimed_at:
        # The lease ran out and another poll took the account: its cursor stands.
        log.warning("poll of account %s outlived its lease; result dropped", state.account_id)
        return None
    return current


def _store(
    account: Account,
    state: PollState,
    claimed_at: datetime,
    result: FetchResult,
    interval: timedelta = EVERY,
) -> str:
    with transaction.atomic():
        current = _locked_if_still_ours(state, claimed_at)
        if current is None:
            return "superseded"
        new = ingest_batch(result.delivery.messages)
        record_withdrawals(account.channel, result.delivery.withdrawals)
        current.cursor = result.cursor
        current.last_success_at = timezone.now()
        current.next_poll_at = claimed_at + max(EVERY, interval)
        current.error_count = 0
        current.last_error = ""
        current.items_total += len(new)
        current.save()
    return "polled"


def _record_error(
    state: PollState,
    claimed_at: datetime,
    error: str,
    next_poll_at: datetime | None,
    *,
    count: bool = True,
    reauthorize: bool = False,
) -> None:
    # The connectors' messages and the platforms' errors name hosts and users, never the
    # decrypted settings; those stay in the account's config, which is not logged.
    log.warning("polling account %s: %s", state.account_id, error)
    with transaction.atomic():
        current = _locked_if_still_ours(state, claimed_at)
        if current is None:
            return
        current.last_error = error[:MAX_ERROR_CHARS]
        current.error_count += 1 if count else 0
        current.next_poll_at = next_poll_at
        current.needs_reauthorization = current.needs_reauthorization or reauthorize
        current.save()


def _describe(exc: Exception) -> str:
    platform_error = getattr(exc, "platform_error", "")
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} ({platform_error})" if platform_error else text


def switch_polling(states: QuerySet[PollState], enabled: bool) -> int:
    """Switch polling on or off for these accounts; switched on, they are due at once."""
    if enabled:
        return states.update(enabled=True, next_poll_at=None)
    return states.update(enabled=False)


def resume_polling(states: PollStateQuerySet) -> int:
    """After re-authorization or a fixed cause: poll again at once, errors cleared."""
    return states.resume()
