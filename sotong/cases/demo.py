"""Demo answers for `make run`: the demo administrator answers the oldest open demo case now
and then, through the same services as a person, so the public pages move too."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from sotong.cases import services
from sotong.cases.models import Case
from sotong.cases.workflow import CaseStatus
from sotong.directory.models import Officer

DEMO_ANSWER = (
    "[데모 답변] 소중한 의견을 주셔서 감사합니다. 말씀하신 {topic} 관련 내용에 대하여 "
    "현장을 확인하였으며, {date}까지 조치를 완료할 예정입니다. "
    "기타 문의사항은 {unit}({phone})로 연락주시면 성심껏 답변드리겠습니다."
)


def answer_one_demo_case() -> Case | None:
    """Draft, approve where needed, and publish an answer to the oldest open demo case."""
    admin = Officer.objects.filter(username="demo-admin", is_active=True).first()
    case = (
        Case.objects.filter(
            status__in=[CaseStatus.UNIT, CaseStatus.OFFICER],
            unit__isnull=False,
        )
        .filter(
            # Demo messages: ingested with a demo- id, or delivered through a webhook by a
            # demo author (sotong/inbox/data/demo_messages.yaml: every author is *_demo_*).
            Q(case_messages__message__external_id__startswith="demo-")
            | Q(case_messages__message__author_handle__contains="_demo_")
        )
        .select_related("unit", "category")
        .order_by("opened_at")
        .first()
    )
    if admin is None or case is None or case.unit is None:
        return None
    text = DEMO_ANSWER.format(
        topic=case.category.name if case.category else "민원",
        date=(timezone.localdate() + timedelta(days=7)).strftime("%Y년 %m월 %d일"),
        unit=case.unit.name,
        phone=case.unit.phone or "120",
    )
    services.draft_answer(case, text, actor=admin)
    if services.requires_approval(case):
        services.approve_answer(case, actor=admin)
    services.publish_answer(case, actor=admin, override_reason="demo")
    return case
