"""Deadlines: a case's processing deadline (처리기한) from its case type in Korean business
days, and the sweep that reminds before it and escalates after it, once each.

Expected dates were worked out by hand from holidays.KR(years=2026) and the counting rules
in sotong/lib/business_days.py (민원 처리에 관한 법률 제19조):
  2026-02-16..18 설날 (Mon–Wed) · 2026-09-24..26 추석 (Thu–Sat) · 2026-10-03 개천절 (Sat)
  → 2026-10-05 substitute holiday (Mon) · 2026-10-09 한글날 (Fri).
Up to 5 days counts working hours (8 a day, 09–12 and 13–18); 6 days and more count days,
the day of receipt included when it is a business day, ending at 18:00.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from django.utils import timezone

from sotong.cases import services
from sotong.cases.deadlines import sweep_deadlines
from sotong.cases.jobs import email_notifications
from sotong.cases.models import AuditEvent, Case, Notification
from sotong.cases.services import CaseOpening, compute_case_deadline, open_cases
from sotong.directory.models import CaseType, Unit
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.jobs.testing import run_queued_jobs

SEOUL = ZoneInfo("Asia/Seoul")
_ids = itertools.count(1)


def kst(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SEOUL)


def deadline(case_type: str, received_at: datetime) -> datetime:
    return compute_case_deadline(CaseType.objects.get(code=case_type), received_at)[0]


# --- Deadlines from case types ------------------------------------------------------------------


def test_the_holidays_these_expectations_rely_on():
    kr = holidays.KR(years=2026)
    for day in [
        date(2026, 2, 16),
        date(2026, 2, 17),
        date(2026, 2, 18),
        date(2026, 9, 24),
        date(2026, 9, 25),
        date(2026, 9, 26),
        date(2026, 10, 3),
        date(2026, 10, 5),
        date(2026, 10, 9),
    ]:
        assert day in kr, day
    for day in [
        date(2026, 2, 13),
        date(2026, 2, 19),
        date(2026, 9, 23),
        date(2026, 9, 28),
        date(2026, 10, 6),
    ]:
        assert day not in kr, day


def test_request_received_before_chuseok(directory):
    # 7 business days from Fri 9-18 (day 1): 18, 21, 22, 23 · 추석 24–26 · 28, 29, 30.
    assert deadline("request", kst(2026, 9, 18, 10)) == kst(2026, 9, 30, 18)
    # The hour of receipt does not matter when counting in days, even after closing time.
    assert deadline("request", kst(2026, 9, 18, 23, 30)) == kst(2026, 9, 30, 18)


def test_simple_opinion_received_friday_evening_before_seollal(directory):
    # 3 days = 24 working hours: Fri 2-13 17–18 (1) · 설날 16–18 · Thu 19 (8) · Fri 20 (8)
    # · Mon 23 09–12 (3) and 13–17 (4) = 24.
    assert deadline("opinion", kst(2026, 2, 13, 17)) == kst(2026, 2, 23, 17)


def test_received_on_a_substitute_holiday(directory):
    # Mon 10-05 (substitute for 개천절) is not day 1; counting starts Tue 10-06:
    # 6, 7, 8 · 한글날 9 · 12, 13, 14, 15.
    assert deadline("request", kst(2026, 10, 5, 10)) == kst(2026, 10, 15, 18)
    # 24 working hours from Tue 09:00: 6, 7, 8 → Thu 10-08 at closing time.
    assert deadline("opinion", kst(2026, 10, 5, 10)) == kst(2026, 10, 8, 18)


def test_urgent_is_one_clock_hour_even_on_a_holiday(directory):
    assert deadline("urgent", kst(2026, 9, 25, 3)) == kst(2026, 9, 25, 4)
    assert deadline("urgent", kst(2026, 2, 13, 23, 30)) == kst(2026, 2, 14, 0, 30)


def test_reminder_falls_between_receipt_and_deadline(directory, settings):
    settings.SOTONG_REMIND_AT_FRACTION = 0.75
    received = kst(2026, 9, 18, 10)
    due, remind = compute_case_deadline(CaseType.objects.get(code="request"), received)
    assert received < remind < due
    assert remind == received + (due - received) * 0.75


def test_opened_case_carries_its_types_deadline(directory):
    case = open_case("district-jongno", case_type="opinion")
    message = case.case_messages.get().message
    assert case.deadline_at == deadline("opinion", message.received_at)


# --- The sweep -----------------------------------------------------------------------------------


def open_case(unit_code: str | None, *, case_type: str = "request") -> Case:
    [message] = ingest_batch(
        [
            NormalizedMessage(
                channel="x",
                external_id=f"dl-{next(_ids)}",
                text="창신동 골목 보안등이 꺼졌어요 고쳐주세요",
            )
        ]
    )
    [case] = open_cases(
        [
            CaseOpening(
                message=message,
                case_type=CaseType.objects.get(code=case_type),
                category=None,
                unit=Unit.objects.get(code=unit_code) if unit_code else None,
            )
        ]
    )
    return Case.objects.get(pk=case.pk)


def notified(kind: str, case: Case | None = None) -> list[str]:
    notices = Notification.objects.filter(kind=kind)
    if case is not None:
        notices = notices.filter(case=case)
    return sorted(notices.values_list("recipient__username", flat=True))


def sweep_events(case: Case) -> list[str]:
    return list(
        AuditEvent.objects.filter(case=case, action__in=["remind", "escalate"])
        .order_by("pk")
        .values_list("action", flat=True)
    )


def just_after_reminder(case: Case) -> datetime:
    return case.remind_at + timedelta(minutes=1)


def after_deadline(case: Case) -> datetime:
    return case.deadline_at + timedelta(minutes=1)


def test_case_past_its_reminder_reminds_its_officer_once(people):
    case = open_case("district-jongno")
    services.assign_officer(case, people["jongno"], actor=people["jongno"])
    now = just_after_reminder(case)

    report = sweep_deadlines(now=now)
    assert (report.reminded, report.escalated) == (1, 0)
    assert notified("reminder") == ["jongno"]
    [event] = AuditEvent.objects.filter(case=case, action="remind")
    assert event.actor is None and event.actor_label == "deadline sweep" and event.at == now
    assert Case.objects.get(pk=case.pk).reminded_at == now

    again = sweep_deadlines(now=now + timedelta(minutes=5))
    assert (again.reminded, again.escalated) == (0, 0)
    assert notified("reminder") == ["jongno"]
    assert sweep_events(case) == ["remind"]


def test_case_without_officer_reminds_the_units_staff(people):
    case = open_case("district-jongno")
    sweep_deadlines(now=just_after_reminder(case))
    assert notified("reminder", case) == ["jongno", "jongno-chief"]


def test_case_with_no_unit_reminds_the_center(people):
    case = open_case(None)
    sweep_deadlines(now=just_after_reminder(case))
    assert notified("reminder", case) == ["center"]


def test_nothing_is_due_before_the_reminder(people):
    case = open_case("district-jongno")
    report = sweep_deadlines(now=case.remind_at - timedelta(minutes=1))
    assert (report.reminded, report.escalated) == (0, 0)
    assert not Notification.objects.exists() and sweep_events(case) == []


def test_overdue_case_is_escalated_to_supervisors_and_center_once(people):
    case = open_case("district-jongno")
    services.assign_officer(case, people["jongno"], actor=people["jongno"])
    now = after_deadline(case)

    report = sweep_deadlines(now=now)
    assert (report.reminded, report.escalated) == (0, 1)
    assert notified("escalation") == ["center", "jongno-chief"]
    assert Case.objects.get(pk=case.pk).escalated_at == now
    assert sweep_events(case) == ["escalate"]

    again = sweep_deadlines(now=now + timedelta(days=1))
    assert (again.reminded, again.escalated) == (0, 0)
    assert notified("escalation") == ["center", "jongno-chief"]
    assert sweep_events(case) == ["escalate"]


def test_reminded_case_is_later_escalated(people):
    case = open_case("safety")
    sweep_deadlines(now=just_after_reminder(case))
    sweep_deadlines(now=after_deadline(case))
    assert sweep_events(case) == ["remind", "escalate"]
    assert notified("reminder", case) == ["safety", "safety-chief"]
    assert notified("escalation", case) == ["center", "safety-chief"]


def test_held_published_and_merged_cases_are_not_swept(people):
    held = open_case("district-jongno")
    services.hold_case(held, reason="공사 일정 대기", actor=people["jongno"])
    answered = open_case("district-jongno")
    services.draft_answer(
        answered,
        "소중한 의견 감사합니다. 보안등 고장에 대하여 교체하였습니다. "
        "문의는 종로구청(02-2148-1114)으로 연락 주십시오.",
        actor=people["jongno"],
    )
    services.publish_answer(answered, actor=people["jongno"], override_reason="테스트")
    merged = open_case("district-jongno")
    target = open_case("district-jongno")
    services.merge_case(merged, target, actor=people["center"])
    services.hold_case(target, reason="통합 건 검토", actor=people["jongno"])

    for now in (just_after_reminder(held), after_deadline(held) + timedelta(days=30)):
        report = sweep_deadlines(now=now)
        assert (report.reminded, report.escalated) == (0, 0)
    assert not Notification.objects.filter(kind__in=["reminder", "escalation"]).exists()
    for case in (held, answered, merged, target):
        assert sweep_events(case) == []


def test_resumed_case_is_swept_again(people):
    case = open_case("district-jongno")
    services.hold_case(case, reason="예산 확보 대기", actor=people["jongno"])
    assert sweep_deadlines(now=after_deadline(case)).escalated == 0
    services.resume_case(case, actor=people["jongno"])
    assert sweep_deadlines(now=after_deadline(case)).escalated == 1


def test_reopened_case_reminds_its_officer_again(people):
    case = open_case("district-jongno")
    services.assign_officer(case, people["jongno"], actor=people["jongno"])
    sweep_deadlines(now=just_after_reminder(case))
    Notification.objects.filter(case=case).update(read_at=timezone.now(), emailed_at=timezone.now())
    services.draft_answer(
        case,
        "소중한 의견 감사합니다. 보안등 고장에 대하여 교체하였습니다. "
        "문의는 종로구청(02-2148-1114)으로 연락 주십시오.",
        actor=people["jongno"],
    )
    services.publish_answer(case, actor=people["jongno"], override_reason="테스트")
    services.reopen_case(case, reason="다시 꺼졌어요", actor=people["jongno"])
    case.refresh_from_db()

    assert sweep_deadlines(now=just_after_reminder(case)).reminded == 1
    unread = Notification.objects.filter(case=case, kind="reminder", read_at__isnull=True)
    assert list(unread.values_list("recipient__username", flat=True)) == ["jongno"]


# --- Notification e-mail ---------------------------------------------------------------------------


@pytest.fixture
def mail(settings, mailoutbox, people):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    for officer in people.values():
        officer.email = f"{officer.username}@seoul.example"
        officer.save(update_fields=["email"])
    return mailoutbox


def test_sweep_mails_each_notice_once(people, mail, django_capture_on_commit_callbacks):
    case = open_case("district-jongno")
    run_queued_jobs()  # the triage job its message queued
    with django_capture_on_commit_callbacks(execute=True):
        sweep_deadlines(now=after_deadline(case))
    assert run_queued_jobs() == 1

    assert sorted(m.to[0] for m in mail) == ["center@seoul.example", "jongno-chief@seoul.example"]
    for message in mail:
        assert case.number in message.subject
        assert f"/work/cases/{case.pk}/" in message.body
    assert not Notification.objects.filter(kind="escalation", emailed_at__isnull=True).exists()

    # The job retried, or run again by hand: nothing goes out twice.
    assert email_notifications([case.pk], Notification.Kind.ESCALATION) == 0
    with django_capture_on_commit_callbacks(execute=True):
        sweep_deadlines(now=after_deadline(case) + timedelta(hours=1))
    run_queued_jobs()
    assert len(mail) == 2


def test_email_job_run_twice_sends_once(people, mail):
    case = open_case("district-jongno")
    sweep_deadlines(now=just_after_reminder(case))
    assert email_notifications([case.pk], "reminder") == 2
    assert email_notifications([case.pk], "reminder") == 0
    assert sorted(m.to[0] for m in mail) == ["jongno-chief@seoul.example", "jongno@seoul.example"]


def test_officer_without_email_gets_the_in_app_notice_only(people, mail):
    people["jongno_chief"].email = ""
    people["jongno_chief"].save(update_fields=["email"])
    case = open_case("district-jongno")
    sweep_deadlines(now=just_after_reminder(case))
    assert email_notifications([case.pk], "reminder") == 1
    assert [m.to for m in mail] == [["jongno@seoul.example"]]
    assert notified("reminder", case) == ["jongno", "jongno-chief"]
