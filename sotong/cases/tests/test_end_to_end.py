"""The whole path through HTTP: a message posted to the API is triaged by a queued job,
opens a case routed to the district office, is answered with the guideline check,
published, and shown masked on the public case page."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from sotong.cases.models import AuditEvent, Case
from sotong.conftest import client_for
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = (
    "시장님, 종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. "
    "빨리 고쳐주세요. 제 번호는 010-1234-5678 이고 집은 창신동 123-45번지입니다."
)
ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 확인하였으며, "
    "2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 종로구청 건설관리과"
    "(☎02-2148-1234)로 연락주시면 성심껏 답변드리겠습니다."
)


def post_message(token: str, external_id: str = "1790000000000000042"):
    body = {
        "channel": "x",
        "account": "@seoul_mayor",
        "external_id": external_id,
        "author": "@citizen",
        "text": TEXT,
    }
    return Client().post(
        "/api/v1/messages",
        json.dumps(body, ensure_ascii=False),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_message_to_published_masked_answer(people, token):
    people["jongno"].phone = "02-2148-1234"  # the officer's office line, public in answers
    people["jongno"].save()
    assert post_message(token).status_code == 201
    assert run_queued_jobs() >= 1
    case = Case.objects.get()
    assert case.unit.code == "district-jongno"
    assert case.category.code == "security-light"
    assert case.status == "unit"

    officer = client_for(people["jongno"])
    page = officer.get(f"/work/cases/{case.pk}/")
    assert page.status_code == 200
    assert "창신동 골목 보안등" in page.content.decode()

    check = officer.post(f"/work/cases/{case.pk}/check-answer/", {"text": "확인했습니다."})
    assert "✗" in check.content.decode()

    assert officer.post(f"/work/cases/{case.pk}/draft/", {"text": ANSWER}).status_code == 302
    case.refresh_from_db()
    assert case.status == "drafted"
    assert case.officer == people["jongno"]
    report = case.answers.get().guideline_report
    assert report["missing"] == [], report

    assert officer.post(f"/work/cases/{case.pk}/publish/").status_code == 302
    case.refresh_from_db()
    assert case.status == "published"
    # Publishing queued the reply to the citizen's thread from the center's reply account
    # (@seoul_smc), which has no X tokens here: the send job finds none, and the officer is
    # told to reply elsewhere.
    assert run_queued_jobs() == 2
    delivery = case.reply_deliveries.get()
    assert delivery.state == "manual" and delivery.account.handle == "@seoul_smc"

    public = Client().get(f"/cases/{case.number}/")
    html = public.content.decode()
    assert public.status_code == 200
    assert "보안등" in html and "감사합니다" in html
    assert "010-1234-5678" not in html and "123-45" not in html
    assert "02-2148-1234" in html  # the office's public number stays in the answer
    assert case.number in Client().get("/").content.decode()

    actions = list(AuditEvent.objects.filter(case=case).values_list("action", flat=True))
    assert actions == ["open", "draft", "publish"]

    # The same message again: 200 duplicate, no new message, no new case, nothing queued.
    again = post_message(token)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert run_queued_jobs() == 0
    assert Message.objects.count() == 1 and Case.objects.count() == 1
    assert list(AuditEvent.objects.filter(case=case).values_list("action", flat=True)) == actions


def test_html_in_texts_is_shown_escaped(people, token):
    body = {
        "channel": "x",
        "external_id": "x-script",
        "account": "@seoul_mayor",
        "text": "<script>alert(1)</script><img src=x onerror=alert(2)> 종로구 보안등 고장 고쳐주세요",
    }
    Client().post(
        "/api/v1/messages",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    run_queued_jobs()
    case = Case.objects.get()
    html = client_for(people["jongno"]).get(f"/work/cases/{case.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html


def test_opening_a_case_marks_its_notices_read(people, token):
    body = {
        "channel": "x",
        "external_id": "urgent-1",
        "text": "강남역 앞 싱크홀이 생겼어요 위험해요",
    }
    Client().post(
        "/api/v1/messages",
        json.dumps(body, ensure_ascii=False),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    run_queued_jobs()
    case = Case.objects.get()
    assert case.urgent and case.unit.code == "safety"
    officer = client_for(people["safety"])
    inbox = officer.get("/work/inbox/").content.decode()
    assert case.number in inbox and "inbox-notice" in inbox
    officer.get(f"/work/cases/{case.pk}/")
    assert "inbox-notice" not in officer.get("/work/inbox/").content.decode()
