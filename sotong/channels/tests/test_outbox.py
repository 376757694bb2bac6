"""The reply outbox: a published answer goes back to the citizen's thread from the reply
account, once, within the platform's limit; rate limits, errors and crashes are handled;
officers see each delivery on the case page and can retry or record a reply by hand."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from sotong.cases import services
from sotong.cases.models import AuditEvent, Case
from sotong.cases.services import CaseOpening, open_cases
from sotong.channels import outbox
from sotong.channels.connectors.base import (
    AccountConfig,
    Connector,
    FetchResult,
    NeedsReauthorization,
    OutgoingReply,
    ParsedDelivery,
    PermanentError,
    RateLimited,
    SentReply,
    TransientError,
)
from sotong.channels.connectors.registry import connectors
from sotong.channels.models import ReplyDelivery, ReplyState
from sotong.conftest import client_for
from sotong.directory.models import CaseType, Unit
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.jobs.testing import run_queued_jobs

_ids = itertools.count(1)

ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
    "{unit}(☎{phone})로 연락주시면 성심껏 답변드리겠습니다."
)


def weighted(text: str) -> int:
    """A stand-in for a platform's own counting rule: Hangul counts 2, as on X."""
    return sum(2 if "\uac00" <= ch <= "\ud7a3" else 1 for ch in text)


class RecordingConnector(Connector):
    """A platform that posts nothing: it records each reply and does what `script` says
    (an exception to raise, or None to accept), and `found` is what find_sent answers."""

    platform = "x"
    channels = ("x",)
    max_reply_length = 280
    sent: list[OutgoingReply] = []
    script: list[Exception | None] = []
    found: SentReply | None = None
    during_send: Callable[[], None] | None = None

    def send_reply(self, account: AccountConfig, reply: OutgoingReply) -> SentReply:
        cls = type(self)
        if cls.during_send is not None:
            cls.during_send()
        outcome = cls.script.pop(0) if cls.script else None
        if outcome is not None:
            raise outcome
        cls.sent.append(reply)
        return SentReply(platform_id=f"tweet-{len(cls.sent)}", url="")

    def find_sent(self, account: AccountConfig, reply: OutgoingReply) -> SentReply | None:
        return type(self).found

    def length(self, text: str) -> int:
        return weighted(text)


class ReceiveOnlyConnector(Connector):
    """A platform whose connector receives but cannot post replies."""

    platform = "bluesky"
    channels = ("bluesky",)

    def fetch(self, account: AccountConfig, cursor: str) -> FetchResult:
        return FetchResult(ParsedDelivery(), cursor)


@pytest.fixture
def platform(settings, people):
    settings.SOTONG_CONNECTORS = [
        "sotong.channels.tests.test_outbox.ReceiveOnlyConnector",
        "sotong.channels.tests.test_outbox.RecordingConnector",
    ]
    connectors.cache_clear()
    RecordingConnector.sent = []
    RecordingConnector.script = []
    RecordingConnector.found = None
    RecordingConnector.during_send = None
    yield RecordingConnector
    RecordingConnector.during_send = None
    connectors.cache_clear()


def answered_case(
    people,
    *,
    channel: str = "x",
    account: str = "@seoul_mayor",
    extra: str = "",
) -> Case:
    """A case opened by a citizen's message on `channel`, answered and published by the
    Jongno officer; the deliver job is queued, not yet run."""
    [message] = ingest_batch(
        [
            NormalizedMessage(
                channel=channel,
                external_id=f"out-{next(_ids)}",
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
    # Only the outbox's jobs matter here; the message's triage job would find it handled.
    OrmQ.objects.all().delete()
    case = Case.objects.select_related("unit").get(pk=case.pk)
    text = ANSWER.format(unit=case.unit.name, phone=case.unit.phone) + extra
    services.draft_answer(case, text, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"])
    return case


def delivery_of(case: Case) -> ReplyDelivery:
    [delivery] = ReplyDelivery.objects.filter(case=case)
    return delivery


def later(monkeypatch, delta: timedelta) -> None:
    moment = timezone.now() + delta
    monkeypatch.setattr(timezone, "now", lambda: moment)


# --- Publishing creates one delivery, sent once ------------------------------------------


def test_published_answer_is_posted_once_from_the_reply_account_within_the_limit(people, platform):
    case = answered_case(people, extra=" 더 자세한 내용은 구청 누리집을 보아 주십시오." * 5)
    run_queued_jobs()
    delivery = delivery_of(case)
    link = f"http://127.0.0.1:8000/cases/{case.number}/"
    assert delivery.account.handle == "@seoul_smc"  # the mayor's account replies via the center
    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "tweet-1"
    assert delivery.attempts == 1
    assert weighted(delivery.text) <= 280
    assert delivery.text.endswith(f"…\n\n{link}")
    # Cut at the end of a word of the answer.
    body = delivery.text.removesuffix(f"…\n\n{link}")
    assert case.answers.get().public_text.startswith(body)
    assert case.answers.get().public_text[len(body)] == " "
    [reply] = platform.sent
    assert reply.text == delivery.text
    assert reply.in_reply_to == delivery.message.external_id
    assert reply.author == "@citizen"
    assert (
        reply.idempotency_key
        == delivery.idempotency_key
        == f"sotong-{case.number}-a" + str(delivery.answer_id) + f"-m{delivery.message_id}"
    )


def test_short_answer_is_posted_whole_with_the_case_link(settings, people, platform):
    settings.SOTONG_CONNECTORS = ["sotong.channels.tests.test_outbox.RecordingConnector"]
    connectors.cache_clear()
    platform.max_reply_length = 0
    try:
        case = answered_case(people)
        run_queued_jobs()
    finally:
        platform.max_reply_length = 280
    answer = case.answers.get()
    assert delivery_of(case).text == f"{answer.public_text}\n\n{outbox.public_case_link(case)}"


def test_deliver_and_send_jobs_run_twice_send_once(people, platform):
    case = answered_case(people)
    answer = case.answers.get()
    run_queued_jobs()
    first = delivery_of(case)
    assert outbox.deliver_answer(answer.pk) == first
    assert outbox.send_delivery(first.pk) == ReplyState.SENT
    assert outbox.sweep_outbox() == {"created": 0, "sent": 0}
    run_queued_jobs()
    assert ReplyDelivery.objects.filter(case=case).count() == 1
    assert len(platform.sent) == 1


def test_a_second_worker_arriving_mid_send_does_not_send(people, platform):
    case = answered_case(people)
    outbox.deliver_answer(case.answers.get().pk)
    delivery = delivery_of(case)
    seen: list[str] = []
    platform.during_send = lambda: seen.append(outbox.send_delivery(delivery.pk))
    assert outbox.send_delivery(delivery.pk) == ReplyState.SENT
    assert seen == [ReplyState.SENDING]
    assert len(platform.sent) == 1


@pytest.mark.django_db(transaction=True)
def test_the_claim_is_committed_before_the_platform_is_called(people, platform):
    case = answered_case(people)
    outbox.deliver_answer(case.answers.get().pk)
    delivery = delivery_of(case)
    seen: list[tuple[bool, str]] = []
    platform.during_send = lambda: seen.append(
        (connection.in_atomic_block, ReplyDelivery.objects.get(pk=delivery.pk).state)
    )
    outbox.send_delivery(delivery.pk)
    assert seen == [(False, ReplyState.SENDING)]


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_send_once(people, platform):
    if connection.vendor != "postgresql":
        pytest.skip("two connections at once: PostgreSQL only (SQLite's test database is shared)")
    case = answered_case(people)
    outbox.deliver_answer(case.answers.get().pk)
    delivery = delivery_of(case)
    platform.during_send = lambda: time.sleep(0.3)
    results: list[str] = []

    def worker() -> None:
        try:
            results.append(outbox.send_delivery(delivery.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(platform.sent) == 1
    assert results.count(ReplyState.SENT) >= 1
    assert delivery_of(case).attempts == 1


# --- Rate limits and errors ----------------------------------------------------------------


def test_rate_limit_waits_for_the_platforms_reset_time(people, platform, monkeypatch):
    reset = timezone.now() + timedelta(minutes=15)
    platform.script = [RateLimited("429", retry_at=reset, platform_error="Rate limit exceeded")]
    case = answered_case(people)
    run_queued_jobs()
    delivery = delivery_of(case)
    assert delivery.state == ReplyState.PENDING
    assert delivery.next_attempt_at == reset
    assert "Rate limit exceeded" in delivery.last_error
    later(monkeypatch, timedelta(minutes=14))
    assert outbox.sweep_outbox()["sent"] == 0
    assert platform.sent == []
    later(monkeypatch, timedelta(minutes=16))
    assert outbox.sweep_outbox()["sent"] == 1
    assert delivery_of(case).state == ReplyState.SENT
    assert len(platform.sent) == 1


def test_transient_errors_back_off_then_fail(people, platform, monkeypatch):
    platform.script = [TransientError("503", platform_error="Over capacity")] * 20
    case = answered_case(people)
    start = timezone.now()
    run_queued_jobs()
    waits = []
    for attempt in range(1, outbox.MAX_ATTEMPTS):
        delivery = delivery_of(case)
        assert delivery.state == ReplyState.PENDING
        assert delivery.attempts == attempt
        waits.append(round((delivery.next_attempt_at - start).total_seconds() / 60))
        start = delivery.next_attempt_at
        monkeypatch.setattr(timezone, "now", lambda moment=start: moment)
        outbox.sweep_outbox()
    assert waits == [1, 2, 4, 8, 16, 32, 60]
    delivery = delivery_of(case)
    assert delivery.state == ReplyState.FAILED
    assert delivery.attempts == outbox.MAX_ATTEMPTS
    assert delivery.last_error == "503: Over capacity"
    assert platform.sent == []


def test_permanent_error_fails_and_the_case_page_shows_the_platforms_message(people, platform):
    platform.script = [PermanentError("403", platform_error="You cannot reply to this Tweet.")]
    case = answered_case(people)
    run_queued_jobs()
    delivery = delivery_of(case)
    assert delivery.state == ReplyState.FAILED
    assert delivery.attempts == 1
    page = client_for(people["jongno"]).get(reverse("workbench:case", args=[case.pk]))
    html = page.content.decode()
    assert "You cannot reply to this Tweet." in html
    assert "실패" in html  # the state, in Korean
    assert reverse("workbench:case_action", args=[case.pk, "retry_reply"]) in html
    assert reverse("workbench:case_action", args=[case.pk, "record_reply"]) in html
    assert delivery.text in html.replace("<br>", "\n")


def test_revoked_token_fails_saying_it_needs_reauthorization(people, platform):
    platform.script = [NeedsReauthorization("401", platform_error="Invalid or expired token")]
    case = answered_case(people)
    run_queued_jobs()
    delivery = delivery_of(case)
    assert delivery.state == ReplyState.FAILED
    assert delivery.last_error.startswith("needs re-authorization")
    assert "Invalid or expired token" in delivery.last_error


# --- Officers: retry, record a reply made by hand ---------------------------------------


def test_officer_retries_a_failed_delivery_from_the_case_page(people, platform):
    platform.script = [PermanentError("403", platform_error="Duplicate content")]
    case = answered_case(people)
    run_queued_jobs()
    url = reverse("workbench:case_action", args=[case.pk, "retry_reply"])
    delivery = delivery_of(case)
    # Another unit's officer does not even see the case.
    assert client_for(people["mapo"]).post(url, {"delivery": delivery.pk}).status_code == 404
    assert delivery_of(case).state == ReplyState.FAILED
    response = client_for(people["jongno"]).post(url, {"delivery": delivery.pk})
    assert response.status_code == 302
    assert delivery_of(case).state == ReplyState.PENDING
    [event] = AuditEvent.objects.filter(case=case, action="retry_reply")
    assert event.actor == people["jongno"]
    assert "Duplicate content" in event.note
    run_queued_jobs()
    delivery = delivery_of(case)
    assert delivery.state == ReplyState.SENT
    assert [r.idempotency_key for r in platform.sent] == [delivery.idempotency_key]
    # A sent delivery is not retried again.
    assert client_for(people["jongno"]).post(url, {"delivery": delivery.pk}).status_code == 400
    assert len(platform.sent) == 1


def test_officer_records_a_reply_made_by_hand(people, platform):
    platform.script = [PermanentError("403", platform_error="Account suspended")]
    case = answered_case(people)
    run_queued_jobs()
    delivery = delivery_of(case)
    url = reverse("workbench:case_action", args=[case.pk, "record_reply"])
    client = client_for(people["jongno"])
    assert client.post(url, {"delivery": delivery.pk, "note": " "}).status_code == 400
    response = client.post(url, {"delivery": delivery.pk, "note": "민원인에게 전화로 안내함"})
    assert response.status_code == 302
    delivery = delivery_of(case)
    assert delivery.state == ReplyState.SENT
    assert delivery.recorded_by == people["jongno"]
    assert delivery.note == "민원인에게 전화로 안내함"
    assert AuditEvent.objects.filter(case=case, action="record_reply").count() == 1
    assert outbox.sweep_outbox()["sent"] == 0
    assert platform.sent == []
    html = client.get(reverse("workbench:case", args=[case.pk])).content.decode()
    assert "민원인에게 전화로 안내함" in html


# --- Crash recovery ---------------------------------------------------------------------


def crashed(case: Case) -> ReplyDelivery:
    """The delivery as a worker killed mid-send leaves it: claimed, never finished."""
    outbox.deliver_answer(case.answers.get().pk)
    delivery = delivery_of(case)
    ReplyDelivery.objects.filter(pk=delivery.pk).update(
        state=ReplyState.SENDING,
        attempts=1,
        sending_since=timezone.now() - outbox.STALE_SENDING - timedelta(seconds=1),
    )
    return delivery


def test_crashed_send_the_platform_has_is_marked_sent_without_sending_again(people, platform):
    case = answered_case(people)
    crashed(case)
    platform.found = SentReply(platform_id="tweet-before-crash")
    assert outbox.sweep_outbox()["sent"] == 1
    delivery = delivery_of(case)
    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "tweet-before-crash"
    assert platform.sent == []


def test_crashed_send_the_platform_cannot_tell_is_resent_once_with_the_same_key(people, platform):
    case = answered_case(people)
    delivery = crashed(case)
    outbox.sweep_outbox()
    outbox.sweep_outbox()
    run_queued_jobs()
    assert [r.idempotency_key for r in platform.sent] == [delivery.idempotency_key]
    assert delivery_of(case).state == ReplyState.SENT
    assert delivery_of(case).attempts == 2


def test_a_send_in_progress_is_not_taken_for_a_crash(people, platform):
    case = answered_case(people)
    outbox.deliver_answer(case.answers.get().pk)
    ReplyDelivery.objects.filter(case=case).update(
        state=ReplyState.SENDING, sending_since=timezone.now() - timedelta(minutes=1)
    )
    assert outbox.sweep_outbox()["sent"] == 0
    assert delivery_of(case).state == ReplyState.SENDING
    assert platform.sent == []


# --- Channels that cannot post replies --------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "account"),
    [("web", ""), ("bluesky", "@seoul.example")],  # no connector; one that cannot send
)
def test_a_channel_without_a_sending_connector_gets_a_manual_delivery(
    people, platform, channel, account
):
    case = answered_case(people, channel=channel, account=account)
    run_queued_jobs()
    delivery = delivery_of(case)
    assert delivery.state == ReplyState.MANUAL
    assert delivery.text.endswith(outbox.public_case_link(case))
    assert outbox.sweep_outbox()["sent"] == 0
    assert platform.sent == []
    html = client_for(people["jongno"]).get(reverse("workbench:case", args=[case.pk]))
    assert "다른 곳에서 답변" in html.content.decode()
    # It cannot be "retried": there is nothing to send with.
    url = reverse("workbench:case_action", args=[case.pk, "retry_reply"])
    assert client_for(people["jongno"]).post(url, {"delivery": delivery.pk}).status_code == 400


def test_lost_deliver_job_is_caught_up_by_the_sweep(people, platform):
    case = answered_case(people)
    OrmQ.objects.all().delete()  # the broker lost the job
    assert outbox.sweep_outbox() == {"created": 1, "sent": 1}
    assert delivery_of(case).state == ReplyState.SENT
    assert len(platform.sent) == 1


# --- Fitting the text (pure) ------------------------------------------------------------


def test_fit_reply_cuts_at_a_word_end_with_an_ellipsis():
    text = outbox.fit_reply("one two three four", "L", limit=12, length=len)
    assert text == "one two…\n\nL"


def test_fit_reply_never_splits_a_grapheme():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one grapheme, five code points
    body = ("가" * 3) + family + "e\u0301" * 3
    for limit in range(4, 14):
        text = outbox.fit_reply(body, "", limit=limit, length=len)
        assert len(text) <= limit
        kept = text.removesuffix("…")
        assert body.startswith(kept)
        rest = body[len(kept) :]
        assert not rest or rest[0] not in "\u200d\u0301"
        assert not kept.endswith("\u200d")
        assert kept.count("\u200d") in {0, 2}


def test_fit_reply_without_limit_keeps_everything():
    assert outbox.fit_reply(" 답변 ", "https://x/cases/1/", limit=0, length=len) == (
        "답변\n\nhttps://x/cases/1/"
    )
