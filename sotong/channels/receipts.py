"""Receipts (접수 안내): telling the citizen on their channel that their message is a case,
with its number, the expected answer date and the public case link, at most once per case
and only for accounts that send receipts (the account setting `receipts`).

A receipt is a ReplyDelivery of kind "receipt": `deliver_receipts` creates it once per case
and the outbox sends it like an answer (sotong/channels/outbox.py). On a platform whose
webhook waits for an answer (Kakao's skill, see `AnswersInline`) that answer is the
receipt: `record_inline_receipt` records it as sent, so no second one goes out later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, runtime_checkable

from django.db import transaction
from django.utils import timezone

from sotong.cases.models import Case, CaseMessage
from sotong.cases.workflow import OPEN_STATES
from sotong.channels.connectors.base import AccountConfig, HandshakeResponse, SettingField
from sotong.channels.connectors.registry import connector_for_channel
from sotong.channels.models import AccountSetting, ReplyDelivery, ReplyKind, ReplyState
from sotong.channels.outbox import (
    SEND_JOB,
    answered_message,
    public_case_link,
    reply_text,
    sending_connector,
)
from sotong.directory.models import Account
from sotong.inbox.models import Message
from sotong.jobs.queue import enqueue
from sotong.triage.models import TriageDecision

log = logging.getLogger(__name__)

RECEIPTS_SETTING = "receipts"
RECEIPTS_FIELD = SettingField(
    RECEIPTS_SETTING,
    "접수 안내 (Receipts)",
    required=False,
    help=(
        "'on'이면 이 계정으로 들어온 글이 민원으로 접수될 때 접수번호, 답변 예정일, 처리 "
        "현황 링크를 같은 채널로 한 번 자동 안내합니다 (민원당 한 번). 비워 두거나 'off'면 "
        "안내하지 않습니다. 카카오톡 채널은 스킬 응답으로 항상 바로 안내하며, 이 설정이 "
        "켜져 있으면 5초 안에 접수번호를 정하지 못한 글에 나중에 이벤트 API로 안내합니다."
    ),
)
# The settings every account has, whatever its connector (shown after the connector's own).
ACCOUNT_SETTINGS = (RECEIPTS_FIELD,)
ON = frozenset({"on", "true", "1", "yes", "y", "예", "켜기", "사용"})

# On a platform that answers inline, the skill answer has this long to be the receipt;
# only after it do `deliver_receipts` and the sweep send one through the outbox.
INLINE_GRACE = timedelta(seconds=30)
# The sweep's safety net: cases opened this recently without a receipt get one.
SWEEP_WINDOW = timedelta(days=1)
SWEEP_BATCH = 100
WEEKDAYS = "월화수목금토일"

UNREADABLE_TEXT = "죄송합니다. 메시지를 읽지 못했습니다. 글로 다시 보내 주세요."
THANKS_TEXT = "보내 주신 의견 잘 받았습니다. 감사합니다."


@runtime_checkable
class AnswersInline(Protocol):
    """A connector whose platform waits for the answer to its webhook and shows it to the
    citizen (Kakao's skill: within five seconds). The hooks view ingests such a delivery
    at once, within `inline_budget` seconds, and answers with the receipt."""

    inline_budget: float

    def inline_answer(self, account: AccountConfig, text: str) -> HandshakeResponse: ...


# --- The setting --------------------------------------------------------------------------


def is_on(value: str) -> bool:
    return value.strip().lower() in ON


def accounts_with_receipts(account_ids: Iterable[int] | None = None) -> set[int]:
    """The ids of the accounts (of `account_ids`, or all) whose `receipts` setting is on."""
    settings = AccountSetting.objects.filter(name=RECEIPTS_SETTING, secret=False)
    if account_ids is not None:
        settings = settings.filter(account_id__in=list(account_ids))
    return {pk for pk, value in settings.values_list("account_id", "stored_value") if is_on(value)}


def receipts_on(account: Account) -> bool:
    return account.pk in accounts_with_receipts([account.pk])


def set_receipts(account: Account, on: bool) -> AccountSetting:
    """Switch the account's receipts on or off (a plain setting, never secret)."""
    setting, _ = AccountSetting.objects.update_or_create(
        account=account,
        name=RECEIPTS_SETTING,
        defaults={"secret": False, "stored_value": "on" if on else "off"},
    )
    return setting


# --- What is said -------------------------------------------------------------------------


def expected_date(case: Case) -> str:
    """The case's deadline as the citizen reads it: 2026년 12월 3일(목)."""
    day = timezone.localtime(case.deadline_at).date()
    return f"{day.year}년 {day.month}월 {day.day}일({WEEKDAYS[day.weekday()]})"


def receipt_body(case: Case) -> str:
    """The receipt without its link (the outbox adds the link within the platform's limit)."""
    return (
        "소중한 의견 감사합니다. 민원으로 접수되었습니다.\n"
        f"접수번호: {case.number}\n"
        f"답변 예정일: {expected_date(case)}\n"
        "처리 상황은 아래 주소에서 확인하실 수 있습니다."
    )


def pending_text(receipts: bool) -> str:
    """The inline answer when the case number is not known in time."""
    if receipts:
        return (
            "접수되었습니다. 담당 부서를 정하고 있습니다. 접수번호와 답변 예정일은 "
            "정해지는 대로 카카오톡으로 알려 드리겠습니다."
        )
    return "접수되었습니다. 담당 부서에서 확인한 뒤 답변드리겠습니다."


# --- Inline receipts (the webhook's own answer) -------------------------------------------


def _surviving(case: Case) -> Case:
    hops = 0
    while case.merged_into_id is not None and hops < 20:
        case = Case.objects.get(pk=case.merged_into_id)
        hops += 1
    return case


@dataclass(frozen=True)
class InlineAnswer:
    """What the webhook answers for a message: the text, and the case when it is the
    case's receipt (to be recorded once it is sure to be the answer)."""

    text: str
    message: Message
    case: Case | None = None


def inline_answer(message: Message) -> InlineAnswer:
    """What the webhook answers for `message` (already ingested and triaged): the receipt
    when it is in a case; otherwise thanks, or the promise of a receipt."""
    link = CaseMessage.objects.filter(message=message).select_related("case").first()
    if link is None:
        decision = TriageDecision.objects.filter(message=message).first()
        if decision is not None and decision.relevant is False:
            return InlineAnswer(THANKS_TEXT, message)
        receipts = message.account is not None and receipts_on(message.account)
        return InlineAnswer(pending_text(receipts), message)
    case = _surviving(link.case)
    connector = connector_for_channel(message.channel.code)
    raw = message.raw_payload if isinstance(message.raw_payload, dict) else {}
    text, _ = reply_text(receipt_body(case), public_case_link(case), connector, raw)
    return InlineAnswer(text, message, case)


def record_inline_receipt(answer: InlineAnswer) -> None:
    """The webhook's answer carried the receipt: record it as the case's receipt, sent,
    so that none goes out later (nothing when the case has one already)."""
    if answer.case is None:
        return
    with transaction.atomic():
        ReplyDelivery.objects.get_or_create(
            case=answer.case,
            kind=ReplyKind.RECEIPT,
            defaults={
                "message": answer.message,
                "account": answer.message.account,
                "idempotency_key": receipt_key(answer.case),
                "state": ReplyState.SENT,
                "sent_at": timezone.now(),
                "text": answer.text,
                "note": "webhook answer",
            },
        )


# --- Receipts through the outbox ----------------------------------------------------------


def receipt_key(case: Case) -> str:
    return f"sotong-{case.number}-receipt"


def deliver_receipts(case_ids: Sequence[int]) -> list[ReplyDelivery]:
    """The job queued when cases open: a receipt for each of them whose message came to an
    account with receipts on and whose channel can post, created once per case (a second
    run creates nothing), and its send queued. Returns the receipts created."""
    now = timezone.now()
    on = accounts_with_receipts()
    if not on:  # receipts are off everywhere (the default): one query per batch of cases
        return []
    cases = (
        Case.objects.filter(
            pk__in=list(case_ids),
            status__in=OPEN_STATES,
            merged_into__isnull=True,
            case_messages__message__account_id__in=on,
        )
        .exclude(reply_deliveries__kind=ReplyKind.RECEIPT)
        .distinct()
        .order_by("pk")
    )
    created: list[ReplyDelivery] = []
    for case in cases:
        message = answered_message(case)
        if message is None or message.account is None or message.withdrawn_at is not None:
            continue
        if message.account.pk not in on:  # the case's opening message came elsewhere
            continue
        account = message.account.reply_account
        connector = sending_connector(message.channel.code)
        if connector is None or not account.active:
            continue  # no channel to say it on; the answer is replied by hand anyway
        if isinstance(connector, AnswersInline) and message.received_at > now - INLINE_GRACE:
            continue  # the webhook's answer may be the receipt; the sweep comes back
        raw = message.raw_payload if isinstance(message.raw_payload, dict) else {}
        text, parts = reply_text(receipt_body(case), public_case_link(case), connector, raw)
        with transaction.atomic():
            delivery, new = ReplyDelivery.objects.get_or_create(
                case=case,
                kind=ReplyKind.RECEIPT,
                defaults={
                    "message": message,
                    "account": account,
                    "idempotency_key": receipt_key(case),
                    "state": ReplyState.PENDING,
                    "next_attempt_at": timezone.now(),
                    "text": text,
                    "parts": parts,
                },
            )
            if new:
                enqueue(SEND_JOB, delivery.pk)
                created.append(delivery)
    return created


def sweep_receipts() -> int:
    """Every minute: receipts for the cases opened in the last day whose job was lost (or
    that waited for the inline grace). Bounded per run; returns how many were created."""
    now = timezone.now()
    on = accounts_with_receipts()
    eligible = [
        account.pk
        for account in Account.objects.filter(pk__in=on).select_related("channel", "replies_via")
        if account.reply_account.active and sending_connector(account.channel.code) is not None
    ]
    if not eligible:
        return 0
    due = (
        Case.objects.filter(
            opened_at__gte=now - SWEEP_WINDOW,
            opened_at__lte=now - INLINE_GRACE,
            status__in=OPEN_STATES,
            merged_into__isnull=True,
            case_messages__role=CaseMessage.Role.OPENED,
            case_messages__message__account_id__in=eligible,
            case_messages__message__withdrawn_at__isnull=True,
        )
        .exclude(reply_deliveries__kind=ReplyKind.RECEIPT)
        .order_by("pk")
        .values_list("pk", flat=True)
        .distinct()
    )
    return len(deliver_receipts(list(due[:SWEEP_BATCH])))
