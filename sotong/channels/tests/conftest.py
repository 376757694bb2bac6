"""Fixtures shared by the channels' tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from sotong.channels.connectors.registry import connectors
from sotong.channels.credentials import set_account_setting
from sotong.channels.tests.mailserver import (
    CITIZEN,
    DESK,
    MailServer,
    desk_settings,
    require_mail_server,
)
from sotong.directory.models import Account


@pytest.fixture(scope="module")
def mail_server() -> Iterator[MailServer]:
    """A private dovecot (IMAP) and aiosmtpd (SMTP) with the city's desk and a citizen."""
    require_mail_server()
    server = MailServer()
    server.add_user(DESK, "desk-pw")
    server.add_user(CITIZEN, "citizen-pw")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    # The registry reads SOTONG_CONNECTORS once (functools.cache): forget it around tests.
    connectors.cache_clear()
    yield
    connectors.cache_clear()


_serial = itertools.count(1)


@pytest.fixture
def desk(settings, directory, fresh_registry, mail_server) -> tuple[Account, str]:
    """The city's e-mail account, set up through the credentials model on a fresh folder;
    e-mail the only polled platform."""
    settings.SOTONG_CONNECTORS = ["sotong.channels.connectors.email.EmailConnector"]
    connectors.cache_clear()
    folder = f"Polled{next(_serial)}"
    mail_server.create_folder(DESK, folder)
    account = Account.objects.get(channel__code="email", handle=DESK)
    for name, value in desk_settings(mail_server, folder).items():
        set_account_setting(account, name, value)
    return account, folder
