"""The public read model follows every change to a case in the same transaction, and the
running counters always equal what `sotong rebuild-portal` computes from scratch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from sotong.cases import services
from sotong.cases.deadlines import sweep_deadlines
from sotong.cases.models import Case
from sotong.cases.services import CaseOpening
from sotong.channels.connectors.base import Withdrawal
from sotong.channels.services import record_withdrawals
from sotong.directory.models import CaseType, Category, Unit
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch, ingest_message
from sotong.portal.models import PublicCase, PublicState, Tally
from sotong.portal.projection import answer_time_bin
from sotong.portal.selectors import overview, percentile_hours

ANSWER = (
    "소중한 의견 감사합니다. 말씀하신 보안등 고장에 대하여 교체하였습니다. "
    "문의는 종로구청(02-2148-1114)으로 연락 주십시오."
)


def counters() -> dict[tuple, int]:
    return {
        (t.period, t.day, t.dimension, t.key, t.measure): t.count
        for t in Tally.objects.all()
        if t.count
    }


def public_rows() -> dict[int, tuple]:
    return {
        r.case_id: (r.state, r.status, r.unit_id, r.text, r.answer_text, r.reports, r.search_tokens)
        for r in PublicCase.objects.all()
    }


@pytest.fixture
def cases(people) -> list[Case]:
    messages = ingest_batch(
        [
            NormalizedMessage(channel="x", external_id=f"proj-{n}", text=text)
            for n, text in enumerate(
                [
                    "창신동 보안등이 꺼졌어요 010-1234-5678",
                    "종로 골목 쓰레기 무단투기 신고합니다",
                    "버스 정류장 의자가 부서졌어요",
                    "보안등 또 꺼졌어요 같은 곳입니다",
                ]
            )
        ]
    )
    request = CaseType.objects.get(code="request")
    jongno = Unit.objects.get(code="district-jongno")
    return services.open_cases(
        [
            CaseOpening(
                message=m, case_type=request, category=None, unit=jongno, district_name="종로구"
            )
            for m in messages
        ]
    )


def test_every_change_moves_the_counters_like_a_rebuild(people, cases):
    light, litter, bench, again = cases
    officer = people["jongno"]
    services.hold_case(litter, reason="현장 확인 후 답변드리겠습니다", actor=officer)
    services.draft_answer(light, ANSWER, actor=officer)
    services.publish_answer(light, actor=officer, override_reason="테스트")
    services.merge_case(again, light, actor=people["center"])
    services.transfer_case(
        bench,
        Unit.objects.get(code="transport"),
        reason="정류장은 교통 부서",
        actor=people["center"],
    )
    services.recategorize_case(bench, Category.objects.first(), actor=people["center"])
    ingest_message(NormalizedMessage(channel="x", external_id="proj-late", text="의견입니다"))
    # A case past its deadline is overdue from the sweep on.
    Case.objects.filter(pk=bench.pk).update(deadline_at=timezone.now() - timedelta(hours=1))
    sweep_deadlines()

    rows = {r.case_id: r for r in PublicCase.objects.all()}
    assert rows[light.pk].state == PublicState.ANSWERED and rows[light.pk].answered_on_time
    assert "010-1234-5678" not in rows[light.pk].text and "보안등" in rows[light.pk].text
    assert rows[light.pk].answer_text and rows[light.pk].reports == 2
    assert rows[litter.pk].state == PublicState.ON_HOLD
    assert rows[litter.pk].hold_reason == "현장 확인 후 답변드리겠습니다"
    assert rows[again.pk].state == PublicState.MERGED and rows[again.pk].merged_into_id == light.pk
    assert "같은 곳" in rows[again.pk].text  # what the public saw stays
    assert rows[bench.pk].state == PublicState.OVERDUE
    assert rows[bench.pk].unit.code == "transport"

    figures = overview().periods["today"]
    assert figures["received"] == 5 and figures["relevant"] == 4
    assert (figures["answered"], figures["on_hold"], figures["overdue"], figures["merged"]) == (
        1,
        1,
        1,
        1,
    )
    assert figures.on_time_share == 1.0
    by_unit = {line.key: line for line in figures.by["unit"]}
    assert by_unit["transport"].overdue == 1 and by_unit["district-jongno"].relevant == 3
    assert overview().periods["month"]["relevant"] == 4

    running, rows_before = counters(), public_rows()
    call_command("rebuild_portal", verbosity=0)
    assert counters() == running
    assert public_rows() == rows_before


def test_reopening_and_withdrawal_follow(people, cases):
    light = cases[0]
    services.draft_answer(light, ANSWER, actor=people["jongno"])
    services.publish_answer(light, actor=people["jongno"], override_reason="테스트")
    services.reopen_case(light, reason="다시 꺼졌어요", actor=people["center"])
    row = PublicCase.objects.get(pk=light.pk)
    assert row.state == PublicState.IN_PROGRESS and row.answered_at is None and not row.answer_text

    message = light.case_messages.get().message
    record_withdrawals(message.channel, [Withdrawal(external_id=message.external_id)])
    row = PublicCase.objects.get(pk=light.pk)
    assert row.withdrawn and row.text == "" and "보안등" not in row.search_text

    running = counters()
    call_command("rebuild_portal", verbosity=0)
    assert counters() == running


def test_answer_time_percentiles_from_the_bins():
    assert answer_time_bin(0.5) == 0 and answer_time_bin(1) == 0 and answer_time_bin(1.5) == 1
    histogram = [0] * 24
    histogram[answer_time_bin(3)] = 10  # 2–4 h
    histogram[answer_time_bin(30)] = 10  # 24–30 h
    assert 2 <= percentile_hours(histogram, 0.5) <= 4
    assert 24 <= percentile_hours(histogram, 0.9) <= 30
    assert percentile_hours([0] * 24, 0.5) is None
