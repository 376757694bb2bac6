"""Triage of stored messages: the rules route casual SNS texts to the unit that owns the
matter, chatter is set aside, the undecidable waits for the center, and every correction the
center makes is kept. Through the real database, the worker's entry points and the queue page."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from sotong.cases.models import AuditEvent, Case, Notification
from sotong.conftest import client_for
from sotong.directory.models import Category, Unit
from sotong.errors import InvalidInput, PermissionDenied
from sotong.inbox.models import Message, TriageState
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.models import TriageCorrection, TriageDecision
from sotong.triage.services import review_decision, triage_backlog, triage_messages

_ids = itertools.count(1)

DISTRICT_MATTER = "종로구 창신동 골목 보안등이 꺼졌어요 고쳐주세요"
CITY_MATTER_IN_A_DISTRICT = "마포구 지나는 472번 버스 배차 간격이 너무 길어요 늘려주세요"
HAZARD = "강남역 앞에 싱크홀이 생겼어요 위험해요"
CHATTER = "오늘 날씨 너무 좋네요 점심 뭐 먹지 ㅋㅋ"
UNKNOWN_REQUEST = "시청 앞에 새로 생긴 조형물 좀 없애 주세요"


def ingest(*texts: str) -> list[Message]:
    return ingest_batch(
        [NormalizedMessage(channel="x", external_id=f"tr-{next(_ids)}", text=t) for t in texts]
    )


def triaged(text: str) -> TriageDecision:
    [message] = ingest(text)
    assert triage_messages([message.pk]) == 1
    return TriageDecision.objects.select_related("unit", "category", "case_type").get(
        message=message
    )


def case_of(decision: TriageDecision) -> Case | None:
    return Case.objects.filter(case_messages__message=decision.message).first()


# --- The rules on casual texts -----------------------------------------------------------------


def test_district_matter_naming_a_district_goes_to_that_district_office(directory):
    decision = triaged(DISTRICT_MATTER)
    assert decision.relevant is True and decision.review == "auto"
    assert decision.category.code == "security-light" and decision.unit.code == "district-jongno"
    assert decision.district_name == "종로구" and decision.engine.startswith("rules")
    assert any("종로구" in r for r in decision.reasons)
    case = case_of(decision)
    assert (
        case.status == "unit"
        and case.unit.code == "district-jongno"
        and case.district_name == "종로구"
    )
    assert case.case_type.code == "request" and not case.urgent
    assert Message.objects.get(pk=decision.message.pk).triage_state == TriageState.DONE


def test_city_matter_naming_a_district_stays_with_the_city_department(directory):
    decision = triaged(CITY_MATTER_IN_A_DISTRICT)
    assert decision.category.code == "bus" and decision.unit.code == "transport"
    assert decision.district_name == "마포구"  # the place is kept, but it does not route
    assert case_of(decision).unit.code == "transport"


def test_urgent_hazard_is_urgent_and_alerts_at_once(people):
    decision = triaged(HAZARD)
    assert (
        decision.urgent and decision.unit.code == "safety" and decision.case_type.code == "urgent"
    )
    case = case_of(decision)
    assert case.urgent and case.deadline_at - case.opened_at == timedelta(hours=1)
    alerted = set(
        Notification.objects.filter(case=case, kind="urgent").values_list(
            "recipient__username", flat=True
        )
    )
    assert alerted == {"safety", "safety-chief", "center"}


def test_chatter_is_not_city_business(directory):
    decision = triaged(CHATTER)
    assert decision.relevant is False and decision.unit is None and decision.category is None
    assert decision.review != "waiting"
    assert case_of(decision) is None


def test_request_for_no_known_category_waits_for_the_center(directory):
    decision = triaged(UNKNOWN_REQUEST)
    assert decision.relevant is None and decision.category is None
    assert decision.review == "waiting"
    assert case_of(decision) is None


def test_a_batch_is_triaged_together(directory):
    messages = ingest(DISTRICT_MATTER, CHATTER, UNKNOWN_REQUEST, CITY_MATTER_IN_A_DISTRICT)
    assert triage_messages([m.pk for m in messages]) == 4
    assert TriageDecision.objects.count() == 4
    assert Case.objects.count() == 2
    assert not Message.objects.filter(triage_state=TriageState.PENDING).exists()


# --- Running twice, and the backlog ------------------------------------------------------------


def test_triage_twice_on_the_same_ids_opens_one_case(directory):
    messages = ingest(DISTRICT_MATTER)
    ids = [m.pk for m in messages]
    assert triage_messages(ids) == 1
    assert triage_messages(ids) == 0
    assert TriageDecision.objects.count() == 1
    case = Case.objects.get()
    assert list(AuditEvent.objects.filter(case=case).values_list("action", flat=True)) == ["open"]


def test_backlog_picks_up_messages_whose_job_was_lost(directory):
    old = ingest(DISTRICT_MATTER, CHATTER)
    fresh = ingest(CITY_MATTER_IN_A_DISTRICT)
    Message.objects.filter(pk__in=[m.pk for m in old]).update(
        received_at=timezone.now() - timedelta(minutes=5)
    )

    assert triage_backlog(older_than_seconds=30) == 2
    assert Message.objects.get(pk=fresh[0].pk).triage_state == TriageState.PENDING
    assert Case.objects.count() == 1

    assert triage_backlog(older_than_seconds=30) == 0
    assert triage_backlog(older_than_seconds=0) == 1
    assert not Message.objects.filter(triage_state=TriageState.PENDING).exists()
    assert Case.objects.count() == 2


def test_backlog_works_in_batches(directory):
    places = ["종로구 창신동", "마포구 망원동", "강동구 천호동", "노원구 상계동", "관악구 신림동"]
    messages = ingest(*[f"{place} 골목 보안등이 나갔어요 고쳐주세요" for place in places])
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(
        received_at=timezone.now() - timedelta(hours=1)
    )
    assert triage_backlog(batch=2) == 5
    assert Case.objects.count() == 5


# --- The center's review ------------------------------------------------------------------------


def test_center_review_opens_a_routed_case_and_keeps_the_corrections(people):
    decision = triaged(UNKNOWN_REQUEST)
    category = Category.objects.get(code="culture-events")
    unit = Unit.objects.get(code="culture")
    case = review_decision(
        decision, actor=people["center"], relevant=True, category=category, unit=unit
    )

    assert case.status == "unit" and case.unit == unit and case.category == category
    assert case.case_type == category.case_type
    assert case.case_messages.get().message == decision.message
    [opened] = AuditEvent.objects.filter(case=case)
    assert (
        opened.action == "open"
        and opened.actor == people["center"]
        and opened.note == "triage queue"
    )

    decision.refresh_from_db()
    assert decision.review == "reviewed" and decision.reviewed_by == people["center"]
    assert decision.relevant is True and decision.unit == unit and decision.category == category
    corrections = {
        c.field: (c.before, c.after)
        for c in TriageCorrection.objects.filter(message=decision.message)
    }
    assert corrections == {
        "relevant": ("", "true"),
        "category": ("", "culture-events"),
        # The place (서울시청 앞, in 중구) suggested the district office; the center chose the city.
        "unit": ("district-jung", "culture"),
    }
    assert set(TriageCorrection.objects.values_list("corrected_by__username", flat=True)) == {
        "center"
    }
    assert set(TriageCorrection.objects.values_list("engine", flat=True)) == {decision.engine}


def test_confirming_what_triage_found_records_only_what_changed(people):
    decision = triaged("종로구 " + UNKNOWN_REQUEST)
    assert decision.unit.code == "district-jongno" and decision.review == "waiting"
    review_decision(decision, actor=people["center"], relevant=True, unit=decision.unit)
    assert list(TriageCorrection.objects.values_list("field", flat=True)) == ["relevant"]
    assert Case.objects.get().unit.code == "district-jongno"


def test_center_marks_a_message_not_city_business(people):
    decision = triaged(UNKNOWN_REQUEST)
    assert review_decision(decision, actor=people["center"], relevant=False) is None
    decision.refresh_from_db()
    assert decision.relevant is False and decision.review == "reviewed"
    assert not Case.objects.exists()


def test_not_city_business_label_is_kept_as_a_correction(people):
    decision = triaged(UNKNOWN_REQUEST)
    review_decision(decision, actor=people["center"], relevant=False)
    assert TriageCorrection.objects.filter(message=decision.message, field="relevant").exists()


def test_a_decision_is_reviewed_once(people):
    decision = triaged(UNKNOWN_REQUEST)
    unit = Unit.objects.get(code="culture")
    review_decision(decision, actor=people["center"], relevant=True, unit=unit)
    with pytest.raises(InvalidInput):
        review_decision(decision, actor=people["center"], relevant=True, unit=unit)
    assert Case.objects.count() == 1


def test_relevant_needs_a_unit(people):
    decision = triaged(UNKNOWN_REQUEST)
    with pytest.raises(InvalidInput):
        review_decision(decision, actor=people["center"], relevant=True)
    decision.refresh_from_db()
    assert decision.review == "waiting" and not TriageCorrection.objects.exists()


def test_an_officer_cannot_review(people):
    decision = triaged(UNKNOWN_REQUEST)
    for who in ("jongno", "jongno_chief"):
        with pytest.raises(PermissionDenied):
            review_decision(
                decision, actor=people[who], relevant=True, unit=Unit.objects.get(code="culture")
            )
    decision.refresh_from_db()
    assert decision.review == "waiting" and not Case.objects.exists()
    assert not TriageCorrection.objects.exists()


# --- The queue page ------------------------------------------------------------------------------


def test_queue_page_lists_only_waiting_messages(people):
    waiting = triaged(UNKNOWN_REQUEST)
    triaged(DISTRICT_MATTER)
    triaged(CHATTER)
    page = client_for(people["center"]).get("/work/triage/")
    assert page.status_code == 200
    html = page.content.decode()
    assert UNKNOWN_REQUEST in html and f"/work/triage/{waiting.pk}/review/" in html
    assert DISTRICT_MATTER not in html and CHATTER not in html


def test_htmx_review_opens_the_case(people):
    decision = triaged(UNKNOWN_REQUEST)
    center = client_for(people["center"])
    response = center.post(
        f"/work/triage/{decision.pk}/review/",
        {"relevant": "yes", "category": "culture-events", "unit": ""},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    case = Case.objects.get()
    assert case.unit.code == "culture"  # the category's owner when no unit is chosen
    html = response.content.decode()
    assert case.number in html and f"/work/cases/{case.pk}/" in html
    assert UNKNOWN_REQUEST not in center.get("/work/triage/").content.decode()


def test_plain_form_review_returns_to_the_queue(people):
    decision = triaged(UNKNOWN_REQUEST)
    response = client_for(people["center"]).post(
        f"/work/triage/{decision.pk}/review/", {"relevant": "no"}
    )
    assert response.status_code == 302 and response["Location"] == "/work/triage/"
    assert not Case.objects.exists()


def test_officer_cannot_review_through_the_page(people):
    decision = triaged(UNKNOWN_REQUEST)
    response = client_for(people["jongno"]).post(
        f"/work/triage/{decision.pk}/review/",
        {"relevant": "yes", "unit": "district-jongno"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 403
    assert not Case.objects.exists()
