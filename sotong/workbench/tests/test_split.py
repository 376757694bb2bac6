"""The center splits a message that triage wrongly joined to a case into a case of its own,
from the case page (or the API); nobody else can, and another unit's case stays hidden."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from sotong.cases.models import AuditEvent, Case, CaseMessage
from sotong.conftest import client_for
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.services import triage_messages

_ids = itertools.count(1)

STREETLIGHT = "종로구 창신동 골목 보안등이 꺼졌어요 고쳐주세요"


@pytest.fixture
def linked(people) -> tuple[Case, Message, Message]:
    """A case opened by one message and joined by a copy of it."""
    messages = ingest_batch(
        [
            NormalizedMessage(channel="x", external_id=f"split-{next(_ids)}", text=text)
            for text in (STREETLIGHT, f"RT {STREETLIGHT}")
        ]
    )
    triage_messages([m.pk for m in messages])
    case = Case.objects.get()
    assert case.unit.code == "district-jongno"
    opened = CaseMessage.objects.get(case=case, role=CaseMessage.Role.OPENED).message
    joined = CaseMessage.objects.get(case=case, role=CaseMessage.Role.JOINED).message
    return case, opened, joined


def split_forms(html: str, case: Case) -> list[int]:
    """The message ids the page offers to split, one form each."""
    action = re.escape(f'action="/work/cases/{case.pk}/split/"')
    return [
        int(m.group(1))
        for m in re.finditer(action + r'.*?name="message" value="(\d+)"', html, re.S)
    ]


def test_split_button_only_for_joined_messages_and_for_the_center(people, linked):
    case, opened, joined = linked
    center_page = client_for(people["center"]).get(f"/work/cases/{case.pk}/").content.decode()
    assert STREETLIGHT in center_page and f"RT {STREETLIGHT}" in center_page  # both listed
    assert split_forms(center_page, case) == [joined.pk]
    assert "별도 민원으로 분리" in center_page
    # The unit's own officer sees the messages but may not split.
    unit_page = client_for(people["jongno"]).get(f"/work/cases/{case.pk}/").content.decode()
    assert f"RT {STREETLIGHT}" in unit_page
    assert split_forms(unit_page, case) == [] and "별도 민원으로 분리" not in unit_page


def test_center_splits_from_the_case_page(people, linked):
    case, opened, joined = linked
    center = client_for(people["center"])
    response = center.post(f"/work/cases/{case.pk}/split/", {"message": str(joined.pk)})
    assert response.status_code == 302 and response["Location"] == f"/work/cases/{case.pk}/"
    new = Case.objects.exclude(pk=case.pk).get()
    assert list(CaseMessage.objects.filter(case=new).values_list("message", "role")) == [
        (joined.pk, "opened")
    ]
    assert list(CaseMessage.objects.filter(case=case).values_list("message", flat=True)) == [
        opened.pk
    ]
    assert new.unit == case.unit and new.category == case.category
    assert AuditEvent.objects.filter(case=case, action="split", actor=people["center"]).exists()
    page = center.get(response["Location"]).content.decode()
    assert new.number in page  # the flash names the new case
    assert f"RT {STREETLIGHT}" not in page and split_forms(page, case) == []


def test_the_message_that_opened_the_case_cannot_be_split(people, linked):
    case, opened, joined = linked
    response = client_for(people["center"]).post(
        f"/work/cases/{case.pk}/split/", {"message": str(opened.pk)}
    )
    assert response.status_code == 400
    assert Case.objects.count() == 1 and CaseMessage.objects.filter(case=case).count() == 2


def test_officer_of_the_unit_is_refused(people, linked):
    case, opened, joined = linked
    response = client_for(people["jongno"]).post(
        f"/work/cases/{case.pk}/split/", {"message": str(joined.pk)}
    )
    assert response.status_code == 403
    assert Case.objects.count() == 1 and CaseMessage.objects.get(message=joined).case == case


def test_officer_of_another_unit_gets_404_and_nothing_changes(people, linked):
    case, opened, joined = linked
    events = AuditEvent.objects.count()
    mapo = client_for(people["mapo"])
    response = mapo.post(f"/work/cases/{case.pk}/split/", {"message": str(joined.pk)})
    assert response.status_code == 404
    api = mapo.post(
        f"/api/v1/cases/{case.pk}/split",
        json.dumps({"message": joined.pk}),
        content_type="application/json",
    )
    assert api.status_code == 404
    assert Case.objects.count() == 1 and CaseMessage.objects.get(message=joined).case == case
    assert AuditEvent.objects.count() == events


def test_a_message_of_another_case_is_not_found(people, linked):
    case, opened, joined = linked
    [other] = ingest_batch(
        [
            NormalizedMessage(
                channel="x", external_id="split-other", text="마포구 불법주차 단속해주세요"
            )
        ]
    )
    triage_messages([other.pk])
    response = client_for(people["center"]).post(
        f"/work/cases/{case.pk}/split/", {"message": str(other.pk)}
    )
    assert response.status_code == 404
    assert CaseMessage.objects.get(message=joined).case == case


def test_center_splits_through_the_api(people, linked):
    case, opened, joined = linked
    response = client_for(people["center"]).post(
        f"/api/v1/cases/{case.pk}/split",
        json.dumps({"message": joined.pk}),
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    new = Case.objects.exclude(pk=case.pk).get()
    assert body["split_into"] == {"id": new.pk, "number": new.number}
    assert [m["id"] for m in body["messages"]] == [opened.pk]
    assert CaseMessage.objects.get(message=joined).case == new
