"""The case page tells the people who act on a case why triage sent it there: the decision
on the message that opened it, its reasons, the other likely categories with their owners,
and the engine that decided; all of it escaped."""

from __future__ import annotations

import itertools

import pytest

from sotong.cases.models import Case, CaseMessage
from sotong.conftest import client_for
from sotong.directory.models import Category
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.models import TriageDecision
from sotong.triage.services import triage_messages

_ids = itertools.count(1)

STREETLIGHT = "종로구 창신동 골목 보안등이 꺼졌어요 고쳐주세요"


def open_case(text: str) -> Case:
    messages = ingest_batch(
        [NormalizedMessage(channel="x", external_id=f"why-{next(_ids)}", text=text)]
    )
    triage_messages([m.pk for m in messages])
    return Case.objects.get(case_messages__message=messages[0])


def opening_decision(case: Case) -> TriageDecision:
    link = CaseMessage.objects.get(case=case, role=CaseMessage.Role.OPENED)
    return TriageDecision.objects.get(message=link.message)


@pytest.fixture
def explained_case(people) -> Case:
    case = open_case(STREETLIGHT)
    assert case.unit.code == "district-jongno"
    TriageDecision.objects.filter(pk=opening_decision(case).pk).update(
        confidence=0.834,
        reasons=["모델 분류: security-light (0.83)", "근거: 보안등, 꺼졌"],
        alternatives=[["bus", 0.12], ["parks-trees", 0.049], ["retired-code", 0.01]],
        engine="rules-1+relevance-v3+routing-v7",
    )
    return case


def test_case_page_explains_the_decision(people, explained_case):
    html = client_for(people["jongno"]).get(f"/work/cases/{explained_case.pk}/").content.decode()
    assert "분류 근거" in html  # "Why it came here", in the default language
    assert "모델 분류: security-light (0.83)" in html and "근거: 보안등, 꺼졌" in html
    assert "83%" in html
    assert "rules-1+relevance-v3+routing-v7" in html
    bus = Category.objects.select_related("owner").get(code="bus")
    parks = Category.objects.select_related("owner").get(code="parks-trees")
    assert f"{bus.name} — {bus.owner.name} (12%)" in html
    assert f"{parks.name} — {parks.owner.name} (5%)" in html
    assert "retired-code (1%)" in html  # a code the directory does not know shows as the code
    assert opening_decision(explained_case).get_review_display() in html


def test_case_page_in_english(people, explained_case):
    client = client_for(people["center"])
    client.post("/i18n/setlang/", {"language": "en"})
    html = client.get(f"/work/cases/{explained_case.pk}/").content.decode()
    assert "Why it came here" in html and "Other likely categories" in html


def test_message_and_reason_text_is_escaped(people):
    case = open_case(STREETLIGHT + " <script>alert('message')</script>")
    TriageDecision.objects.filter(pk=opening_decision(case).pk).update(
        reasons=["근거: <script>alert('reason')</script>"],
        alternatives=[["<img src=x onerror=alert(1)>", 0.2]],
    )
    html = client_for(people["jongno"]).get(f"/work/cases/{case.pk}/").content.decode()
    assert "<script>alert(" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#x27;message&#x27;)&lt;/script&gt;" in html
    assert "근거: &lt;script&gt;alert(&#x27;reason&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt; (20%)" in html


def test_officer_of_another_unit_sees_nothing_of_it(people, explained_case):
    response = client_for(people["mapo"]).get(f"/work/cases/{explained_case.pk}/")
    assert response.status_code == 404
    assert "rules-1+relevance-v3+routing-v7" not in response.content.decode()
