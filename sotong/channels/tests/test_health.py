"""Each account's connector health (sotong/channels/health.py): the state the center's status
page shows, decided from plain facts (pure) and from what really happened to the account
(a poll that succeeded, failed, was rate limited or refused the token; signed webhook
deliveries; replies the platform refused), and the center's switches off, on and resume."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import ClassVar

import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import OrmQ

from sotong.channels import health, polling
from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    FetchResult,
    NeedsReauthorization,
    ParsedDelivery,
    RateLimited,
    SettingField,
    TransientError,
)
from sotong.channels.connectors.registry import connectors
from sotong.channels.credentials import set_account_setting
from sotong.channels.health import AccountFacts, HealthState, assess
from sotong.channels.models import DeliveryState, PollState, ReplyState, WebhookDelivery
from sotong.channels.selectors import ReplyActivity, WebhookActivity
from sotong.channels.tests.meta_payloads import FACEBOOK_URL, encode, page_comment, post
from sotong.channels.tests.meta_payloads import facebook_account as facebook_account
from sotong.channels.tests.test_outbox import RecordingConnector, answered_case, delivery_of
from sotong.directory.models import Account
from sotong.jobs.testing import run_queued_jobs

TOKEN = "health-token-never-shown-8d1e"
HANDLE = "@seoul@mastodon.example"


class Polled(Connector):
    """A platform read by polling: each fetch raises `error`, or finds nothing new."""

    platform = "healthpoll"
    channels = ("mastodon",)
    settings_fields = (SettingField("access_token", "액세스 토큰", secret=True),)
    error: ClassVar[Exception | None] = None

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        if Polled.error is not None:
            raise Polled.error
        return FetchResult(ParsedDelivery(), cursor or "0")


@pytest.fixture
def platforms(settings, people) -> Iterator[None]:
    settings.SOTONG_CONNECTORS = [
        "sotong.channels.connectors.meta.MetaConnector",
        f"{__name__}.Polled",
        "sotong.channels.tests.test_outbox.RecordingConnector",
    ]
    connectors.cache_clear()
    Polled.error = None
    RecordingConnector.sent, RecordingConnector.script = [], []
    RecordingConnector.found, RecordingConnector.during_send = None, None
    yield
    Polled.error = None
    connectors.cache_clear()


@pytest.fixture
def polled(platforms) -> Account:
    account = Account.objects.get(channel__code="mastodon", handle=HANDLE)
    set_account_setting(account, "access_token", TOKEN)
    return account


def row_of(account: Account) -> health.AccountHealth:
    [row] = [r for r in health.account_health() if r.account.pk == account.pk]
    return row


def poll(account: Account) -> str:
    PollState.objects.filter(account=account).update(next_poll_at=None)
    return polling.poll_account(account.pk)


# --- Pure: one state per situation -------------------------------------------------------

NOW = timezone.now()
POLLED = Polled()


def facts(**changes) -> AccountFacts:
    """A polled account fetched a minute ago, with `changes`."""
    base = AccountFacts(
        connector=POLLED, switched_on=True, polled=True, last_success_at=NOW - timedelta(minutes=1)
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("situation", "expected", "stops"),
    [
        (facts(), HealthState.HEALTHY, False),
        (facts(last_success_at=None), HealthState.WAITING, False),
        (facts(last_success_at=NOW - timedelta(minutes=6)), HealthState.LAGGING, False),
        (
            facts(polled=False, activity=WebhookActivity(NOW, NOW - timedelta(minutes=20), 0)),
            HealthState.LAGGING,
            False,
        ),
        (facts(poll_errors=2, last_error="TransientError: 502"), HealthState.FAILING, False),
        (facts(activity=WebhookActivity(NOW, None, 3)), HealthState.FAILING, False),
        (facts(replies=ReplyActivity(failed=1)), HealthState.FAILING, False),
        (
            facts(next_poll_at=NOW + timedelta(minutes=9), last_error="RateLimited: 429"),
            HealthState.RATE_LIMITED,
            False,
        ),
        (
            facts(replies=ReplyActivity(waiting=1, rate_limited=1)),
            HealthState.RATE_LIMITED,
            False,
        ),
        (facts(needs_reauthorization=True), HealthState.NEEDS_REAUTHORIZATION, True),
        (
            facts(replies=ReplyActivity(failed=1, reauthorization_failed=True)),
            HealthState.NEEDS_REAUTHORIZATION,
            True,
        ),
        (facts(missing_settings=("access_token",)), HealthState.NOT_CONFIGURED, True),
        (facts(switched_on=False), HealthState.SWITCHED_OFF, True),
        (facts(polling_on=False), HealthState.SWITCHED_OFF, True),
        (facts(connector=None), HealthState.NO_CONNECTOR, True),
    ],
)
def test_each_situation_has_its_state(situation, expected, stops):
    state, reasons, stopped = assess(situation, NOW)
    assert (state, stopped) == (expected, stops)
    if expected != HealthState.HEALTHY:
        assert reasons  # every state but healthy says why


def test_an_expired_rate_limit_is_not_rate_limited_any_more():
    state, _, _ = assess(
        facts(next_poll_at=NOW - timedelta(seconds=1), last_error="RateLimited: 429"), NOW
    )
    assert state == HealthState.HEALTHY


def test_a_slow_platform_lags_only_after_three_of_its_intervals():
    class Slow(Polled):
        poll_interval = timedelta(minutes=15)

    quiet = facts(connector=Slow(), last_success_at=NOW - timedelta(minutes=40))
    assert assess(quiet, NOW)[0] == HealthState.HEALTHY
    late = facts(connector=Slow(), last_success_at=NOW - timedelta(minutes=46))
    assert assess(late, NOW)[0] == HealthState.LAGGING


# --- From what really happened -----------------------------------------------------------


def test_a_polled_account_healthy_then_lagging(polled):
    assert row_of(polled).state == HealthState.WAITING
    assert poll(polled) == "polled"
    row = row_of(polled)
    assert row.state == HealthState.HEALTHY and row.configured and row.switched_on
    assert row.lag is not None and row.lag < timedelta(minutes=1)
    PollState.objects.filter(account=polled).update(
        last_success_at=timezone.now() - timedelta(hours=2)
    )
    row = row_of(polled)
    assert row.state == HealthState.LAGGING and row.lag_minutes >= 119


def test_failing_fetches_are_counted(polled):
    Polled.error = TransientError("connection reset", platform_error="502 Bad Gateway")
    assert poll(polled) == "transient error"
    assert poll(polled) == "transient error"
    row = row_of(polled)
    assert row.state == HealthState.FAILING
    assert row.facts.poll_errors == 2
    assert any("502 Bad Gateway" in r for r in row.reasons)


def test_a_rate_limited_poll_says_until_when(polled):
    reset = timezone.now() + timedelta(minutes=12)
    Polled.error = RateLimited("too many requests", retry_at=reset)
    assert poll(polled) == "rate limited"
    row = row_of(polled)
    assert row.state == HealthState.RATE_LIMITED
    assert row.rate_limited_until is not None and row.rate_limited_until >= reset


def test_a_revoked_token_needs_reauthorization_and_stops(polled):
    Polled.error = NeedsReauthorization("token revoked", platform_error="invalid_token")
    assert poll(polled) == "needs re-authorization"
    row = row_of(polled)
    assert row.state == HealthState.NEEDS_REAUTHORIZATION and row.sends_stopped
    assert any("invalid_token" in r for r in row.reasons)


def test_an_account_without_its_settings_is_not_configured(platforms):
    account = Account.objects.get(channel__code="mastodon", handle=HANDLE)
    row = row_of(account)
    assert row.state == HealthState.NOT_CONFIGURED and not row.configured
    assert row.facts.missing_settings == ("access_token",)


def test_no_secret_value_reaches_the_health_rows(polled):
    assert poll(polled) == "polled"
    assert TOKEN not in repr(health.account_health())


def test_webhook_deliveries_healthy_lagging_and_failing(platforms, facebook_account):
    assert post(Client(), FACEBOOK_URL, encode(page_comment())).status_code == 200
    row = row_of(facebook_account)
    assert row.state == HealthState.HEALTHY
    assert row.lag is not None and row.lag < timedelta(minutes=1)  # just arrived, waiting
    assert row.facts.activity.last_received_at is not None
    WebhookDelivery.objects.update(received_at=timezone.now() - timedelta(minutes=30))
    assert row_of(facebook_account).state == HealthState.LAGGING  # nobody processed it
    run_queued_jobs()
    row = row_of(facebook_account)
    assert row.state == HealthState.HEALTHY and row.lag == timedelta(0)
    WebhookDelivery.objects.update(state=DeliveryState.FAILED, received_at=timezone.now())
    row = row_of(facebook_account)
    assert row.state == HealthState.FAILING and row.facts.activity.failed_recently == 1


def test_a_reply_refused_for_reauthorization_stops_the_reply_account_and_those_it_serves(
    people, platforms
):
    RecordingConnector.script = [NeedsReauthorization("401", platform_error="Invalid token")]
    case = answered_case(people)  # to the mayor's account, answered by @seoul_smc
    run_queued_jobs()
    assert delivery_of(case).state == ReplyState.FAILED
    rows = {r.account.handle: r for r in health.account_health() if r.account.channel.code == "x"}
    center, mayor = rows["@seoul_smc"], rows["@seoul_mayor"]
    assert center.state == HealthState.NEEDS_REAUTHORIZATION and center.sends_stopped
    assert mayor.sends_stopped and any("@seoul_smc" in r for r in mayor.reasons)
    assert not rows["@seoul"].sends_stopped


def test_a_later_reply_that_went_out_clears_the_reauthorization(people, platforms):
    RecordingConnector.script = [NeedsReauthorization("401")]
    answered_case(people)
    run_queued_jobs()
    answered_case(people)
    run_queued_jobs()  # the token was renewed on the platform meanwhile: this one is sent
    center = row_of(Account.objects.get(channel__code="x", handle="@seoul_smc"))
    assert center.state == HealthState.FAILING  # one failed reply still waits for an officer
    assert center.facts.replies.failed == 1


# --- Switches ----------------------------------------------------------------------------


def test_switching_off_stops_polling_and_webhooks_and_on_starts_them(
    people, polled, facebook_account
):
    center = people["center"]
    inactive = Account.objects.filter(active=False).count()
    health.switch_account(polled, on=False, actor=center)
    OrmQ.objects.all().delete()
    assert polling.poll_due() == 0
    assert polling.poll_account(polled.pk) == "inactive"
    assert PollState.objects.get(account=polled).enabled is False
    assert row_of(polled).state == HealthState.SWITCHED_OFF
    health.switch_account(facebook_account, on=False, actor=center)
    assert post(Client(), FACEBOOK_URL, encode(page_comment())).status_code == 404
    assert not WebhookDelivery.objects.exists()
    # Other accounts are untouched.
    assert Account.objects.filter(active=False).count() == inactive + 2

    health.switch_account(polled, on=True, actor=center)
    assert PollState.objects.get(account=polled).enabled is True
    assert polling.poll_due() == 1
    assert poll(polled) == "polled"


def test_only_the_center_switches(people, polled):
    with pytest.raises(health.PermissionDenied):
        health.switch_account(polled, on=False, actor=people["jongno"])
    with pytest.raises(health.PermissionDenied):
        health.resume_account(polled, actor=people["jongno_chief"])
    assert Account.objects.get(pk=polled.pk).active


def test_resume_after_reauthorization_polls_again_and_resends_the_refused_replies(
    people, platforms, polled
):
    Polled.error = NeedsReauthorization("token revoked")
    assert poll(polled) == "needs re-authorization"
    Polled.error = None
    resumed, retried = health.resume_account(polled, actor=people["center"])
    assert (resumed, retried) == (1, 0)
    assert poll(polled) == "polled"

    RecordingConnector.script = [NeedsReauthorization("401")]
    case = answered_case(people)
    run_queued_jobs()
    smc = Account.objects.get(channel__code="x", handle="@seoul_smc")
    assert row_of(smc).state == HealthState.NEEDS_REAUTHORIZATION
    assert health.resume_account(smc, actor=people["center"]) == (0, 1)
    run_queued_jobs()
    assert delivery_of(case).state == ReplyState.SENT
    assert len(RecordingConnector.sent) == 1
    # Replies only: nothing received on it yet, and nothing wrong any more.
    assert row_of(smc).state == HealthState.WAITING
