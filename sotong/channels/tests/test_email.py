"""The e-mail connector against a real local IMAP server (dovecot) and SMTP server
(aiosmtpd delivering into dovecot's mailboxes): fetching by cursor, Korean and malformed
mail, errors, and replies that land threaded in the citizen's mailbox."""

from __future__ import annotations

import base64
import email
import email.policy
import imaplib
import itertools

import pytest

from sotong.channels.connectors.base import (
    AccountConfig,
    NeedsReauthorization,
    OutgoingReply,
    PermanentError,
    TransientError,
)
from sotong.channels.connectors.email import EmailConnector, parse_mail
from sotong.channels.tests.mailserver import CITIZEN, DESK, MailServer, desk_settings, free_port

_serial = itertools.count(1)


@pytest.fixture
def folder(mail_server: MailServer) -> str:
    """A fresh folder of the desk's mailbox per test, so tests do not see each other's mail."""
    name = f"Citizens{next(_serial)}"
    mail_server.create_folder(DESK, name)
    return name


def account(mail_server: MailServer, folder: str = "INBOX", **changes: str) -> AccountConfig:
    settings = desk_settings(mail_server, folder)
    settings.update(changes)
    return AccountConfig(platform="email", handle=DESK, settings=settings)


def mail(
    subject: str = "가로등 고장", body: str = "종로구 골목 보안등이 꺼졌어요", **headers: str
) -> bytes:
    message = email.message.EmailMessage()
    message["From"] = f"김시민 <{CITIZEN}>"
    message["To"] = DESK
    message["Subject"] = subject
    message["Date"] = "Wed, 25 Nov 2026 09:30:00 +0900"
    message["Message-ID"] = headers.pop("message_id", f"<m{next(_serial)}@example.test>")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def test_fetch_returns_new_mail_once_and_advances_the_cursor(mail_server, folder):
    connector, config = EmailConnector(), account(mail_server, folder)
    mail_server.deliver(DESK, mail(message_id="<old@example.test>"), folder)
    start = connector.fetch(config, "")
    assert not start.delivery.messages  # an empty cursor starts from now

    mail_server.deliver(DESK, mail(message_id="<first@example.test>"), folder)
    mail_server.deliver(DESK, mail("두 번째", message_id="<second@example.test>"), folder)
    result = connector.fetch(config, start.cursor)
    assert [m.external_id for m in result.delivery.messages] == [
        "<first@example.test>",
        "<second@example.test>",
    ]
    first = result.delivery.messages[0]
    assert first.channel == "email" and first.account == DESK
    assert first.author == CITIZEN
    assert first.text == "가로등 고장\n\n종로구 골목 보안등이 꺼졌어요"
    assert first.sent_at is not None and first.sent_at.isoformat() == "2026-11-25T09:30:00+09:00"
    assert first.raw["Subject"] == "가로등 고장"
    validity, last = result.cursor.split(":")
    assert start.cursor.split(":")[0] == validity and int(last) > int(start.cursor.split(":")[1])

    # Nothing new: the server's "n:*" still answers with the last mail; it is not repeated.
    again = connector.fetch(config, result.cursor)
    assert not again.delivery.messages and again.cursor == result.cursor

    # Fetching does not mark mail as read for the people who share the mailbox.
    imap = imaplib.IMAP4("127.0.0.1", mail_server.imap_port)
    imap.login(DESK, "desk-pw")
    imap.select(folder, readonly=True)
    assert imap.search(None, "UNSEEN")[1][0].split() != []
    imap.logout()


def test_a_rebuilt_folder_new_uidvalidity_starts_over_with_the_same_ids(mail_server, folder):
    connector, config = EmailConnector(), account(mail_server, folder)
    cursor = connector.fetch(config, "").cursor
    mail_server.deliver(DESK, mail(message_id="<kept@example.test>"), folder)
    seen = connector.fetch(config, cursor)
    assert [m.external_id for m in seen.delivery.messages] == ["<kept@example.test>"]

    # The folder is deleted and recreated (a migration): same mail plus a new one.
    imap = imaplib.IMAP4("127.0.0.1", mail_server.imap_port)
    imap.login(DESK, "desk-pw")
    assert imap.delete(folder)[0] == "OK"
    assert imap.create(folder)[0] == "OK"
    imap.append(folder, None, None, mail(message_id="<kept@example.test>"))
    imap.append(folder, None, None, mail(message_id="<new@example.test>"))
    imap.logout()

    after = connector.fetch(config, seen.cursor)
    assert after.cursor.split(":")[0] != seen.cursor.split(":")[0]
    # Everything again, under the same Message-IDs: the inbox's dedupe keeps one of each.
    assert [m.external_id for m in after.delivery.messages] == [
        "<kept@example.test>",
        "<new@example.test>",
    ]
    assert not connector.fetch(config, after.cursor).delivery.messages


KOREAN_MAILS = {
    "rfc2047-euc-kr": (
        b"From: =?EUC-KR?B?" + base64.b64encode("김시민".encode("euc-kr")) + b"?= "
        b"<citizen@example.test>\r\n"
        b"Subject: =?EUC-KR?B?" + base64.b64encode("지방로 파손".encode("euc-kr")) + b"?=\r\n"
        b"Message-ID: <k1@example.test>\r\n"
        b"Date: Wed, 25 Nov 2026 09:30:00 +0900\r\n"
        b"Content-Type: text/plain; charset=euc-kr\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "도로가 파손되었습니다".encode("euc-kr"),
        "지방로 파손",
        "도로가 파손되었습니다",
    ),
    "cp949-labelled-ks_c_5601": (
        b"From: citizen@example.test\r\n"
        b"Subject: =?ks_c_5601-1987?B?"
        + base64.b64encode("똠방각하 민원".encode("cp949"))
        + b"?=\r\nMessage-ID: <k2@example.test>\r\n"
        b"Content-Type: text/plain; charset=ks_c_5601-1987\r\n\r\n"
        + "햏 소리가 나요".encode("cp949"),
        "똠방각하 민원",
        "햏 소리가 나요",
    ),
    "iso-2022-kr": (
        b"From: citizen@example.test\r\nSubject: =?UTF-8?B?"
        + base64.b64encode("소음 민원".encode())
        + b"?=\r\nMessage-ID: <k3@example.test>\r\n"
        b"Content-Type: text/plain; charset=ISO-2022-KR\r\n\r\n"
        + "밤마다 공사 소음".encode("iso2022_kr"),
        "소음 민원",
        "밤마다 공사 소음",
    ),
}


@pytest.mark.parametrize("name", sorted(KOREAN_MAILS))
def test_korean_charsets_are_decoded(mail_server, folder, name):
    raw, subject, body = KOREAN_MAILS[name]
    connector, config = EmailConnector(), account(mail_server, folder)
    cursor = connector.fetch(config, "").cursor
    mail_server.deliver(DESK, raw, folder)
    (message,) = connector.fetch(config, cursor).delivery.messages
    assert message.text == f"{subject}\n\n{body}"
    assert message.author == CITIZEN


def test_html_only_mail_becomes_safe_text(mail_server, folder):
    raw = (
        b"From: citizen@example.test\r\nSubject: HTML\r\nMessage-ID: <h@example.test>\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        + "<html><head><style>p{color:red}</style></head><body><p>신호등이 &lt;고장&gt;</p>"
        "<script>alert('x')</script><p>확인 부탁드립니다</p></body></html>".encode()
    )
    connector, config = EmailConnector(), account(mail_server, folder)
    cursor = connector.fetch(config, "").cursor
    mail_server.deliver(DESK, raw, folder)
    (message,) = connector.fetch(config, cursor).delivery.messages
    assert message.text == "HTML\n\n신호등이 <고장>\n\n확인 부탁드립니다"
    assert "alert" not in message.text and "color" not in message.text


def test_malformed_mail_is_a_message_not_a_crash(mail_server, folder):
    broken = (
        b"From: someone-without-brackets@example.test\r\n"
        b"Subject: =?x-unknown?B?////?= \xb0\xa1\xb3\xaa\r\n"
        b"Content-Type: multipart/mixed; boundary=never-closed\r\n\r\n"
        b"--never-closed\r\nContent-Type: text/plain; charset=no-such-charset\r\n\r\n"
        b"\xff\xfe broken \xb0\xa1 bytes\r\n"
        b'--never-closed\r\nContent-Type: application/pdf; name="report.pdf"\r\n'
        b'Content-Disposition: attachment; filename="report.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nnot base64 at all!!\r\n"
    )
    connector, config = EmailConnector(), account(mail_server, folder)
    cursor = connector.fetch(config, "").cursor
    mail_server.deliver(DESK, broken, folder)
    mail_server.deliver(DESK, broken, folder)  # the same bytes twice
    first, second = connector.fetch(config, cursor).delivery.messages
    # No Message-ID: a synthetic id from the content, the same for the same mail.
    assert first.external_id == second.external_id
    assert first.external_id.endswith("@no-message-id.sotong.invalid>")
    assert first.sent_at is not None and first.sent_at.tzinfo is not None  # no Date: now
    assert first.author == "someone-without-brackets@example.test"
    assert "broken" in first.text and "\ufffd" in first.text
    assert first.attachments == [{"name": "report.pdf", "type": "application/pdf"}]
    first.text.encode("utf-8")  # no lone surrogates left


def test_oversize_mail_keeps_its_headers_with_a_note(mail_server, folder, monkeypatch):
    monkeypatch.setattr("sotong.channels.connectors.email.MAX_MESSAGE_BYTES", 2000)
    connector, config = EmailConnector(), account(mail_server, folder)
    cursor = connector.fetch(config, "").cursor
    mail_server.deliver(DESK, mail("큰 메일", "가" * 5000, message_id="<big@example.test>"), folder)
    (message,) = connector.fetch(config, cursor).delivery.messages
    assert message.external_id == "<big@example.test>"
    assert message.text.startswith("큰 메일\n\n[본문이 너무 커서 가져오지 않았습니다:")
    assert "가가가" not in message.text


def test_wrong_password_needs_reauthorization(mail_server):
    with pytest.raises(NeedsReauthorization):
        EmailConnector().fetch(account(mail_server, imap_password="wrong"), "")


def test_server_down_is_transient(mail_server):
    with pytest.raises(TransientError):
        EmailConnector().fetch(account(mail_server, imap_port=str(free_port())), "")


def test_unknown_folder_is_permanent(mail_server):
    with pytest.raises(PermanentError):
        EmailConnector().fetch(account(mail_server, "NoSuchFolder"), "")


def citizen_inbox(mail_server: MailServer) -> list[email.message.EmailMessage]:
    imap = imaplib.IMAP4("127.0.0.1", mail_server.imap_port)
    imap.login(CITIZEN, "citizen-pw")
    imap.select("INBOX", readonly=True)
    found = []
    for number in imap.search(None, "ALL")[1][0].split():
        data = imap.fetch(number, "(BODY.PEEK[])")[1]
        raw = next(item[1] for item in data if isinstance(item, tuple))
        found.append(email.message_from_bytes(raw, policy=email.policy.default))
    imap.logout()
    return found


def test_reply_lands_threaded_in_the_citizens_mailbox(mail_server, folder):
    connector, config = EmailConnector(), account(mail_server, folder)
    cursor = connector.fetch(config, "").cursor
    mail_server.deliver(
        DESK,
        mail("Re: 가로등 고장", message_id="<q2@example.test>", references="<q1@example.test>"),
        folder,
    )
    (message,) = connector.fetch(config, cursor).delivery.messages
    reply = OutgoingReply(
        in_reply_to=message.external_id,
        text="안녕하십니까, 서울시입니다. 보안등을 11월 26일까지 고치겠습니다.",
        idempotency_key="delivery-42",
        author=message.author,
        extra={"subject": message.raw["Subject"], "references": message.raw["References"]},
    )
    before = len(citizen_inbox(mail_server))
    sent = connector.send_reply(config, reply)

    received = citizen_inbox(mail_server)[before:]
    assert len(received) == 1
    (answer,) = received
    assert answer["Message-ID"] == sent.platform_id
    assert answer["Subject"] == "Re: 가로등 고장"  # not "Re: Re:"
    assert answer["In-Reply-To"] == "<q2@example.test>"
    assert answer["References"] == "<q1@example.test> <q2@example.test>"
    assert answer["From"].addresses[0].display_name == "서울시 응답소"
    assert answer["From"].addresses[0].addr_spec == DESK
    assert answer.get_content().strip() == reply.text

    # A resend after a crash carries the same Message-ID; another delivery does not.
    again = connector.send_reply(config, reply)
    assert again.platform_id == sent.platform_id
    other = connector.send_reply(
        config, OutgoingReply(**{**reply.__dict__, "idempotency_key": "43"})
    )
    assert other.platform_id != sent.platform_id


def test_reply_subject_without_original_subject(mail_server):
    built = EmailConnector().build_reply(
        account(mail_server),
        OutgoingReply(
            in_reply_to="q@example.test", text="답변", idempotency_key="k", author=CITIZEN
        ),
    )
    assert built["Subject"] == "Re: 시민 의견에 대한 답변"
    assert built["In-Reply-To"] == "<q@example.test>"
    assert built["References"] == "<q@example.test>"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("451 4.3.0 mailbox busy, try again later", TransientError),
        ("554 5.7.1 message refused", PermanentError),
    ],
)
def test_smtp_refusals_are_mapped(mail_server, answer, error):
    mail_server.smtp.refuse_with = answer
    try:
        reply = OutgoingReply(
            in_reply_to="<q@example.test>", text="답변", idempotency_key="k", author=CITIZEN
        )
        with pytest.raises(error) as raised:
            EmailConnector().send_reply(account(mail_server), reply)
        assert raised.value.platform_error.startswith(answer.split()[0])
    finally:
        mail_server.smtp.refuse_with = None


def test_smtp_wrong_password_and_server_down(mail_server):
    reply = OutgoingReply(
        in_reply_to="<q@example.test>", text="답변", idempotency_key="k", author=CITIZEN
    )
    with pytest.raises(NeedsReauthorization):
        EmailConnector().send_reply(account(mail_server, smtp_password="wrong"), reply)
    with pytest.raises(TransientError):
        EmailConnector().send_reply(account(mail_server, smtp_port=str(free_port())), reply)


def test_connector_shape():
    connector = EmailConnector()
    assert connector.platform == "email" and connector.max_reply_length == 0
    assert connector.length("서울시 답변") == 6
    names = [f.name for f in connector.settings_fields]
    assert {"imap_password", "smtp_password"} == {
        f.name for f in connector.settings_fields if f.secret
    }
    assert names[:3] == ["imap_host", "imap_port", "imap_security"]
    assert (
        connector.find_sent(AccountConfig("email", DESK), OutgoingReply("<q@x>", "t", "k")) is None
    )


def test_parse_mail_without_a_server_keeps_in_reply_to():
    raw = mail(in_reply_to="  <answer-1@seoul.example> ")
    assert parse_mail(raw, account=DESK).in_reply_to == "<answer-1@seoul.example>"
