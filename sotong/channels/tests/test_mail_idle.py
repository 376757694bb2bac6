"""IMAP IDLE against the real local dovecot: new mail wakes the account's poll within
seconds, the poll stores it; servers without IDLE, switched-off and unconfigured accounts
are left to the poll every minute; watchers stop cleanly and log no password."""

from __future__ import annotations

import email.message
import logging
import time
from collections.abc import Callable, Iterator

import pytest
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from sotong.channels import mail_idle
from sotong.channels.connectors.email import close_imap
from sotong.channels.credentials import set_account_setting
from sotong.channels.mail_idle import MailIdler, idled_accounts, offers_idle
from sotong.channels.models import PollState
from sotong.channels.polling import POLL_JOB, poll_account, switch_polling
from sotong.channels.tests.mailserver import CITIZEN, DESK
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

# The watchers queue polls from their own threads, on their own database connections.
pytestmark = pytest.mark.django_db(transaction=True)


def citizen_mail(n: int) -> bytes:
    message = email.message.EmailMessage()
    message["From"] = f"김시민 <{CITIZEN}>"
    message["To"] = DESK
    message["Subject"] = "불법 주정차 신고"
    message["Date"] = "Wed, 25 Nov 2026 09:30:00 +0900"
    message["Message-ID"] = f"<idle-{n}@example.test>"
    message.set_content("마포구 합정역 7번 출구 앞에 불법 주차된 차량 때문에 통행이 어렵습니다.")
    return message.as_bytes()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def woken_polls() -> list[int]:
    tasks = [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]
    return [t["args"][0] for t in tasks if t["func"] == POLL_JOB and t["kwargs"].get("woken")]


@pytest.fixture
def idler() -> Iterator[MailIdler]:
    running = MailIdler()
    yield running
    running.stop()


def test_new_mail_wakes_the_poll_within_seconds_and_the_poll_stores_it(desk, mail_server, idler):
    account, folder = desk
    assert poll_account(account.pk) == "polled"  # the cursor starts from now
    run_queued_jobs()

    idler.refresh()
    watcher = idler.watchers[account.pk]
    assert watcher.idling.wait(5), "the server never accepted IDLE"
    mail_server.deliver(DESK, citizen_mail(1), folder)
    assert eventually(lambda: woken_polls() == [account.pk])

    run_queued_jobs()  # the poll (not due yet: woken), then the triage it queued
    message = Message.objects.get()
    assert message.external_id == "<idle-1@example.test>" and message.account == account

    # The watcher idles again: the next mail wakes the poll too.
    assert watcher.idling.wait(5)
    mail_server.deliver(DESK, citizen_mail(2), folder)
    assert eventually(lambda: woken_polls() == [account.pk])
    run_queued_jobs()
    assert Message.objects.count() == 2
    assert watcher.failures == 0

    started = time.monotonic()
    idler.stop()
    assert not watcher.is_alive() and time.monotonic() - started < 3


def test_idle_is_sent_again_before_the_server_would_drop_it(desk, mail_server, idler, monkeypatch):
    account, folder = desk
    poll_account(account.pk)
    monkeypatch.setattr(mail_idle, "IDLE_FOR", 0.2)  # 25 minutes in production
    idler.refresh()
    watcher = idler.watchers[account.pk]
    time.sleep(1)  # several rounds of IDLE, DONE, IDLE on the same connection
    assert watcher.idling.wait(5) and watcher.failures == 0
    mail_server.deliver(DESK, citizen_mail(3), folder)
    assert eventually(lambda: account.pk in woken_polls())


def test_dovecot_offers_idle(desk):
    account, _ = desk
    [(connector, config)] = idled_accounts().values()
    conn = connector.open_folder(config)
    try:
        assert offers_idle(conn)
    finally:
        close_imap(conn)


def test_a_server_without_idle_is_left_to_polling(desk, mail_server, idler, monkeypatch, caplog):
    account, folder = desk
    monkeypatch.setattr(mail_idle, "offers_idle", lambda conn: False)
    with caplog.at_level(logging.INFO, logger="sotong.channels.mail_idle"):
        idler.refresh()
        watcher = idler.watchers[account.pk]
        watcher.join(5)
        assert not watcher.is_alive() and watcher.without_idle
        idler.refresh()  # the account list is read again: not tried again, not logged again
    assert idler.watchers[account.pk] is watcher
    assert caplog.text.count("offers no IDLE") == 1
    mail_server.deliver(DESK, citizen_mail(4), folder)
    time.sleep(0.5)
    assert woken_polls() == []


def test_switched_off_and_unconfigured_accounts_are_not_idled(desk, idler):
    account, _ = desk
    poll_account(account.pk)  # its poll state made, as the first poll makes it
    idler.refresh()
    watcher = idler.watchers[account.pk]
    assert watcher.idling.wait(5)

    switch_polling(PollState.objects.filter(account=account), enabled=False)
    idler.refresh()  # switched off while watched: its watcher stops
    assert idler.watchers == {}
    watcher.join(3)
    assert not watcher.is_alive()

    switch_polling(PollState.objects.filter(account=account), enabled=True)
    PollState.objects.filter(account=account).update(needs_reauthorization=True)
    assert idled_accounts() == {}

    PollState.objects.filter(account=account).resume()
    assert list(idled_accounts()) == [account.pk]
    set_account_setting(account, "imap_host", "")
    assert idled_accounts() == {}


def test_no_email_account_configured_idles_nothing(directory, fresh_registry, settings):
    settings.SOTONG_CONNECTORS = ["sotong.channels.connectors.email.EmailConnector"]
    assert idled_accounts() == {}


def test_new_settings_restart_the_watcher(desk, idler):
    account, _ = desk
    idler.refresh()
    first = idler.watchers[account.pk]
    assert first.idling.wait(5)
    set_account_setting(account, "imap_password", "desk-pw")  # entered again, the same
    idler.refresh()
    assert idler.watchers[account.pk] is first
    set_account_setting(account, "from_name", "서울특별시 응답소")
    idler.refresh()
    assert idler.watchers[account.pk] is not first
    first.join(3)
    assert not first.is_alive()
    assert idler.watchers[account.pk].idling.wait(5)


def test_a_refused_login_backs_off_and_logs_no_password(desk, idler, caplog):
    account, _ = desk
    set_account_setting(account, "imap_password", "wrong-password-9b1d")
    with caplog.at_level(logging.INFO):
        idler.refresh()
        watcher = idler.watchers[account.pk]
        assert eventually(lambda: watcher.failures == 1)
        assert "NeedsReauthorization: IMAP login refused" in caplog.text
        assert watcher.is_alive()  # waiting a minute before it tries again
        started = time.monotonic()
        idler.stop()
        assert not watcher.is_alive() and time.monotonic() - started < 3
    assert "wrong-password-9b1d" not in caplog.text and "desk-pw" not in caplog.text
