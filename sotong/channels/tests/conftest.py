"""Fixtures shared by the channels' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sotong.channels.tests.mailserver import CITIZEN, DESK, MailServer, require_mail_server


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
