"""Every case service through the real database: what it changes, what it refuses, and the
one audit event (with the state before and after) it leaves behind. The audit trail itself
cannot be rewritten, neither through the model nor with raw SQL."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

from sotong.cases import services
from sotong.cases.models import Answer, AuditEvent, Case, CaseMessage, Notification
from sotong.cases.services import CaseOpening, compute_case_deadline, open_cases
from sotong.conftest import client_for
from sotong.directory.models import CaseType, Category, Unit
from sotong.errors import GuidelineIncomplete, IllegalTransition, InvalidInput, PermissionDenied
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.models import TriageCorrection

_ids = itertools.count(1)

# Holds every element of the guideline: thanks, restatement, action, timing, contact.
COMPLETE_ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
    "{unit}(☎{phone})로 연락주시면 성심껏 답변드리겠습니다."
)
INCOMPLETE_ANSWER = "확인했습니다."


def complete_answer(case: Case) -> str:
    return COMPLETE_ANSWER.format(unit=case.unit.name, phone=case.unit.phone)


def open_case(
    unit_code: str | None,
    *,
    text: str = "창신동 골목 보안등이 꺼졌어요 고쳐주세요",
    case_type: str = "request",
    urgent: bool = False,
) -> Case:
    """A case opened as triage would open it, routed to `unit_code` (None: not routed yet)."""
    [message] = ingest_batch(
        [NormalizedMessage(channel="x", external_id=f"svc-{next(_ids)}", text=text)]
    )
    [case] = open_cases(
        [
            CaseOpening(
                message=message,
                case_type=CaseType.objects.get(code=case_type),
                category=None,
                unit=Unit.objects.get(code=unit_code) if unit_code else None,
                urgent=urgent,
            )
        ]
    )
    return Case.objects.get(pk=case.pk)


def audited(case: Case, action: str, call):
    """Run `call`; assert it left exactly one audit event, of `action`, on `case`."""
    seen = AuditEvent.objects.filter(case=case).count()
    result = call()
    new = list(AuditEvent.objects.filter(case=case).order_by("pk")[seen:])
    assert [e.action for e in new] == [action]
    return result, new[0]


def same_state(a: dict, b: dict) -> bool:
    """Snapshots are equal, comparing the deadline as an instant (its offset may differ)."""

    def instant(snapshot: dict) -> dict:
        deadline = snapshot.get("deadline_at")
        return {**snapshot, "deadline_at": datetime.fromisoformat(deadline) if deadline else None}

    return instant(a) == instant(b)


def refused(case: Case, error: type[Exception], call, match: str | None = None) -> None:
    """`call` raises `error` and leaves the case and its audit trail as they were."""
    before = Case.objects.filter(pk=case.pk).values().get()
    events = AuditEvent.objects.filter(case=case).count()
    with pytest.raises(error, match=match):
        call()
    assert Case.objects.filter(pk=case.pk).values().get() == before
    assert AuditEvent.objects.filter(case=case).count() == events


def drafted(case: Case, officer, text: str | None = None) -> Case:
    services.draft_answer(case, text or complete_answer(case), actor=officer)
    return Case.objects.get(pk=case.pk)


def published(case: Case, officer) -> Case:
    services.publish_answer(drafted(case, officer), actor=officer)
    return Case.objects.get(pk=case.pk)


# --- Opening and routing ------------------------------------------------------------------


def test_opened_case_has_one_open_event_and_a_deadline(people):
    case = open_case("district-jongno")
    assert case.status == "unit"
    [event] = AuditEvent.objects.filter(case=case)
    assert event.action == "open" and event.before == {} and event.after["status"] == "unit"
    assert case.deadline_at > case.opened_at and case.opened_at < case.remind_at < case.deadline_at


def test_assign_unit_routes_a_new_case(people):
    case = open_case(None)
    assert case.status == "new"
    mapo = Unit.objects.get(code="district-mapo")
    case, event = audited(
        case,
        "assign_unit",
        lambda: services.assign_unit(case, mapo, actor=people["center"], note="마포구 건"),
    )
    case.refresh_from_db()
    assert case.status == "unit" and case.unit == mapo
    assert event.before["status"] == "new" and event.before["unit"] is None
    assert event.after["status"] == "unit" and event.after["unit"] == mapo.pk
    assert (
        event.actor == people["center"]
        and event.actor_label == "center"
        and event.note == "마포구 건"
    )


def test_assign_unit_is_the_centers_job(people):
    case = open_case("district-jongno")
    refused(
        case,
        PermissionDenied,
        lambda: services.assign_unit(
            case, Unit.objects.get(code="transport"), actor=people["jongno"]
        ),
    )


def test_urgent_case_routed_to_a_unit_alerts_its_staff(people):
    case = open_case(None, case_type="urgent", urgent=True)
    services.assign_unit(case, Unit.objects.get(code="safety"), actor=people["center"])
    alerted = set(
        Notification.objects.filter(case=case, kind="urgent").values_list(
            "recipient__username", flat=True
        )
    )
    assert {"safety", "safety-chief"} <= alerted


def test_assign_officer_by_supervisor_notifies_the_officer(people):
    case = open_case("district-jongno")
    _, event = audited(
        case,
        "assign_officer",
        lambda: services.assign_officer(case, people["jongno"], actor=people["jongno_chief"]),
    )
    case.refresh_from_db()
    assert case.status == "officer" and case.officer == people["jongno"]
    assert event.before["officer"] is None and event.after["officer"] == people["jongno"].pk
    assert (
        Notification.objects.filter(case=case, recipient=people["jongno"], kind="assigned").count()
        == 1
    )


def test_officer_taking_a_case_is_not_notified_of_it(people):
    case = open_case("district-jongno")
    services.assign_officer(case, people["jongno"], actor=people["jongno"])
    assert Case.objects.get(pk=case.pk).officer == people["jongno"]
    assert not Notification.objects.filter(case=case).exists()


def test_assign_officer_refuses_someone_of_another_unit(people):
    case = open_case("district-jongno")
    refused(
        case,
        PermissionDenied,
        lambda: services.assign_officer(case, people["mapo"], actor=people["center"]),
    )


# --- Answering -----------------------------------------------------------------------------


def test_draft_answer_stores_the_guideline_report_and_gives_the_case_to_its_author(people):
    case = open_case("district-jongno")
    answer, event = audited(
        case,
        "draft",
        lambda: services.draft_answer(case, complete_answer(case), actor=people["jongno"]),
    )
    case.refresh_from_db()
    assert case.status == "drafted" and case.officer == people["jongno"]
    assert answer.author == people["jongno"] and answer.published_at is None
    report = answer.guideline_report
    assert report["complete"] is True and report["missing"] == []
    assert {e["code"] for e in report["elements"]} >= {
        "thanks",
        "restatement",
        "action",
        "timing",
        "contact",
    }
    assert event.before["status"] == "unit" and event.after["status"] == "drafted"
    assert event.after["officer"] == people["jongno"].pk and event.note == ""


def test_redrafting_edits_the_same_answer_and_notes_what_is_missing(people):
    case = open_case("district-jongno")
    first = services.draft_answer(case, complete_answer(case), actor=people["jongno"])
    second, event = audited(
        case,
        "draft",
        lambda: services.draft_answer(case, INCOMPLETE_ANSWER, actor=people["jongno"]),
    )
    assert second.pk == first.pk and Answer.objects.filter(case=case).count() == 1
    assert second.text == INCOMPLETE_ANSWER
    assert second.guideline_report["complete"] is False
    assert "thanks" in second.guideline_report["missing"]
    assert event.note.startswith("missing:") and "thanks" in event.note


def test_empty_answer_is_refused(people):
    case = open_case("district-jongno")
    refused(
        case, InvalidInput, lambda: services.draft_answer(case, "   \n", actor=people["jongno"])
    )
    assert not Answer.objects.filter(case=case).exists()


def test_draft_in_a_unit_needing_approval_asks_its_supervisor(people):
    case = drafted(open_case("safety", text="강남역 앞에 싱크홀이 생겼어요"), people["safety"])
    notices = Notification.objects.filter(case=case, kind="approval")
    assert list(notices.values_list("recipient__username", flat=True)) == ["safety-chief"]


def test_approve_by_supervisor(people):
    case = drafted(open_case("safety"), people["safety"])
    refused(case, PermissionDenied, lambda: services.approve_answer(case, actor=people["safety"]))
    answer, event = audited(
        case, "approve", lambda: services.approve_answer(case, actor=people["safety_chief"])
    )
    assert Case.objects.get(pk=case.pk).status == "approved"
    assert answer.approved_by == people["safety_chief"] and answer.approved_at is not None
    assert event.before["status"] == "drafted" and event.after["status"] == "approved"


def test_approve_needs_a_draft(people):
    case = open_case("safety")
    refused(case, InvalidInput, lambda: services.approve_answer(case, actor=people["safety_chief"]))


def test_publish_a_draft_that_needs_approval_is_refused(people):
    case = drafted(open_case("safety"), people["safety"])
    refused(
        case,
        IllegalTransition,
        lambda: services.publish_answer(case, actor=people["safety"]),
        match="approval",
    )
    services.approve_answer(case, actor=people["safety_chief"])
    services.publish_answer(case, actor=people["safety"])
    assert Case.objects.get(pk=case.pk).status == "published"


def test_publish_complete_answer(people):
    case = drafted(open_case("district-jongno"), people["jongno"])
    answer, event = audited(
        case, "publish", lambda: services.publish_answer(case, actor=people["jongno"])
    )
    case.refresh_from_db()
    assert case.status == "published" and case.answered_at is not None
    assert answer.published_at is not None and answer.override_reason == ""
    assert "02-2148-1114" in answer.public_text  # the unit's own number stays public
    assert event.before["status"] == "drafted" and event.after["status"] == "published"
    assert event.note == ""


def test_publish_incomplete_answer_without_a_reason_is_refused(people):
    case = drafted(open_case("district-jongno"), people["jongno"], INCOMPLETE_ANSWER)
    with pytest.raises(GuidelineIncomplete) as caught:
        services.publish_answer(case, actor=people["jongno"], override_reason="  ")
    assert "thanks" in caught.value.details["missing"]
    case.refresh_from_db()
    assert case.status == "drafted" and case.answered_at is None
    assert Answer.objects.get(case=case).published_at is None
    assert list(AuditEvent.objects.filter(case=case).values_list("action", flat=True)) == [
        "open",
        "draft",
    ]


def test_publish_incomplete_answer_with_an_override_reason(people):
    case = drafted(open_case("district-jongno"), people["jongno"], INCOMPLETE_ANSWER)
    reason = "민원인과 통화로 이미 안내함"
    answer, event = audited(
        case,
        "publish",
        lambda: services.publish_answer(case, actor=people["center"], override_reason=reason),
    )
    assert Case.objects.get(pk=case.pk).status == "published"
    assert answer.override_reason == reason
    assert reason in event.note and "thanks" in event.note
    assert event.actor == people["center"]


def test_published_answer_is_masked(people):
    case = open_case("district-jongno")
    text = complete_answer(case) + " 민원인 연락처 010-9876-5432 로도 안내드렸습니다."
    services.draft_answer(case, text, actor=people["jongno"])
    answer = services.publish_answer(case, actor=people["jongno"])
    assert "010-9876-5432" not in answer.public_text and "010-9876-5432" in answer.text


def test_close_a_published_case(people):
    case = published(open_case("district-jongno"), people["jongno"])
    _, event = audited(
        case, "close", lambda: services.close_case(case, actor=people["jongno"], note="완료")
    )
    case.refresh_from_db()
    assert case.status == "closed" and case.closed_at is not None
    assert event.before["status"] == "published" and event.after["status"] == "closed"


def test_close_an_unanswered_case_is_illegal(people):
    case = open_case("district-jongno")
    refused(case, IllegalTransition, lambda: services.close_case(case, actor=people["jongno"]))


# --- Hold and resume -------------------------------------------------------------------------


def test_hold_needs_a_public_reason(people):
    case = open_case("district-jongno")
    refused(
        case, InvalidInput, lambda: services.hold_case(case, reason=" ", actor=people["jongno"])
    )


def test_hold_and_resume_back_to_the_officer(people):
    case = open_case("district-jongno")
    services.assign_officer(case, people["jongno"], actor=people["jongno"])
    reason = "도로 굴착 허가 대기 중 (12월 재개)"
    _, event = audited(
        case, "hold", lambda: services.hold_case(case, reason=reason, actor=people["jongno"])
    )
    case.refresh_from_db()
    assert case.status == "on_hold" and case.hold_reason == reason
    assert event.before["status"] == "officer" and event.after["hold_reason"] == reason
    assert event.note == reason

    _, event = audited(case, "resume", lambda: services.resume_case(case, actor=people["jongno"]))
    case.refresh_from_db()
    assert case.status == "officer" and case.hold_reason == ""
    assert event.before["status"] == "on_hold" and event.after["status"] == "officer"


def test_resume_without_an_officer_goes_back_to_the_unit(people):
    case = open_case("district-jongno")
    services.hold_case(case, reason="예산 확보 후 처리", actor=people["jongno_chief"])
    services.resume_case(case, actor=people["jongno_chief"])
    assert Case.objects.get(pk=case.pk).status == "unit"


def test_resume_a_case_not_on_hold_is_illegal(people):
    case = open_case("district-jongno")
    refused(case, IllegalTransition, lambda: services.resume_case(case, actor=people["jongno"]))


# --- Transfer ------------------------------------------------------------------------------


def test_transfer_needs_a_reason(people):
    case = open_case("transport")
    refused(
        case,
        InvalidInput,
        lambda: services.transfer_case(
            case, Unit.objects.get(code="district-mapo"), reason="", actor=people["transport"]
        ),
    )


def test_transfer_to_the_same_unit_is_refused(people):
    case = open_case("transport")
    refused(
        case,
        InvalidInput,
        lambda: services.transfer_case(
            case, Unit.objects.get(code="transport"), reason="r", actor=people["transport"]
        ),
    )


def test_transfer_to_a_district_office_records_a_triage_correction(people):
    case = open_case("transport", text="마포구 골목에 불법주차 차량이 많아요 단속해 주세요")
    services.assign_officer(case, people["transport"], actor=people["transport"])
    mapo = Unit.objects.get(code="district-mapo")
    reason = "이면도로 불법주차 단속은 자치구 소관입니다"
    _, event = audited(
        case,
        "transfer",
        lambda: services.transfer_case(
            case, mapo, reason=reason, actor=people["transport"], wrong_unit=True
        ),
    )
    case.refresh_from_db()
    assert case.status == "unit" and case.unit == mapo and case.officer is None
    assert event.note == reason
    assert (
        event.before["unit"] == Unit.objects.get(code="transport").pk
        and event.after["unit"] == mapo.pk
    )
    correction = TriageCorrection.objects.get()
    assert (correction.field, correction.before, correction.after) == (
        "unit",
        "transport",
        "district-mapo",
    )
    assert correction.message == case.case_messages.get().message
    assert correction.corrected_by == people["transport"]
    # The new unit hears of it; the old one no longer sees the case.
    assert Notification.objects.filter(
        case=case, recipient=people["mapo"], kind="assigned"
    ).exists()
    refused(
        case,
        PermissionDenied,
        lambda: services.hold_case(case, reason="r", actor=people["transport"]),
    )


def test_transfer_not_marked_wrong_unit_teaches_triage_nothing(people):
    case = open_case("transport")
    services.transfer_case(
        case,
        Unit.objects.get(code="district-mapo"),
        reason="협조 요청",
        actor=people["center"],
        wrong_unit=False,
    )
    assert not TriageCorrection.objects.exists()


def test_transfer_of_a_held_case_clears_the_hold(people):
    case = open_case("transport")
    services.hold_case(case, reason="검토 중", actor=people["transport"])
    services.transfer_case(
        case, Unit.objects.get(code="district-mapo"), reason="구 소관", actor=people["transport"]
    )
    case.refresh_from_db()
    assert case.status == "unit" and case.hold_reason == ""


# --- Merge -----------------------------------------------------------------------------------


def test_merge_moves_the_messages_and_records_both_sides(people):
    duplicate = open_case("district-jongno")
    target = open_case("district-jongno")
    moved = duplicate.case_messages.get().message
    _, event = audited(
        duplicate, "merge", lambda: services.merge_case(duplicate, target, actor=people["center"])
    )
    duplicate.refresh_from_db()
    assert duplicate.status == "merged" and duplicate.merged_into == target
    assert event.before["status"] == "unit" and event.after["merged_into"] == target.pk
    assert target.number in event.note
    assert not CaseMessage.objects.filter(case=duplicate).exists()
    link = CaseMessage.objects.get(message=moved)
    assert link.case == target and link.role == "joined"
    assert target.case_messages.count() == 2

    join = AuditEvent.objects.filter(case=target).order_by("pk").last()
    assert join.action == "join" and duplicate.number in join.note
    assert join.before["status"] == join.after["status"] == "unit"
    assert Case.objects.get(pk=target.pk).status == "unit"


def test_merge_into_itself_is_refused(people):
    case = open_case("district-jongno")
    refused(case, InvalidInput, lambda: services.merge_case(case, case, actor=people["center"]))


def test_merge_into_a_merged_case_is_refused(people):
    first, second, third = (open_case("district-jongno") for _ in range(3))
    services.merge_case(first, second, actor=people["center"])
    refused(
        third,
        InvalidInput,
        lambda: services.merge_case(third, Case.objects.get(pk=first.pk), actor=people["center"]),
        match="merged",
    )


def test_merge_is_the_centers_job(people):
    a, b = open_case("district-jongno"), open_case("district-jongno")
    refused(a, PermissionDenied, lambda: services.merge_case(a, b, actor=people["jongno"]))


# --- Reopen ----------------------------------------------------------------------------------


def test_reopen_needs_a_reason(people):
    case = published(open_case("district-jongno"), people["jongno"])
    refused(
        case, InvalidInput, lambda: services.reopen_case(case, reason="", actor=people["jongno"])
    )


def test_reopen_gives_a_new_deadline_and_a_new_answer(people):
    case = published(open_case("district-jongno"), people["jongno"])
    services.close_case(case, actor=people["jongno"])
    first_answer = Answer.objects.get(case=case)
    old_deadline = Case.objects.get(pk=case.pk).deadline_at

    start = timezone.now()
    _, event = audited(
        case,
        "reopen",
        lambda: services.reopen_case(case, reason="민원인: 다시 꺼졌어요", actor=people["jongno"]),
    )
    end = timezone.now()
    case.refresh_from_db()
    assert case.status == "officer" and case.officer == people["jongno"]  # back to its officer
    assert case.closed_at is None and case.answered_at is None
    request = CaseType.objects.get(code="request")
    assert (
        compute_case_deadline(request, start)[0]
        <= case.deadline_at
        <= compute_case_deadline(request, end)[0]
    )
    assert case.deadline_at >= old_deadline
    assert case.remind_at < case.deadline_at
    assert event.before["status"] == "closed" and event.after["status"] == "officer"
    assert datetime.fromisoformat(event.after["deadline_at"]) == case.deadline_at
    assert event.note == "민원인: 다시 꺼졌어요"

    second = services.draft_answer(
        case, complete_answer(case) + " 재점검하였습니다.", actor=people["jongno"]
    )
    assert second.pk != first_answer.pk
    first_answer.refresh_from_db()
    assert first_answer.published_at is not None and "재점검" not in first_answer.text
    services.publish_answer(case, actor=people["jongno"])
    assert Answer.objects.filter(case=case, published_at__isnull=False).count() == 2


def test_reopen_an_open_case_is_illegal(people):
    case = open_case("district-jongno")
    refused(
        case,
        IllegalTransition,
        lambda: services.reopen_case(case, reason="r", actor=people["jongno"]),
    )


def test_full_life_leaves_one_event_per_action(people):
    case = open_case(None)
    services.assign_unit(case, Unit.objects.get(code="district-jongno"), actor=people["center"])
    services.assign_officer(case, people["jongno"], actor=people["jongno"])
    services.hold_case(case, reason="부품 수급 대기", actor=people["jongno"])
    services.resume_case(case, actor=people["jongno"])
    services.draft_answer(
        case, complete_answer(Case.objects.get(pk=case.pk)), actor=people["jongno"]
    )
    services.publish_answer(case, actor=people["jongno"])
    services.close_case(case, actor=people["jongno"])
    services.reopen_case(case, reason="재발", actor=people["jongno"])
    events = list(AuditEvent.objects.filter(case=case).order_by("pk"))
    assert [e.action for e in events] == [
        "open",
        "assign_unit",
        "assign_officer",
        "hold",
        "resume",
        "draft",
        "publish",
        "close",
        "reopen",
    ]
    # Each event starts where the previous one ended.
    for previous, current in itertools.pairwise(events):
        assert same_state(current.before, previous.after), current.action
        assert current.at >= previous.at


# --- The audit trail is append-only ------------------------------------------------------------


def test_audit_event_cannot_be_changed_or_deleted_through_the_model(people):
    event = AuditEvent.objects.get(case=open_case("district-jongno"))
    event.note = "고쳐 쓴 기록"
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.note == ""


def test_audit_event_cannot_be_changed_with_raw_sql(people):
    event = AuditEvent.objects.get(case=open_case("district-jongno"))
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE cases_auditevent SET note='x'")
    assert AuditEvent.objects.get(pk=event.pk).note == ""


def test_audit_event_cannot_be_changed_or_deleted_with_a_queryset(people):
    event = AuditEvent.objects.get(case=open_case("district-jongno"))
    with pytest.raises(ValueError):
        AuditEvent.objects.filter(pk=event.pk).update(note="x")
    with pytest.raises(ValueError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    # Past the queryset (a plain QuerySet over the same table), the database trigger refuses.
    with pytest.raises(DatabaseError), transaction.atomic():
        models.QuerySet(AuditEvent).filter(pk=event.pk).update(note="x")
    assert AuditEvent.objects.get(pk=event.pk).note == ""


def test_audit_event_cannot_be_deleted_with_raw_sql_on_postgresql(people):
    if connection.vendor != "postgresql":
        pytest.skip(
            "SQLite has no DELETE trigger: Django empties SQLite test databases with DELETE"
        )
    case = open_case("district-jongno")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM cases_auditevent")
    assert AuditEvent.objects.filter(case=case).count() == 1


def test_recategorize_is_audited_and_kept_as_a_correction(people):
    case = open_case("district-jongno")
    assert case.category is None
    target = Category.objects.get(code="waste")
    client = client_for(people["jongno"])
    response = client.post(f"/work/cases/{case.pk}/recategorize/", {"category": "waste"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.category == target and case.status == "unit"
    event = AuditEvent.objects.filter(case=case).latest("pk")
    assert event.action == "recategorize"
    assert event.before["category"] is None and event.after["category"] == target.pk
    correction = TriageCorrection.objects.get(field="category")
    assert (correction.before, correction.after) == ("", "waste")
    assert (
        client_for(people["mapo"])
        .post(f"/work/cases/{case.pk}/recategorize/", {"category": "noise"})
        .status_code
        == 404
    )
