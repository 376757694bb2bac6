"""A post the citizen deleted on the platform (a withdrawal) leaves every public output: the
case list and case page show a notice instead of an opening message's text and leave a
joined message out, whether the deletion came after the message or before it; the city's
answer stays, and officers still read the text, marked as deleted."""

from __future__ import annotations

import pytest
from django.test import Client

from sotong.cases import services
from sotong.cases.models import Case
from sotong.channels.connectors.base import Withdrawal
from sotong.channels.services import record_withdrawals
from sotong.conftest import client_for
from sotong.directory.models import Channel
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.services import triage_messages

OPENING = "종로구 창신동 보안등이 꺼졌어요 고쳐주세요"
JOINED = "저도 봤어요 종로구 창신동 골목 보안등 고장"
ANSWER = (
    "소중한 의견 감사합니다. 말씀하신 보안등 고장에 대하여 교체하였습니다. "
    "문의는 종로구청(02-2148-1114)으로 연락 주십시오."
)
DELETED_NOTICE = "시민이 삭제한 글입니다"
DELETED_BADGE = "플랫폼에서 삭제됨"


def withdraw(*external_ids: str) -> None:
    record_withdrawals(Channel.objects.get(code="x"), [Withdrawal(e) for e in external_ids])


def published_case(people, *, joined: bool = False) -> Case:
    """A case opened by message `open-1` (with `join-1` joined to it if asked), answered
    and published."""
    items = [NormalizedMessage(channel="x", external_id="open-1", text=OPENING)]
    if joined:
        items.append(NormalizedMessage(channel="x", external_id="join-1", text=JOINED))
    opening, *rest = ingest_batch(items)
    triage_messages([opening.pk])
    case = Case.objects.get()
    if rest:
        services.join_cases([(rest[0], case)])
    services.draft_answer(case, ANSWER, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"], override_reason="테스트")
    return case


def public_pages(case: Case) -> tuple[str, str]:
    client = Client()
    return (
        client.get("/").content.decode(),
        client.get(f"/cases/{case.number}/").content.decode(),
    )


def test_withdrawn_opening_message_is_replaced_publicly_but_officers_still_read_it(people):
    case = published_case(people)
    listing, page = public_pages(case)
    assert OPENING in listing and OPENING in page and DELETED_NOTICE not in page

    withdraw("open-1")

    assert Message.objects.get(external_id="open-1").withdrawn_at is not None
    listing, page = public_pages(case)
    for html in (listing, page):
        assert case.number in html
        assert OPENING not in html and "창신동" not in html
        assert DELETED_NOTICE in html
    assert "보안등 고장에 대하여 교체하였습니다" in page  # the city's answer stays

    officer_page = client_for(people["jongno"]).get(f"/work/cases/{case.pk}/").content.decode()
    assert OPENING in officer_page and DELETED_BADGE in officer_page


def test_withdrawn_joined_message_is_left_out_of_the_public_page(people):
    case = published_case(people, joined=True)
    assert JOINED in public_pages(case)[1]

    withdraw("join-1")

    listing, page = public_pages(case)
    assert JOINED not in page and DELETED_NOTICE not in page
    assert OPENING in page and OPENING in listing
    officer_page = client_for(people["jongno"]).get(f"/work/cases/{case.pk}/").content.decode()
    assert JOINED in officer_page and officer_page.count(DELETED_BADGE) == 1


def test_withdrawal_before_the_message_stores_it_withdrawn_and_never_shows_it(people):
    withdraw("open-1")
    case = published_case(people)

    assert Message.objects.get(external_id="open-1").withdrawn_at is not None
    for html in public_pages(case):
        assert OPENING not in html and DELETED_NOTICE in html


def test_english_notice(people):
    case = published_case(people)
    withdraw("open-1")
    client = Client()
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    html = client.get(f"/cases/{case.number}/").content.decode()
    assert "Deleted by its author" in html and OPENING not in html


@pytest.mark.parametrize("path", ["/api/v1/cases/{pk}"])
def test_officers_api_marks_the_withdrawn_message(people, path):
    case = published_case(people)
    withdraw("open-1")
    body = client_for(people["jongno"]).get(path.format(pk=case.pk)).json()
    [message] = body["messages"]
    assert message["text"] == OPENING and message["withdrawn_at"]
