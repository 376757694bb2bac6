"""An officer sees and acts on their own unit's cases only, through every door; the public
sees only published cases, masked."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from sotong.cases import services
from sotong.cases.models import Case
from sotong.conftest import client_for
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.services import triage_messages

ACTIONS = [
    "assign_officer",
    "draft",
    "approve",
    "publish",
    "close",
    "hold",
    "resume",
    "transfer",
    "merge",
    "reopen",
    "assign_unit",
    "split",
]


@pytest.fixture
def jongno_case(people) -> Case:
    messages = ingest_batch(
        [
            NormalizedMessage(
                channel="x",
                external_id="p1",
                text="종로구 보안등이 꺼졌어요 고쳐주세요 010-9876-5432",
            )
        ]
    )
    triage_messages([m.pk for m in messages])
    case = Case.objects.get()
    assert case.unit.code == "district-jongno"
    return case


def test_other_unit_cannot_read_case_page_or_api(people, jongno_case):
    mapo = client_for(people["mapo"])
    assert mapo.get(f"/work/cases/{jongno_case.pk}/").status_code == 404
    assert mapo.get(f"/api/v1/cases/{jongno_case.pk}").status_code == 404
    assert (
        mapo.post(f"/work/cases/{jongno_case.pk}/check-answer/", {"text": "x"}).status_code == 404
    )
    inbox = mapo.get("/work/inbox/?status=").content.decode()
    assert jongno_case.number not in inbox


@pytest.mark.parametrize("action", ACTIONS)
def test_other_unit_cannot_act_through_page_or_api(people, jongno_case, action):
    mapo = client_for(people["mapo"])
    params = {
        "text": "답변",
        "reason": "r",
        "unit": "district-mapo",
        "officer": "mapo",
        "into": "S1",
        "message": "1",
    }
    assert mapo.post(f"/work/cases/{jongno_case.pk}/{action}/", params).status_code == 404
    api = mapo.post(
        f"/api/v1/cases/{jongno_case.pk}/{action}",
        json.dumps(params),
        content_type="application/json",
    )
    assert api.status_code == 404
    jongno_case.refresh_from_db()
    assert jongno_case.status == "unit" and jongno_case.unit.code == "district-jongno"
    assert jongno_case.audit_events.count() == 1


def test_own_unit_officer_can_read_via_api(people, jongno_case):
    response = client_for(people["jongno"]).get(f"/api/v1/cases/{jongno_case.pk}")
    assert response.status_code == 200
    assert response.json()["unit"] == "district-jongno"


def test_officer_cannot_route_or_assign_others(people, jongno_case):
    jongno = client_for(people["jongno"])
    assert (
        jongno.post(f"/work/cases/{jongno_case.pk}/assign_unit/", {"unit": "transport"}).status_code
        == 403
    )
    assert (
        jongno.post(
            f"/work/cases/{jongno_case.pk}/assign_officer/", {"officer": "jongno-chief"}
        ).status_code
        == 403
    )
    # but may take it, and the supervisor may give it to anyone of the unit
    assert (
        jongno.post(
            f"/work/cases/{jongno_case.pk}/assign_officer/", {"officer": "jongno"}
        ).status_code
        == 302
    )
    chief = client_for(people["jongno_chief"])
    assert (
        chief.post(f"/work/cases/{jongno_case.pk}/assign_officer/", {"officer": "mapo"}).status_code
        == 403
    )


def test_only_a_supervisor_approves(people, directory):
    messages = ingest_batch(
        [
            NormalizedMessage(
                channel="x", external_id="p2", text="강남역 앞에 싱크홀이 생겼어요 위험해요"
            )
        ]
    )
    triage_messages([m.pk for m in messages])
    case = Case.objects.get()
    assert case.unit.code == "safety" and case.unit.requires_approval and case.urgent
    services.draft_answer(
        case,
        "감사합니다. 싱크홀 신고 건에 대하여 즉시 복구하였습니다. 안전총괄실(02-2133-0000)",
        actor=people["safety"],
    )
    officer = client_for(people["safety"])
    assert officer.post(f"/work/cases/{case.pk}/approve/").status_code == 403
    assert (
        officer.post(f"/work/cases/{case.pk}/publish/").status_code == 409
    )  # needs approval first
    assert (
        client_for(people["safety_chief"]).post(f"/work/cases/{case.pk}/approve/").status_code
        == 302
    )
    assert (
        officer.post(f"/work/cases/{case.pk}/publish/", {"override_reason": "test"}).status_code
        == 302
    )


def test_anonymous_is_sent_to_sign_in_and_api_refuses(jongno_case):
    anonymous = Client()
    for url in [f"/work/cases/{jongno_case.pk}/", "/work/inbox/", "/work/triage/"]:
        response = anonymous.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert anonymous.get(f"/api/v1/cases/{jongno_case.pk}").status_code == 401


def test_officer_cannot_open_triage_queue(people):
    assert client_for(people["jongno"]).get("/work/triage/").status_code == 403


def test_public_sees_no_draft_answer_and_no_personal_data(people, jongno_case):
    # Every case is public from the start (응답소), masked; a draft answer is not.
    public = Client()
    html = public.get(f"/cases/{jongno_case.number}/").content.decode()
    assert "보안등" in html and "010-9876-5432" not in html and "[전화번호]" in html
    assert jongno_case.number in public.get("/cases/").content.decode()
    services.draft_answer(
        jongno_case,
        "감사합니다. 말씀하신 보안등 고장에 대하여 11월 30일까지 수리하겠습니다. 문의: 종로구청(02-2148-1111)",
        actor=people["jongno"],
    )
    assert "11월 30일까지" not in public.get(f"/cases/{jongno_case.number}/").content.decode()
    services.publish_answer(jongno_case, actor=people["jongno"])
    html = public.get(f"/cases/{jongno_case.number}/").content.decode()
    assert "보안등" in html and "010-9876-5432" not in html and "[전화번호]" in html
