"""The engine inside the triage job: urgency, duplicates joining a case, the split."""

from __future__ import annotations

import pytest

from sotong.cases import services
from sotong.cases.models import AuditEvent, Case, CaseMessage
from sotong.errors import InvalidInput, PermissionDenied
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.models import TriageDecision
from sotong.triage.services import triage_messages


def triage(*texts: str, prefix: str = "e") -> list[int]:
    messages = ingest_batch(
        [
            NormalizedMessage(channel="x", external_id=f"{prefix}-{i}", text=t)
            for i, t in enumerate(texts)
        ]
    )
    triage_messages([m.pk for m in messages])
    return [m.pk for m in messages]


def test_hazard_without_a_category_keyword_is_urgent(directory):
    triage("집 앞 도로에서 가스 냄새가 심하게 나요 빨리 와주세요")
    decision = TriageDecision.objects.get()
    assert decision.urgent and decision.relevant
    case = Case.objects.get()
    assert case.urgent and case.case_type.code == "urgent"


def test_hazard_word_in_a_request_is_urgent(directory):
    triage("동네 골목 가로수가 쓰러져서 길을 막고 있어요 위험해요")
    assert TriageDecision.objects.get().urgent


def test_resolved_hazard_is_not_urgent(directory):
    triage("지난주 싱크홀 빠르게 복구해주셔서 감사합니다")
    decision = TriageDecision.objects.get()
    assert not decision.urgent
    assert any(r.startswith("긴급 아님") for r in decision.reasons)


def test_copies_and_retweets_join_the_first_case(directory):
    text = "마포구 망원동 망원시장 앞 불법주차 때문에 버스가 못 지나가요 단속해주세요"
    triage(text, f"RT @someone: {text}", prefix="a")
    triage(text + " 🙏", prefix="b")
    assert Case.objects.count() == 1
    case = Case.objects.get()
    assert CaseMessage.objects.filter(case=case).count() == 3
    assert AuditEvent.objects.filter(case=case, action="join").count() == 2
    joined = TriageDecision.objects.exclude(message__case_link__role="opened")
    assert all(any(r.startswith("중복 신고") for r in d.reasons) for d in joined)


def test_same_words_other_place_open_their_own_cases(directory):
    triage(
        "마포구 망원동 골목 보안등이 꺼졌어요 고쳐주세요",
        "노원구 상계동 골목 보안등이 꺼졌어요 고쳐주세요",
    )
    assert Case.objects.count() == 2


def test_center_splits_a_wrong_link(people):
    text = "종로구 창신동 골목 보안등이 꺼졌어요 고쳐주세요"
    [first, second] = triage(text, f"RT {text}")
    case = Case.objects.get()
    joined = CaseMessage.objects.get(role="joined").message
    with pytest.raises(PermissionDenied):
        services.split_message(case, joined, actor=people["jongno"])
    new = services.split_message(case, joined, actor=people["center"])
    assert new.pk != case.pk and new.unit == case.unit
    assert CaseMessage.objects.get(message=joined).case == new
    with pytest.raises(InvalidInput):
        services.split_message(
            case, CaseMessage.objects.get(case=case).message, actor=people["center"]
        )
