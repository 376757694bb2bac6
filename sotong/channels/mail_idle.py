"""IMAP IDLE (RFC 2177) for the e-mail accounts: a thread per account keeps a connection open
and, when the server announces new mail, queues that account's poll at once. Polling
(sotong/channels/polling.py) stays the one path that stores mail; IDLE only wakes it early.

Run by `sotong mail-idle` (started by `sotong serve`). An account whose server offers no
IDLE, or whose watcher lost its connection, is left to the poll every minute meanwhile; so
is mail announced while a poll of the account is already running (it waits for that poll).
"""

from __future__ import annotations

import imaplib
import logging
import re
import threading
import time

from django.db import close_old_connections, connections

from sotong.channels.connectors.base import AccountConfig, ConnectorError, retry_delay
from sotong.channels.connectors.email import TIMEOUT, EmailConnector, close_imap
from sotong.channels.connectors.registry import connectors
from sotong.channels.credentials import CredentialsUnreadable, account_config
from sotong.channels.polling import POLL_JOB, missing_settings, polled_accounts
from sotong.jobs.queue import enqueue

log = logging.getLogger(__name__)

IDLE_FOR = 25 * 60.0  # seconds; RFC 2177: a server may log out a client idle for 30 minutes
REFRESH = 60.0  # seconds between readings of the account list
TICK = 0.5  # seconds; how soon a watcher notices that it is asked to stop
MAX_LINE = 64 * 1024
_NEW_MAIL = re.compile(rb"^\* \d+ (EXISTS|RECENT)\b", re.IGNORECASE)


def idled_accounts() -> dict[int, tuple[EmailConnector, AccountConfig]]:
    """The e-mail accounts to watch, with their settings: polled, polling switched on, not
    waiting for re-authorization, and configured."""
    email_connectors = [c for c in connectors().values() if isinstance(c, EmailConnector)]
    codes = {code for c in email_connectors for code in c.channel_codes()}
    accounts = (
        polled_accounts()
        .filter(channel__code__in=codes)
        .exclude(poll_state__enabled=False)
        .exclude(poll_state__needs_reauthorization=True)
        .select_related("channel")
    )
    found = {}
    for account in accounts:
        connector = next(c for c in email_connectors if account.channel.code in c.channel_codes())
        try:
            config = account_config(account)
        except CredentialsUnreadable:
            continue  # the poll reports it on the account's status
        if not missing_settings(connector, config):
            found[account.pk] = (connector, config)
    return found


def offers_idle(conn: imaplib.IMAP4) -> bool:
    """Whether the server lists IDLE among its capabilities once logged in."""
    status, data = conn.capability()
    words = b" ".join(d for d in data if isinstance(d, bytes)).upper().split()
    return status == "OK" and b"IDLE" in words


class IdleSession:
    """The IDLE command over a logged-in imaplib connection with a folder selected.

    Python 3.11's imaplib has no idle() (it comes in 3.14), and it reads through a buffered
    file that a socket timeout leaves unusable; so IDLE is sent with imaplib's own tag and
    `send`, and the answers are read from the socket here, with a timeout and a buffer of
    our own. imaplib has read through the last tagged reply before this starts, and a
    server sends nothing unasked between commands, so its buffer holds nothing we need.
    """

    def __init__(self, conn: imaplib.IMAP4, idling: threading.Event) -> None:
        self.conn = conn
        self.idling = idling  # set while the server has accepted IDLE and not yet DONE
        self.buffer = b""

    def _line(self, timeout: float) -> bytes | None:
        """The next line from the server, or None if none came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.conn.sock.settimeout(remaining)
            try:
                chunk = self.conn.sock.recv(4096)
            except TimeoutError:
                return None
            if not chunk:
                raise imaplib.IMAP4.abort("the server closed the connection")
            self.buffer += chunk
            if len(self.buffer) > MAX_LINE:
                raise imaplib.IMAP4.abort("a line from the server is too long")
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """One IDLE: wait up to `seconds` until the server announces mail (EXISTS, RECENT)
        or `stop` is set, then DONE. Returns whether mail was announced."""
        tag = self.conn._new_tag()  # type: ignore[attr-defined]
        self.conn.send(tag + b" IDLE\r\n")
        while True:  # untagged news may come before the server's "+ idling"
            line = self._line(TIMEOUT)
            if line is None:
                raise imaplib.IMAP4.abort("no answer to IDLE")
            if line.startswith(b"+"):
                self.idling.set()
                break
            if line.startswith(tag + b" "):
                raise imaplib.IMAP4.error(f"IDLE refused: {line.decode(errors='replace')}")
        news = False
        deadline = time.monotonic() + seconds
        try:
            while not news and not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                line = self._line(min(TICK, remaining))
                news = line is not None and bool(_NEW_MAIL.match(line))
            self.idling.clear()
            self.conn.send(b"DONE\r\n")
            while True:
                line = self._line(TIMEOUT)
                if line is None:
                    raise imaplib.IMAP4.abort("no answer to DONE")
                if line.startswith(tag + b" "):
                    if not line[len(tag) + 1 :].upper().startswith(b"OK"):
                        raise imaplib.IMAP4.error(line.decode(errors="replace"))
                    return news
                news = news or bool(_NEW_MAIL.match(line))
        finally:
            self.idling.clear()
            self.conn.sock.settimeout(TIMEOUT)
            self.conn.tagged_commands.pop(tag, None)  # type: ignore[attr-defined]


class AccountWatcher(threading.Thread):
    """Holds one account's folder in IDLE and queues the account's poll on new mail;
    reconnects after errors, waiting longer after each failure in a row."""

    def __init__(self, account_id: int, connector: EmailConnector, config: AccountConfig) -> None:
        super().__init__(name=f"mail-idle-{account_id}", daemon=True)
        self.account_id = account_id
        self.connector = connector
        self.config = config
        self.stopping = threading.Event()
        self.idling = threading.Event()
        self.without_idle = False  # the server offers no IDLE: polling alone reads the folder
        self.failures = 0

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        try:
            while not self.stopping.is_set() and not self.without_idle:
                try:
                    self._watch()
                except (ConnectorError, OSError, imaplib.IMAP4.error) as exc:
                    # The connector's errors and imaplib's name hosts and users; the
                    # password is only in the config, which is never logged.
                    self.failures += 1
                    delay = retry_delay(self.failures)
                    log.warning(
                        "mail IDLE for account %s: %s: %s; trying again in %s",
                        self.account_id,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    self.stopping.wait(delay.total_seconds())
        finally:
            connections.close_all()  # this thread's own database connections

    def _watch(self) -> None:
        conn = self.connector.open_folder(self.config)
        try:
            if not offers_idle(conn):
                log.info(
                    "IMAP server of account %s offers no IDLE: polled every minute", self.account_id
                )
                self.without_idle = True
                return
            session = IdleSession(conn, self.idling)
            while not self.stopping.is_set():
                announced = session.wait(IDLE_FOR, self.stopping)
                self.failures = 0
                if announced:
                    close_old_connections()  # a connection left from the last wake may be gone
                    enqueue(POLL_JOB, self.account_id, woken=True)
        finally:
            close_imap(conn)


class MailIdler:
    """One watcher per e-mail account to watch, following the account list as it changes
    (accounts added, removed, switched off, their settings entered again)."""

    def __init__(self) -> None:
        self.watchers: dict[int, AccountWatcher] = {}
        self.stopping = threading.Event()

    def refresh(self) -> None:
        wanted = idled_accounts()
        for account_id, watcher in list(self.watchers.items()):
            ended = not watcher.is_alive() and not watcher.without_idle
            if ended or account_id not in wanted or wanted[account_id][1] != watcher.config:
                watcher.stop()
                del self.watchers[account_id]
        for account_id, (connector, config) in wanted.items():
            if account_id not in self.watchers:
                watcher = AccountWatcher(account_id, connector, config)
                self.watchers[account_id] = watcher
                watcher.start()

    def run(self) -> None:
        """Watch until `stop`, reading the account list every minute."""
        while not self.stopping.is_set():
            try:
                self.refresh()
            except Exception:  # the database is away for a moment: the watchers carry on
                log.exception("mail IDLE: cannot read the e-mail accounts")
            finally:
                close_old_connections()
            self.stopping.wait(REFRESH)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every watcher (each sends DONE and logs out) and wait for them."""
        self.stopping.set()
        for watcher in self.watchers.values():
            watcher.stop()
        deadline = time.monotonic() + timeout
        for watcher in self.watchers.values():
            watcher.join(max(0.0, deadline - time.monotonic()))
