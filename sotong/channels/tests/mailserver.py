"""A private mail server for the e-mail connector's tests: Debian's dovecot for IMAP and an
aiosmtpd SMTP server that delivers into dovecot's Maildirs, both on 127.0.0.1, in a temp dir.

Dovecot runs as the current user with its own configuration (no system directories, no
root needed, though root works too); mail is delivered by writing Maildir files, as a local
delivery agent would. Tests that need it skip when dovecot is absent; CI
(SOTONG_REQUIRE_MAIL_SERVER=1) turns that skip into a failure.
"""

from __future__ import annotations

import grp
import imaplib
import mailbox
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
SKIP_REASON = "dovecot (Debian package dovecot-imapd) is not installed: mail server absent"


DESK = "minwon@seoul.example"  # the city's mail account in the Seoul directory
CITIZEN = "citizen@example.test"


def desk_settings(server: MailServer, folder: str = "INBOX") -> dict[str, str]:
    """The city's desk account's settings for `server`: IMAP on `folder`, SMTP, plain."""
    return {
        "imap_host": "127.0.0.1",
        "imap_port": str(server.imap_port),
        "imap_security": "none",
        "imap_user": DESK,
        "imap_password": "desk-pw",
        "imap_folder": folder,
        "smtp_host": "127.0.0.1",
        "smtp_port": str(server.smtp_port),
        "smtp_security": "none",
        "smtp_user": DESK,
        "smtp_password": "desk-pw",
        "from_address": DESK,
        "from_name": "서울시 응답소",
    }


def require_mail_server() -> None:
    """Skip the calling test when dovecot or aiosmtpd is missing (CI makes it a failure)."""
    if not os.access(DOVECOT, os.X_OK):
        pytest.skip(SKIP_REASON)
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        pytest.skip("aiosmtpd is not installed: mail server absent")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass
class SmtpBehaviour:
    """What the SMTP server answers to the next DATA: None delivers, a reply string
    (e.g. "451 4.3.0 try again later") refuses with it."""

    refuse_with: str | None = None
    received: list[bytes] = field(default_factory=list)


class MailServer:
    """Dovecot (IMAP) and aiosmtpd (SMTP) for a handful of users with plain passwords."""

    def __init__(self) -> None:
        # Not pytest's tmp_path: when run as root, dovecot's mail processes run as another
        # user and must reach the mail through every parent directory.
        self.root = Path(tempfile.mkdtemp(prefix="sotong-mail-"))
        self.imap_port = free_port()
        self.smtp_port = free_port()
        self.passwords: dict[str, str] = {}
        self.smtp = SmtpBehaviour()
        # Dovecot never touches mail as root: as root, mail belongs to Debian's "mail" user.
        owner = pwd.getpwnam("mail") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
        self.mail_uid, self.mail_gid = owner.pw_uid, owner.pw_gid
        self._dovecot: subprocess.Popen[bytes] | None = None
        self._smtp_controller: Any = None

    # --- users and mail -------------------------------------------------------------------

    def add_user(self, address: str, password: str) -> None:
        """A mailbox for `address`; dovecot re-reads the passwd-file when it changes."""
        self.passwords[address] = password
        # No uid/gid per user: the mail processes keep the uid they were started with.
        lines = [
            f"{user}:{{PLAIN}}{pw}::::{self.root / 'home' / user}::"
            for user, pw in self.passwords.items()
        ]
        (self.root / "passwd").write_text("\n".join(lines) + "\n")
        self.maildir(address)
        (self.root / "home" / address).mkdir(parents=True, exist_ok=True)
        self._own(self.root / "mail")
        self._own(self.root / "home")

    def _own(self, top: Path) -> None:
        """Hand files written by the tests to the mail user (only differs when root)."""
        if os.getuid() != 0:
            return
        os.chown(top, self.mail_uid, self.mail_gid)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), self.mail_uid, self.mail_gid)

    def maildir(self, address: str, folder: str = "INBOX") -> mailbox.Maildir:
        (self.root / "mail").mkdir(parents=True, exist_ok=True)
        box = mailbox.Maildir(self.root / "mail" / address, factory=None, create=True)
        if folder == "INBOX":
            return box
        if folder not in box.list_folders():
            return box.add_folder(folder)
        return box.get_folder(folder)

    def create_folder(self, address: str, folder: str) -> None:
        """A new IMAP folder, created through dovecot so that its folder list knows it."""
        imap = imaplib.IMAP4("127.0.0.1", self.imap_port)
        try:
            imap.login(address, self.passwords[address])
            status, data = imap.create(folder)
            if status != "OK":
                raise RuntimeError(f"cannot create {folder}: {data!r}")
        finally:
            imap.logout()

    def deliver(self, address: str, raw: bytes, folder: str = "INBOX") -> None:
        """Put one message in a mailbox, as a local delivery agent would (tmp/ then new/)."""
        self.maildir(address, folder).add(raw)
        self._own(self.root / "mail")

    # --- processes ------------------------------------------------------------------------

    def _config(self) -> str:
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        # Dovecot refuses to run its login processes as root: as root, they run as the
        # unprivileged user Debian's package creates (dovenull), or nobody.
        login_user = user
        if os.getuid() == 0:
            login_user = "dovenull" if _user_exists("dovenull") else "nobody"
        root = self.root
        return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Everything runs as the user who runs the tests (root in the sandbox, anyone elsewhere).
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
mail_uid = {self.mail_uid}
mail_gid = {self.mail_gid}
first_valid_uid = {self.mail_uid}
first_valid_gid = {self.mail_gid}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""

    def start(self) -> None:
        # The login processes (another user when run as root) reach base_dir by its path.
        self.root.chmod(0o755)
        for name in ("run", "state", "mail", "home"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        if not (self.root / "passwd").exists():
            (self.root / "passwd").write_text("")
        config = self.root / "dovecot.conf"
        config.write_text(self._config())
        self._dovecot = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "dovecot.stderr", "wb"),  # noqa: SIM115
        )
        try:
            wait_for_port(self.imap_port)
        except RuntimeError:
            log = self.log()
            self.stop()
            raise RuntimeError(f"dovecot did not start:\n{log}") from None
        self._start_smtp()

    def _start_smtp(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        server = self

        class DeliverToMaildir:
            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                if server.smtp.refuse_with:
                    return server.smtp.refuse_with
                raw = envelope.original_content or envelope.content
                server.smtp.received.append(raw)
                for rcpt in envelope.rcpt_tos:
                    if rcpt in server.passwords:
                        server.deliver(rcpt, raw)
                return "250 2.0.0 delivered"

        def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            if isinstance(data, LoginPassword):
                login, password = data.login.decode(), data.password.decode()
                if server.passwords.get(login) == password:
                    return AuthResult(success=True)
            return AuthResult(success=False, handled=False)

        self._smtp_controller = Controller(
            DeliverToMaildir(),
            hostname="127.0.0.1",
            port=self.smtp_port,
            authenticator=authenticate,
            auth_require_tls=False,
        )
        self._smtp_controller.start()

    def stop(self) -> None:
        if self._smtp_controller is not None:
            self._smtp_controller.stop()
            self._smtp_controller = None
        if self._dovecot is not None:
            self._dovecot.terminate()
            try:
                self._dovecot.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._dovecot.kill()
                self._dovecot.wait()
            self._dovecot = None
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        parts = []
        for name in ("dovecot.log", "dovecot.stderr"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)
