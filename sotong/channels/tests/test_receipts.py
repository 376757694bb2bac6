"""Receipts (접수 안내): for accounts that send them, one acknowledgement per case on the
citizen's channel, with the case number, the expected answer date and the public link,
sent through the outbox from the reply account within the platform's limit."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from sotong.cases import services as case_services
from sotong.cases.models import Case
from sotong.cases.services import CaseOpening, open_cases
from sotong.channels import receipts
from sotong.channels.connectors.base import AccountConfig, Connector, OutgoingReply, SentReply
from sotong.channels.connectors.registry import connectors
from sotong.channels.credentials import setting_fields
from sotong.channels.models import AccountSetting, ReplyDelivery, ReplyKind, ReplyState
from sotong.directory.models import Account, CaseType, Unit
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.jobs.testing import run_queued_jobs

_ids = itertools.count(1)


def weighted(text: str) -> int:
    """X's counting rule, near enough for the test: Hangul counts 2, a link 23."""
    words = text.split()
    links = [w for w in words if w.startswith("http")]
    rest = "".join(ch for ch in text if ch not in "".join(links))
    return sum(2 if "\uac00" <= ch <= "\ud7a3" else 1 for ch in rest) + 23 * len(links)


class PostingConnector(Connector):
    """A platform that records what it is asked to post."""

    platform = "x"
    channels = ("x",)
    max_reply_length = 280
    sent: list[OutgoingReply] = []

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        type(self).sent.append(reply)
        return SentReply(platform_id=f"post-{len(type(self).sent)}")

    def length(self, text: str) -> int:
        return weighted(text)


@pytest.fixture
def platform(settings, people):
    settings.SOTONG_CONNECTORS = [
        "sotong.channels.connectors.meta.MetaConnector",
        "sotong.channels.tests.test_receipts.PostingConnector",
    ]
    connectors.cache_clear()
    PostingConnector.sent = []
    yield PostingConnector
    connectors.cache_clear()


def open_case(account: str = "@seoul_mayor", channel: str = "x") -> Case:
    """A case opened by a citizen's message to `account`; its jobs are dropped, so that
    only what the test runs runs."""
    [message] = ingest_batch(
        [
            NormalizedMessage(
                channel=channel,
                external_id=f"receipt-{next(_ids)}",
                account=account,
                author="@citizen",
                text="창신동 골목 보안등이 꺼졌어요 고쳐주세요",
            )
        ]
    )
    [case] = open_cases(
        [
            CaseOpening(
                message=message,
                case_type=CaseType.objects.get(code="request"),
                category=None,
                unit=Unit.objects.get(code="district-jongno"),
                urgent=False,
            )
        ]
    )
    OrmQ.objects.all().delete()
    return Case.objects.get(pk=case.pk)


def mayor() -> Account:
    return Account.objects.get(channel__code="x", handle="@seoul_mayor")


def test_no_receipt_for_an_account_without_receipts(platform):
    case = open_case()
    assert receipts.deliver_receipts([case.pk]) == []
    receipts.set_receipts(mayor(), False)
    assert receipts.deliver_receipts([case.pk]) == []
    assert receipts.sweep_receipts() == 0
    assert not ReplyDelivery.objects.exists()


def test_receipt_is_sent_once_from_the_reply_account(platform):
    receipts.set_receipts(mayor(), True)
    case = open_case()
    [receipt] = receipts.deliver_receipts([case.pk])
    link = f"http://127.0.0.1:8000/cases/{case.number}/"
    assert receipt.kind == ReplyKind.RECEIPT and receipt.answer is None
    assert receipt.account.handle == "@seoul_smc"  # the mayor's account replies via the center
    assert receipt.idempotency_key == f"sotong-{case.number}-receipt"
    assert f"접수번호: {case.number}" in receipt.text
    assert f"답변 예정일: {receipts.expected_date(case)}" in receipt.text
    assert receipt.text.endswith(link) and weighted(receipt.text) <= 280
    assert OrmQ.objects.count() == 1  # its send, queued
    # Once: again, by the job or by the sweep, creates nothing.
    assert receipts.deliver_receipts([case.pk]) == []
    assert receipts.sweep_receipts() == 0
    run_queued_jobs()
    receipt.refresh_from_db()
    assert receipt.state == ReplyState.SENT and receipt.platform_reply_id == "post-1"
    [posted] = platform.sent
    assert posted.text == receipt.text
    assert posted.in_reply_to == receipt.message.external_id and posted.author == "@citizen"
    assert ReplyDelivery.objects.filter(case=case).count() == 1


def test_only_accounts_with_receipts_on_get_them(platform):
    receipts.set_receipts(mayor(), True)
    with_receipts = open_case()
    without = open_case(account="@seoul_smc")
    created = receipts.deliver_receipts([with_receipts.pk, without.pk])
    assert [r.case_id for r in created] == [with_receipts.pk]


def test_the_answer_still_goes_out_after_the_receipt(platform, people):
    receipts.set_receipts(mayor(), True)
    case = open_case()
    receipts.deliver_receipts([case.pk])
    unit = Unit.objects.get(code="district-jongno")
    case_services.draft_answer(
        case,
        "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
        "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
        f"{unit.name}(☎{unit.phone})로 연락주시면 성심껏 답변드리겠습니다.",
        actor=people["jongno"],
    )
    case_services.publish_answer(case, actor=people["jongno"])
    run_queued_jobs()
    kinds = dict(ReplyDelivery.objects.filter(case=case).values_list("kind", "state"))
    assert kinds == {ReplyKind.RECEIPT: ReplyState.SENT, ReplyKind.ANSWER: ReplyState.SENT}
    receipt, answer = platform.sent
    assert "접수번호" in receipt.text and answer.text.startswith("소중한 의견을 주셔서")


def test_sweep_sends_the_receipts_whose_job_was_lost(platform, monkeypatch):
    receipts.set_receipts(mayor(), True)
    case = open_case()
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now + receipts.INLINE_GRACE)
    assert receipts.sweep_receipts() == 1
    assert receipts.sweep_receipts() == 0
    run_queued_jobs()
    assert ReplyDelivery.objects.get(case=case).state == ReplyState.SENT
    # Long after, no case of the past gets a receipt out of the blue.
    old = open_case()
    monkeypatch.setattr(timezone, "now", lambda: now + receipts.SWEEP_WINDOW + timedelta(hours=1))
    assert receipts.sweep_receipts() == 0
    assert not ReplyDelivery.objects.filter(case=old).exists()


def test_no_receipt_for_a_case_closed_merged_or_withdrawn(platform, people):
    receipts.set_receipts(mayor(), True)
    merged, survivor, withdrawn = open_case(), open_case(), open_case()
    case_services.merge_case(merged, survivor, actor=people["center"], note="같은 보안등")
    Message.objects.filter(case_link__case=withdrawn).update(withdrawn_at=timezone.now())
    created = receipts.deliver_receipts([merged.pk, survivor.pk, withdrawn.pk])
    assert [r.case_id for r in created] == [survivor.pk]


def test_no_receipt_where_the_channel_cannot_post(platform):
    receipts.set_receipts(Account.objects.get(channel__code="email"), True)
    case = open_case(account="minwon@seoul.example", channel="email")
    assert receipts.deliver_receipts([case.pk]) == []  # the test setup has no e-mail connector
    assert receipts.sweep_receipts() == 0


def test_the_setting_is_plain_and_read_as_on_or_off(platform):
    field = receipts.RECEIPTS_FIELD
    assert field.name == "receipts" and not field.secret and not field.required
    assert "접수번호" in field.help
    account = mayor()
    for value, on in [("on", True), ("ON ", True), ("예", True), ("off", False), ("", False)]:
        AccountSetting.objects.update_or_create(
            account=account, name="receipts", defaults={"stored_value": value}
        )
        assert receipts.receipts_on(account) is on, value


def test_the_setting_shows_on_every_connector_account(platform):
    assert "receipts" in setting_fields(mayor())


def test_expected_date_is_the_local_deadline_with_its_weekday(platform):
    case = open_case()
    case.deadline_at = datetime(2026, 12, 3, 15, 0, tzinfo=timezone.get_current_timezone())
    assert receipts.expected_date(case) == "2026년 12월 3일(목)"
    case.deadline_at = datetime(2026, 12, 6, 16, 0, tzinfo=UTC)  # 01:00 on the 7th KST
    assert receipts.expected_date(case) == "2026년 12월 7일(월)"
