"""The e-mail connector: citizens' mail fetched from an IMAP folder by a UID cursor, and the
answers sent by SMTP in the citizen's thread (In-Reply-To, References).

Only the standard library: imaplib, smtplib and the `email` package (policy.default) speak
both protocols and parse MIME completely, Korean charsets included; a third-party client
would add a dependency and nothing the connector needs.
"""

from __future__ import annotations

import codecs
import contextlib
import email
import email.header
import email.policy
import email.utils
import hashlib
import html
import html.parser
import imaplib
import re
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from typing import Any, ClassVar

from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    FetchResult,
    NeedsReauthorization,
    OutgoingReply,
    ParsedDelivery,
    PermanentError,
    SentReply,
    SettingField,
    TransientError,
)
from sotong.inbox.normalize import NormalizedMessage
from sotong.lib.korean_text import clean_text, shorten

CHANNEL = "email"  # the channel code in the directory (channels.yaml)
MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # larger mails: headers only, with a note
MAX_TEXT_CHARS = 20_000  # the inbox's limit for a message text (SOTONG_MAX_TEXT_CHARS)
MAX_PER_FETCH = 200  # one fetch stays short; the cursor carries on from the last UID
TIMEOUT = 30.0
KEPT_HEADERS: tuple[str, ...] = ("From", "To", "Cc", "Reply-To", "Subject", "Date")
KEPT_HEADERS += ("Message-ID", "In-Reply-To", "References", "Content-Type")
TOO_LARGE_NOTE = "[본문이 너무 커서 가져오지 않았습니다: {size:,} bytes]"

# Korean mailers label CP949 text "euc-kr" or "ks_c_5601-1987" (Python maps both to the
# narrower EUC-KR); CP949 is a superset, so decoding as CP949 never loses a syllable.
_CP949_LABELS = {"euc_kr", "cp949"}
_CHARSET_ALIASES = {"windows-949": "cp949", "x-windows-949": "cp949", "ks_c_5601-1989": "cp949"}


# --- decoding -------------------------------------------------------------------------------


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    label = charset.strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return "cp949" if name in _CP949_LABELS else name


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in the declared charset; an unknown or missing one is tried as UTF-8, then
    CP949 (the usual undeclared Korean mail), and broken bytes become U+FFFD."""
    codec = _codec(charset)
    if codec:
        return data.decode(codec, errors="replace")
    for guess in ("utf-8", "cp949"):
        try:
            return data.decode(guess)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def _no_surrogates(text: str) -> str:
    # The parser keeps undecodable bytes as lone surrogates, which databases refuse.
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def header_text(message: Message, name: str) -> str:
    """A header as text: RFC 2047 words decoded in their charsets (EUC-KR as CP949), raw
    8-bit headers guessed like bodies, folding undone."""
    raw = None
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            raw = str(value)
            break
    if raw is None:
        return ""
    if any("\udc80" <= ch <= "\udcff" for ch in raw):
        raw = decode_bytes(raw.encode("utf-8", "surrogateescape"), None)
    raw = re.sub(r"\r?\n[ \t]", " ", raw)
    try:
        chunks = email.header.decode_header(raw)
    except (ValueError, LookupError, AssertionError):
        return _no_surrogates(raw).strip()
    text = "".join(
        decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
        for chunk, charset in chunks
    )
    return clean_text(_no_surrogates(text)).replace("\r", "").replace("\n", " ").strip()


_MESSAGE_ID = re.compile(r"<([^<>]+)>")


def message_id(value: str) -> str:
    """A Message-ID as the connector stores and compares it: the first <…> found, spaces
    removed, always with angle brackets (too long for the inbox: a hash of it)."""
    found = _MESSAGE_ID.search(value)
    inner = found.group(1) if found else value.strip().strip("<>")
    inner = re.sub(r"\s+", "", inner)
    if not inner:
        return ""
    if len(inner) > 200:
        inner = hashlib.sha256(inner.encode()).hexdigest() + "@long-id.sotong.invalid"
    return f"<{inner}>"


class _TextFromHTML(html.parser.HTMLParser):
    """HTML to plain text by dropping tags: scripts and styles are dropped with their
    content, nothing is fetched or run; block elements become line breaks."""

    BLOCKS: ClassVar[set[str]] = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "table"}
    HIDDEN: ClassVar[set[str]] = {"script", "style", "head", "title", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextFromHTML()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # an unparseable page: its text without anything tag-like
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    text = "".join(parser.parts)
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_param("charset"))  # type: ignore[arg-type]


def body_text(message: Message) -> str:
    """The plain-text body: the text/plain part if any, else the HTML part as text."""
    plain: list[str] = []
    markup: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            plain.append(_part_text(part))
        elif kind == "text/html":
            markup.append(_part_text(part))
    if plain:
        return "\n\n".join(p.strip() for p in plain if p.strip())
    return "\n\n".join(html_to_text(m) for m in markup)


def attachments(message: Message) -> list[dict[str, str]]:
    found = []
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if part.get_content_disposition() == "attachment" or name:
            found.append({"name": _no_surrogates(str(name or "")), "type": part.get_content_type()})
    return found


def synthetic_id(raw: bytes) -> str:
    """An id for a mail without Message-ID, stable across fetches: a hash of its chief
    headers and body (not the Received lines a server adds), so a refetch dedupes."""
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    kept = [
        line
        for line in head.split(b"\n")
        if line.split(b":", 1)[0].strip().lower() in {b"from", b"to", b"date", b"subject"}
    ]
    digest = hashlib.sha256(b"\n".join(kept) + b"\n\n" + body).hexdigest()[:40]
    return f"<{digest}@no-message-id.sotong.invalid>"


def parse_mail(raw: bytes, *, account: str, size: int | None = None) -> NormalizedMessage:
    """One mail as a normalized message; never raises on malformed input."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    subject = header_text(message, "Subject")
    if size is not None and size > MAX_MESSAGE_BYTES:
        body = TOO_LARGE_NOTE.format(size=size)
    else:
        try:
            body = clean_text(_no_surrogates(body_text(message)))
        except Exception:  # a MIME structure the parser cannot walk: keep what we can say
            body = "[본문을 읽을 수 없습니다]"
    text = f"{subject}\n\n{body}".strip() if subject else body.strip()
    if len(text) > MAX_TEXT_CHARS:
        text = shorten(text, MAX_TEXT_CHARS)
    _, author = email.utils.parseaddr(header_text(message, "From"))
    sent_at: datetime | None = None
    try:
        sent_at = email.utils.parsedate_to_datetime(header_text(message, "Date"))
    except (TypeError, ValueError, IndexError):
        sent_at = None
    if sent_at is None:
        sent_at = datetime.now(UTC)
    elif sent_at.tzinfo is None:  # "-0000": the sender did not know its zone
        sent_at = sent_at.replace(tzinfo=UTC)
    raw_headers = {name: header_text(message, name) for name in KEPT_HEADERS}
    return NormalizedMessage(
        channel=CHANNEL,
        external_id=message_id(header_text(message, "Message-ID")) or synthetic_id(raw),
        text=text or "(빈 메일)",
        sent_at=sent_at,
        account=account,
        author=author.strip(),
        in_reply_to=message_id(header_text(message, "In-Reply-To")),
        attachments=attachments(message),
        raw={name: value for name, value in raw_headers.items() if value},
    )


def reply_subject(subject: str) -> str:
    subject = subject.strip()
    if re.match(r"(?i)^\s*(re|회신|답장)\s*:", subject):
        return subject
    return f"Re: {subject}" if subject else "Re: 시민 의견에 대한 답변"


def reply_message_id(idempotency_key: str, from_address: str) -> str:
    """The same key gives the same Message-ID: a resend after a crash is the same mail."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = from_address.rpartition("@")[2] or "sotong.invalid"
    return f"<reply.{digest}@{domain}>"


# --- the connector --------------------------------------------------------------------------

_UIDS = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


def _security(value: str) -> str:
    value = (value or "ssl").lower()
    if value not in {"ssl", "starttls", "none"}:
        raise PermanentError(f"unknown security setting {value!r} (ssl, starttls or none)")
    return value


class EmailConnector(Connector):
    platform = "email"
    label = "E-mail (IMAP/SMTP)"
    max_reply_length = 0  # no limit
    settings_fields = (
        SettingField("imap_host", "IMAP 서버 (IMAP host)"),
        SettingField("imap_port", "IMAP 포트 (IMAP port)", required=False, help="기본 993"),
        SettingField(
            "imap_security", "IMAP 보안 (ssl, starttls, none)", required=False, help="기본 ssl"
        ),
        SettingField("imap_user", "IMAP 사용자 (IMAP user)"),
        SettingField("imap_password", "IMAP 비밀번호 (IMAP password)", secret=True),
        SettingField("imap_folder", "받은 편지함 (IMAP folder)", required=False, help="기본 INBOX"),
        SettingField("smtp_host", "SMTP 서버 (SMTP host)"),
        SettingField("smtp_port", "SMTP 포트 (SMTP port)", required=False, help="기본 465"),
        SettingField(
            "smtp_security", "SMTP 보안 (ssl, starttls, none)", required=False, help="기본 ssl"
        ),
        SettingField("smtp_user", "SMTP 사용자 (SMTP user)", required=False),
        SettingField("smtp_password", "SMTP 비밀번호 (SMTP password)", secret=True, required=False),
        SettingField("from_address", "보내는 주소 (From address)"),
        SettingField("from_name", "보내는 이름 (From name)", required=False),
    )

    # --- IMAP -----------------------------------------------------------------------------

    def _imap(self, account: AccountConfig) -> imaplib.IMAP4:
        host = account.get("imap_host")
        security = _security(account.get("imap_security", "ssl"))
        port = int(account.get("imap_port", "993" if security == "ssl" else "143"))
        try:
            if security == "ssl":
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    host, port, ssl_context=ssl.create_default_context(), timeout=TIMEOUT
                )
            else:
                conn = imaplib.IMAP4(host, port, timeout=TIMEOUT)
                if security == "starttls":
                    conn.starttls(ssl.create_default_context())
        except (OSError, imaplib.IMAP4.error) as exc:
            raise TransientError(
                f"cannot reach IMAP {host}:{port}", platform_error=str(exc)
            ) from exc
        try:
            conn.login(account.get("imap_user"), account.get("imap_password"))
        except imaplib.IMAP4.abort as exc:
            raise TransientError("IMAP connection lost at login", platform_error=str(exc)) from exc
        except imaplib.IMAP4.error as exc:
            close_imap(conn)
            raise NeedsReauthorization("IMAP login refused", platform_error=str(exc)) from exc
        return conn

    def open_folder(self, account: AccountConfig) -> imaplib.IMAP4:
        """A logged-in connection with the account's folder selected read-only, for `fetch`
        and for the IDLE watcher (sotong/channels/mail_idle.py); `close_imap` it after."""
        folder = account.get("imap_folder", "INBOX")
        conn = self._imap(account)
        try:
            status, data = conn.select(_quote(folder), readonly=True)
        except (OSError, imaplib.IMAP4.error) as exc:
            close_imap(conn)
            raise _imap_failure(exc) from exc
        if status != "OK":
            close_imap(conn)
            raise PermanentError(f"cannot open IMAP folder {folder!r}", platform_error=_s(data))
        return conn

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        """New mail since the cursor "<UIDVALIDITY>:<last UID>". An empty cursor starts from
        now; a changed UIDVALIDITY (the folder was rebuilt) starts over from UID 1, which
        duplicates nothing because the inbox dedupes by Message-ID."""
        conn = self.open_folder(account)
        try:
            validity = _first(conn.response("UIDVALIDITY")[1])
            old_validity, _, old_last = cursor.partition(":")
            if not cursor:
                return FetchResult(ParsedDelivery(), f"{validity}:{self._last_uid(conn)}")
            last = int(old_last or 0) if old_validity == validity else 0
            # "n:*" always matches the last message, even when its UID is below n: filter.
            status, data = conn.uid("FETCH", f"{last + 1}:*", "(UID RFC822.SIZE)")
            _ok(status, data)
            sizes = {}
            for item in data:
                line = item[0] if isinstance(item, tuple) else item
                found, size = _UIDS.search(line or b""), _SIZE.search(line or b"")
                if found and int(found.group(1)) > last:
                    sizes[int(found.group(1))] = int(size.group(1)) if size else 0
            messages = []
            for uid in sorted(sizes)[:MAX_PER_FETCH]:
                raw = self._fetch_one(conn, uid, headers_only=sizes[uid] > MAX_MESSAGE_BYTES)
                messages.append(parse_mail(raw, account=account.handle, size=sizes[uid]))
                last = uid
            return FetchResult(ParsedDelivery(messages=messages), f"{validity}:{last}")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise _imap_failure(exc) from exc
        finally:
            close_imap(conn)

    def _last_uid(self, conn: imaplib.IMAP4) -> int:
        uidnext = _first(conn.response("UIDNEXT")[1])
        if uidnext.isdigit():
            return int(uidnext) - 1
        status, data = conn.uid("SEARCH", "ALL")
        _ok(status, data)
        uids = [int(u) for u in (data[0] or b"").split()]
        return max(uids, default=0)

    def _fetch_one(self, conn: imaplib.IMAP4, uid: int, *, headers_only: bool) -> bytes:
        # PEEK: fetching leaves the mail unread for whoever else reads the mailbox.
        part = "BODY.PEEK[HEADER]" if headers_only else "BODY.PEEK[]"
        status, data = conn.uid("FETCH", str(uid), f"({part})")
        _ok(status, data)
        for item in data:
            if isinstance(item, tuple) and len(item) > 1:
                return bytes(item[1])
        return b""

    # --- SMTP -----------------------------------------------------------------------------

    def _smtp(self, account: AccountConfig) -> smtplib.SMTP:
        host = account.get("smtp_host")
        security = _security(account.get("smtp_security", "ssl"))
        port = int(account.get("smtp_port", "465" if security == "ssl" else "587"))
        try:
            if security == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port, context=ssl.create_default_context(), timeout=TIMEOUT
                )
            else:
                conn = smtplib.SMTP(host, port, timeout=TIMEOUT)
                if security == "starttls":
                    conn.starttls(context=ssl.create_default_context())
            if account.get("smtp_user"):
                conn.login(account.get("smtp_user"), account.get("smtp_password"))
        except smtplib.SMTPAuthenticationError as exc:
            raise NeedsReauthorization(
                "SMTP login refused", platform_error=_smtp_error(exc)
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(
                f"cannot reach SMTP {host}:{port}", platform_error=str(exc)
            ) from exc
        return conn

    def build_reply(self, account: AccountConfig, reply: OutgoingReply) -> EmailMessage:
        """The reply as it will be sent, threaded under the citizen's mail."""
        mail = EmailMessage(policy=email.policy.SMTP)
        from_address = account.get("from_address")
        mail["From"] = email.utils.formataddr((account.get("from_name"), from_address))
        mail["To"] = reply.author
        mail["Subject"] = reply_subject(str(reply.extra.get("subject", "")))
        mail["Date"] = email.utils.format_datetime(datetime.now(UTC))
        mail["Message-ID"] = reply_message_id(reply.idempotency_key, from_address)
        parent = message_id(reply.in_reply_to)
        if parent:
            mail["In-Reply-To"] = parent
        references = [message_id(r) for r in _references(reply.extra.get("references"))]
        references = [r for r in dict.fromkeys([*references, parent]) if r]
        if references:
            mail["References"] = " ".join(references)
        mail.set_content(reply.text, charset="utf-8")
        return mail

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        if not reply.author:
            raise PermanentError("the citizen's address is unknown: nowhere to send the reply")
        mail = self.build_reply(account, reply)
        conn = self._smtp(account)
        try:
            conn.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            error = "; ".join(f"{c} {m!r}" for c, m in exc.recipients.values())
            if all(400 <= code < 500 for code in codes):
                raise TransientError("SMTP deferred the recipient", platform_error=error) from exc
            raise PermanentError("SMTP refused the recipient", platform_error=error) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise NeedsReauthorization(
                "SMTP login refused", platform_error=_smtp_error(exc)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            error = _smtp_error(exc)
            if 400 <= exc.smtp_code < 500:
                raise TransientError("SMTP deferred the reply", platform_error=error) from exc
            raise PermanentError("SMTP refused the reply", platform_error=error) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError("SMTP connection lost", platform_error=str(exc)) from exc
        finally:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()
        return SentReply(platform_id=str(mail["Message-ID"]))

    def find_sent(self, account: AccountConfig, reply: OutgoingReply) -> SentReply | None:
        # SMTP keeps no record a client can ask about; the Message-ID is deterministic, so
        # a resend is at worst the same mail twice, which mail clients show once.
        return None

    def health(self, account: AccountConfig) -> dict[str, Any]:
        return {"imap": f"{account.get('imap_host')}/{account.get('imap_folder', 'INBOX')}"}


def _references(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [f"<{v}>" for v in _MESSAGE_ID.findall(value)]
    return [str(v) for v in value]


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _first(values: list[Any] | None) -> str:
    if not values or values[0] is None:
        return ""
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _s(data: Any) -> str:
    return " ".join(d.decode(errors="replace") if isinstance(d, bytes) else str(d) for d in data)


def _ok(status: str, data: Any) -> None:
    if status != "OK":
        raise imaplib.IMAP4.error(_s(data))


def _smtp_error(exc: smtplib.SMTPResponseException) -> str:
    message = exc.smtp_error
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    return f"{exc.smtp_code} {text}"


def _imap_failure(exc: OSError | imaplib.IMAP4.error) -> TransientError:
    if isinstance(exc, OSError | imaplib.IMAP4.abort):
        return TransientError("IMAP connection lost", platform_error=str(exc))
    return TransientError("IMAP command failed", platform_error=str(exc))


def close_imap(conn: imaplib.IMAP4) -> None:
    """Log out, ignoring a connection already lost."""
    with contextlib.suppress(OSError, imaplib.IMAP4.error):
        conn.logout()
