"""Polling: a fake polled connector (a Connector subclass registered through
SOTONG_CONNECTORS) for the cursor, errors, the schedule and the admin; and the e-mail
connector against a real dovecot, from a mail in the city's mailbox to an open case."""

from __future__ import annotations

import email
import email.message
import email.policy
import imaplib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from sotong.cases.models import Case
from sotong.cases.services import draft_answer, publish_answer
from sotong.channels import polling
from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    FetchResult,
    NeedsReauthorization,
    ParsedDelivery,
    PermanentError,
    RateLimited,
    SettingField,
    TransientError,
    Withdrawal,
)
from sotong.channels.connectors.registry import connectors
from sotong.channels.credentials import set_account_setting
from sotong.channels.models import PollState
from sotong.channels.models import Withdrawal as StoredWithdrawal
from sotong.channels.polling import poll_account, poll_due
from sotong.channels.tests.mailserver import CITIZEN, DESK
from sotong.directory.models import Account, Channel
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.jobs.schedules import PERIODIC
from sotong.jobs.testing import run_queued_jobs

TOKEN = "access-token-do-not-leak-5c2a"
HANDLE = "@seoul@mastodon.example"
CITY_TEXT = "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. 고쳐주세요."


class FakePolled(Connector):
    """A platform read by polling: `items` are all it has, the cursor is how many were
    seen; `error` is raised by the next fetch instead."""

    platform = "fakepoll"
    channels = ("mastodon",)
    settings_fields = (SettingField("access_token", "액세스 토큰", secret=True),)
    items: ClassVar[list[NormalizedMessage]] = []
    withdrawals: ClassVar[list[Withdrawal]] = []
    error: ClassVar[Exception | None] = None
    cursors: ClassVar[list[str]] = []  # the cursor of every fetch, in order
    ignore_cursor = False  # a platform that sends everything again

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        assert account.get("access_token") == TOKEN
        FakePolled.cursors.append(cursor)
        if FakePolled.error is not None:
            raise FakePolled.error
        seen = 0 if self.ignore_cursor else int(cursor or 0)
        delivery = ParsedDelivery(messages=self.items[seen:], withdrawals=self.withdrawals)
        return FetchResult(delivery, str(len(self.items)))


def item(n: int, text: str = CITY_TEXT) -> NormalizedMessage:
    return NormalizedMessage(
        channel="mastodon",
        external_id=f"11300000000000{n:04d}",
        text=text,
        sent_at=datetime(2026, 11, 25, 0, n, tzinfo=UTC),
        account=HANDLE,
        author="@citizen@mastodon.example",
    )


@pytest.fixture
def fake(settings, fresh_registry) -> Iterator[type[FakePolled]]:
    settings.SOTONG_CONNECTORS = [
        "sotong.channels.connectors.meta.MetaConnector",  # webhooks only: never polled
        f"{__name__}.FakePolled",
    ]
    connectors.cache_clear()
    FakePolled.items, FakePolled.withdrawals, FakePolled.cursors = [], [], []
    FakePolled.error, FakePolled.ignore_cursor = None, False
    yield FakePolled
    FakePolled.error = None


@pytest.fixture
def account(directory, fake) -> Account:
    found = Account.objects.get(channel__code="mastodon", handle=HANDLE)
    set_account_setting(found, "access_token", TOKEN)
    return found


def state_of(account: Account) -> PollState:
    return PollState.objects.get(account=account)


def make_due(account: Account) -> None:
    PollState.objects.filter(account=account).update(next_poll_at=None)


def queued_polls() -> list[int]:
    tasks = [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]
    return [t["args"][0] for t in tasks if t["func"] == polling.POLL_JOB]


# --- the cursor and the messages ----------------------------------------------------------


def test_first_poll_stores_the_cursor_and_the_messages(account, fake):
    fake.items = [item(1), item(2)]
    assert poll_account(account.pk) == "polled"
    state = state_of(account)
    assert state.cursor == "2" and state.items_total == 2
    assert state.last_success_at is not None and state.error_count == 0
    assert state.next_poll_at is not None and state.next_poll_at > timezone.now()
    stored = Message.objects.filter(channel__code="mastodon").order_by("external_id")
    assert [m.external_id for m in stored] == [item(1).external_id, item(2).external_id]
    assert {m.account for m in stored} == {account}

    fake.items.append(item(3))
    make_due(account)
    assert poll_account(account.pk) == "polled"
    assert fake.cursors == ["", "2"]  # the second fetch starts where the first ended
    assert state_of(account).cursor == "3" and state_of(account).items_total == 3
    assert Message.objects.count() == 3


def test_the_same_items_again_store_nothing_new(account, fake):
    fake.items, fake.ignore_cursor = [item(1), item(2)], True
    assert poll_account(account.pk) == "polled"
    make_due(account)
    assert poll_account(account.pk) == "polled"
    assert Message.objects.count() == 2
    assert state_of(account).items_total == 2


def test_withdrawals_are_recorded_on_the_accounts_channel(account, fake):
    fake.withdrawals = [Withdrawal("113000000000000099")]
    assert poll_account(account.pk) == "polled"
    withdrawal = StoredWithdrawal.objects.get()
    assert withdrawal.channel.code == "mastodon" and withdrawal.delivery is None
    assert withdrawal.external_id == "113000000000000099"


def test_a_crash_between_fetch_and_commit_changes_nothing(account, fake, monkeypatch):
    fake.items = [item(1)]
    assert poll_account(account.pk) == "polled"
    fake.items += [item(2), item(3)]
    real_ingest = polling.ingest_batch

    def ingest_then_crash(items):
        real_ingest(items)  # the messages are written, then the process fails
        raise RuntimeError("worker lost its database connection")

    monkeypatch.setattr(polling, "ingest_batch", ingest_then_crash)
    make_due(account)
    with pytest.raises(RuntimeError):
        poll_account(account.pk)
    state = state_of(account)
    assert state.cursor == "1" and state.items_total == 1
    assert Message.objects.count() == 1
    assert state.error_count == 1 and "RuntimeError" in state.last_error

    monkeypatch.setattr(polling, "ingest_batch", real_ingest)
    make_due(account)
    assert poll_account(account.pk) == "polled"
    assert fake.cursors[-1] == "1"  # fetched again from the stored cursor
    assert state_of(account).cursor == "3"
    assert Message.objects.count() == 3


# --- errors ---------------------------------------------------------------------------------


def test_transient_errors_back_off_and_a_success_clears_them(account, fake):
    fake.error = TransientError("cannot reach the server", platform_error="timed out")
    before = timezone.now()
    assert poll_account(account.pk) == "transient error"
    state = state_of(account)
    assert state.error_count == 1 and state.cursor == ""
    assert state.last_error == "TransientError: cannot reach the server (timed out)"
    assert state.next_poll_at >= before + timedelta(minutes=1)

    assert poll_account(account.pk) == "not due"
    assert len(fake.cursors) == 1  # not fetched before its time

    make_due(account)
    assert poll_account(account.pk) == "transient error"
    state = state_of(account)
    assert state.error_count == 2
    assert state.next_poll_at >= timezone.now() + timedelta(minutes=1, seconds=50)

    fake.error = None
    make_due(account)
    assert poll_account(account.pk) == "polled"
    state = state_of(account)
    assert state.error_count == 0 and state.last_error == ""


def test_a_rate_limit_is_honoured(account, fake):
    retry_at = timezone.now() + timedelta(minutes=15)
    fake.error = RateLimited("too many requests", retry_at=retry_at)
    assert poll_account(account.pk) == "rate limited"
    state = state_of(account)
    assert state.next_poll_at >= retry_at
    assert "too many requests" in state.last_error

    fake.error = None
    assert poll_account(account.pk) == "not due"
    assert poll_due() == 0
    assert len(fake.cursors) == 1

    PollState.objects.filter(account=account).update(next_poll_at=timezone.now())
    assert poll_account(account.pk) == "polled"


def test_needs_reauthorization_stops_polling_until_new_credentials(account, fake, caplog):
    fake.error = NeedsReauthorization("token revoked", platform_error="401 invalid_token")
    with caplog.at_level(logging.INFO):
        assert poll_account(account.pk) == "needs re-authorization"
    state = state_of(account)
    assert state.needs_reauthorization and "token revoked" in state.last_error
    assert "token revoked" in caplog.text and TOKEN not in caplog.text

    fake.error = None
    make_due(account)
    assert poll_account(account.pk) == "needs re-authorization"
    assert poll_due() == 0
    assert len(fake.cursors) == 1

    set_account_setting(account, "access_token", TOKEN)  # the administrator enters it again
    state = state_of(account)
    assert not state.needs_reauthorization and state.error_count == 0
    assert poll_due() == 1
    assert poll_account(account.pk) == "polled"


def test_a_permanent_error_keeps_polling_slowly(account, fake):
    fake.error = PermanentError("account suspended")
    assert poll_account(account.pk) == "permanent error"
    state = state_of(account)
    assert state.enabled and not state.needs_reauthorization
    assert state.error_count == 1 and "account suspended" in state.last_error
    assert state.next_poll_at >= timezone.now() + timedelta(minutes=59)


def test_an_account_without_its_settings_waits_for_them(directory, fake):
    account = Account.objects.get(channel__code="mastodon", handle=HANDLE)
    assert poll_account(account.pk) == "not configured"
    assert "access_token" in state_of(account).last_error
    assert fake.cursors == []
    set_account_setting(account, "access_token", TOKEN)
    assert poll_account(account.pk) == "polled"


def test_a_disabled_account_is_not_polled(account, fake):
    PollState.objects.create(account=account, enabled=False)
    assert poll_account(account.pk) == "disabled"
    assert poll_due() == 0
    assert fake.cursors == []


def test_a_poll_in_progress_holds_the_account(account, fake):
    # Another worker claimed it: its lease is in next_poll_at.
    PollState.objects.create(account=account, next_poll_at=timezone.now() + polling.LEASE)
    assert poll_account(account.pk) == "not due"
    assert fake.cursors == []


def test_a_woken_poll_runs_at_once_but_waits_for_a_running_one(account, fake):
    # The IMAP IDLE watcher (mail_idle.py) wakes an account when its server announces mail.
    fake.items = [item(1)]
    assert poll_account(account.pk) == "polled"
    fake.items.append(item(2))
    assert poll_account(account.pk) == "not due"  # polled a moment ago
    assert poll_account(account.pk, woken=True) == "polled"
    assert Message.objects.count() == 2

    now = timezone.now()  # another worker's poll holds the account
    PollState.objects.filter(account=account).update(
        last_attempt_at=now, next_poll_at=now + polling.LEASE
    )
    assert poll_account(account.pk, woken=True) == "not due"
    PollState.objects.filter(account=account).update(enabled=False, next_poll_at=None)
    assert poll_account(account.pk, woken=True) == "disabled"
    assert len(fake.cursors) == 2


def test_a_webhook_platform_is_not_polled(directory, fake):
    page = Account.objects.get(channel__code="facebook", handle="seoulcity")
    assert poll_account(page.pk) == "not polled"
    assert not PollState.objects.filter(account=page).exists()


# --- the schedule ---------------------------------------------------------------------------


def test_poll_due_queues_only_due_enabled_polled_accounts(account, fake):
    mastodon = Channel.objects.get(code="mastodon")

    def another(handle: str, **state: object) -> Account:
        other = Account.objects.create(channel=mastodon, handle=handle, name=handle)
        if state:
            PollState.objects.create(account=other, **state)
        return other

    later = timezone.now() + timedelta(minutes=30)
    due_now = another("@due@mastodon.example", next_poll_at=timezone.now())
    not_due = another("@later@mastodon.example", next_poll_at=later)
    switched_off = another("@off@mastodon.example", enabled=False)
    stopped = another("@revoked@mastodon.example", needs_reauthorization=True)
    inactive = Account.objects.create(
        channel=mastodon, handle="@gone@mastodon.example", name="gone", active=False
    )
    OrmQ.objects.all().delete()

    assert poll_due() == 2
    assert sorted(queued_polls()) == sorted([account.pk, due_now.pk])  # new accounts: due
    assert PollState.objects.filter(account=account).exists()
    for skipped in (not_due, switched_off, stopped, inactive):
        assert skipped.pk not in queued_polls()
    # Webhook platforms are never polled.
    assert not PollState.objects.filter(account__channel__code="facebook").exists()

    fake.items = [item(1)]
    run_queued_jobs()
    assert Message.objects.filter(account=account).count() == 1
    OrmQ.objects.all().delete()
    assert poll_due() == 0  # both were just polled


def test_the_worker_schedules_poll_due_every_minute():
    assert PERIODIC["sotong.channels.polling.poll_due"] == 1


# --- the admin ------------------------------------------------------------------------------


def test_admin_lists_health_and_switches_polling(admin_client, account, fake):
    fake.error = NeedsReauthorization("token revoked")
    poll_account(account.pk)
    state = state_of(account)
    listing = admin_client.get("/admin/channels/pollstate/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert HANDLE in page and "token revoked" in page and TOKEN not in page

    def act(action: str) -> None:
        answer = admin_client.post(
            "/admin/channels/pollstate/",
            {"action": action, "_selected_action": [state.pk]},
        )
        assert answer.status_code == 302

    act("disable")
    assert not state_of(account).enabled
    act("enable")
    assert state_of(account).enabled and state_of(account).needs_reauthorization
    fake.error = None
    act("resume")
    assert not state_of(account).needs_reauthorization
    assert poll_account(account.pk) == "polled"


# --- e-mail, end to end against a real IMAP server ------------------------------------------
# (the city's mailbox: the `desk` fixture in conftest.py)


def citizen_mail(message_id: str) -> bytes:
    message = email.message.EmailMessage()
    message["From"] = f"김시민 <{CITIZEN}>"
    message["To"] = DESK
    message["Subject"] = "보안등 고장 신고"
    message["Date"] = "Wed, 25 Nov 2026 09:30:00 +0900"
    message["Message-ID"] = message_id
    message.set_content(CITY_TEXT)
    return message.as_bytes()


def test_a_mail_to_the_city_is_polled_and_opens_a_case(desk, mail_server):
    account, folder = desk
    assert poll_account(account.pk) == "polled"  # the first poll starts from now
    assert Message.objects.count() == 0
    start = state_of(account).cursor
    assert start

    mail_server.deliver(DESK, citizen_mail("<streetlight-1@example.test>"), folder)
    make_due(account)
    assert poll_due() == 1
    run_queued_jobs()  # the poll, then the triage it queued

    message = Message.objects.get()
    assert message.channel.code == "email" and message.account == account
    assert message.external_id == "<streetlight-1@example.test>"
    assert message.author_handle == CITIZEN
    assert message.text == f"보안등 고장 신고\n\n{CITY_TEXT}"
    state = state_of(account)
    assert state.cursor != start and state.items_total == 1 and state.error_count == 0
    case = Case.objects.get()
    assert message.case_link.case == case
    assert case.unit.code == "district-jongno"

    # Polled again with nothing new: nothing changes.
    make_due(account)
    assert poll_account(account.pk) == "polled"
    assert Message.objects.count() == 1 and state_of(account).cursor == state.cursor


def test_a_refused_mail_login_stops_polling_and_logs_no_password(desk, mail_server, caplog):
    account, _ = desk
    set_account_setting(account, "imap_password", "wrong-password-7f3e")
    with caplog.at_level(logging.INFO):
        assert poll_account(account.pk) == "needs re-authorization"
    state = state_of(account)
    assert state.needs_reauthorization and "IMAP login refused" in state.last_error
    for text in (caplog.text, state.last_error):
        assert "wrong-password-7f3e" not in text and "desk-pw" not in text

    set_account_setting(account, "imap_password", "desk-pw")  # re-entered: polled again
    assert poll_account(account.pk) == "polled"


ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 확인하였으며, "
    "2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 종로구청 건설관리과"
    "(☎02-2148-1234)로 연락주시면 성심껏 답변드리겠습니다."
)


def test_the_published_answer_lands_threaded_in_the_citizens_mailbox(desk, mail_server, people):
    account, folder = desk
    poll_account(account.pk)
    mail_server.deliver(DESK, citizen_mail("<streetlight-2@example.test>"), folder)
    make_due(account)
    poll_due()
    run_queued_jobs()
    case = Case.objects.get()

    officer = people["jongno"]
    draft_answer(case, ANSWER, actor=officer)
    publish_answer(case, actor=officer)
    run_queued_jobs()  # the outbox (sotong/channels/outbox.py): a delivery, sent by SMTP

    imap = imaplib.IMAP4("127.0.0.1", mail_server.imap_port)
    imap.login(CITIZEN, "citizen-pw")
    imap.select("INBOX", readonly=True)
    # The citizen's mailbox is shared by this module's tests: look for the thread's reply.
    numbers = imap.search(None, "HEADER", "In-Reply-To", "<streetlight-2@example.test>")[1]
    numbers = numbers[0].split()
    assert len(numbers) == 1  # exactly once
    raw = imap.fetch(numbers[0], "(BODY.PEEK[])")[1][0][1]
    imap.logout()
    reply = email.message_from_bytes(raw, policy=email.policy.default)
    assert reply["In-Reply-To"] == "<streetlight-2@example.test>"
    assert "<streetlight-2@example.test>" in reply["References"]
    assert reply["Subject"] == "Re: 보안등 고장 신고"
    assert "감사합니다" in reply.get_content()
