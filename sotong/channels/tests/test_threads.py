"""Threads, not fragments: a citizen's follow-up in the same platform thread joins the case
their first message opened; a reply after the answer was published is shown to the owning
officer, who may reopen the case; someone else's reply is a message of its own."""

from __future__ import annotations

import itertools

import pytest
from django_q.models import OrmQ

from sotong.cases import services
from sotong.cases.models import AuditEvent, Case, CaseMessage, Notification
from sotong.channels.models import ReplyDelivery, ReplyState
from sotong.channels.outbox import deliver_answer
from sotong.conftest import client_for
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.jobs.testing import run_queued_jobs

_ids = itertools.count(1)

FIRST = (
    "시장님, 종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 밤에 너무 어둡습니다. "
    "빨리 고쳐주세요."
)
FOLLOW_UP = "아직도 보안등이 안 켜졌어요. 오늘 밤도 너무 어둡습니다."
ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 확인하였으며, "
    "2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 종로구청 건설관리과"
    "(☎02-2148-1234)로 연락주시면 성심껏 답변드리겠습니다."
)


def tweet(text: str, *, author: str = "@citizen", in_reply_to: str = "") -> NormalizedMessage:
    return NormalizedMessage(
        channel="x",
        external_id=f"17900000000000{next(_ids):05d}",
        account="@seoul_mayor",
        author=author,
        text=text,
        in_reply_to=in_reply_to,
    )


def arrive(*items: NormalizedMessage) -> list[Message]:
    """Ingest in one batch and run the triage jobs, as a webhook delivery would."""
    messages = ingest_batch(list(items))
    run_queued_jobs()
    return messages


def case_of(message: Message) -> Case:
    return CaseMessage.objects.select_related("case").get(message=message).case


def role_of(message: Message) -> str | None:
    link = CaseMessage.objects.filter(message=message).first()
    return link.role if link else None


@pytest.fixture
def opened(people):
    [first] = arrive(tweet(FIRST))
    case = case_of(first)
    assert case.unit.code == "district-jongno"  # triage routed it: the test's premise
    return first, case


def test_follow_up_by_the_same_author_joins_the_open_case(opened):
    first, case = opened
    [follow] = arrive(tweet(FOLLOW_UP, in_reply_to=first.external_id))
    assert case_of(follow) == case
    assert role_of(follow) == CaseMessage.Role.REPLY
    assert Case.objects.count() == 1
    case.refresh_from_db()
    assert case.status == "unit"  # an open case keeps its state
    assert AuditEvent.objects.filter(case=case, note="follow-up in the thread").count() == 1
    assert not Notification.objects.filter(kind=Notification.Kind.REPLY).exists()


def test_a_chain_of_follow_ups_stays_in_the_case(opened):
    first, case = opened
    [second] = arrive(tweet(FOLLOW_UP, in_reply_to=first.external_id))
    [third] = arrive(tweet("사진도 첨부합니다. 전봇대 번호 12-345", in_reply_to=second.external_id))
    assert case_of(third) == case
    assert role_of(third) == CaseMessage.Role.REPLY


def test_first_message_and_follow_up_in_one_delivery(people):
    first_item = tweet(FIRST)
    follow_item = tweet(FOLLOW_UP, in_reply_to=first_item.external_id)
    first, follow = arrive(first_item, follow_item)
    assert case_of(follow) == case_of(first)
    assert role_of(first) == CaseMessage.Role.OPENED
    assert role_of(follow) == CaseMessage.Role.REPLY


def test_someone_elses_reply_is_a_message_of_its_own(opened):
    first, case = opened
    [other] = arrive(
        tweet(
            "저희 동네 보안등도 꺼져 있어요 확인 부탁드립니다",
            author="@neighbour",
            in_reply_to=first.external_id,
        )
    )
    assert role_of(other) != CaseMessage.Role.REPLY


def test_reply_to_a_message_outside_any_case_is_triaged_as_usual(people):
    [lone] = arrive(tweet(FIRST, in_reply_to="1234567890"))
    assert role_of(lone) == CaseMessage.Role.OPENED


def publish(case: Case, people) -> ReplyDelivery:
    OrmQ.objects.all().delete()
    services.assign_officer(case, people["jongno"], actor=people["jongno"])
    services.draft_answer(case, ANSWER, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"])
    delivery = deliver_answer(case.answers.get().pk)
    assert delivery is not None
    OrmQ.objects.all().delete()
    # The reply as the platform took it (the outbox records its id there).
    ReplyDelivery.objects.filter(pk=delivery.pk).update(
        state=ReplyState.SENT, platform_reply_id="1790000000000099999"
    )
    return delivery


def test_reply_after_publication_is_shown_to_the_officer_who_may_reopen(opened, people):
    first, case = opened
    publish(case, people)
    [after] = arrive(tweet("답변 감사한데 아직 안 고쳐졌어요", in_reply_to="1790000000000099999"))
    assert case_of(after) == case
    assert role_of(after) == CaseMessage.Role.REPLY
    case.refresh_from_db()
    assert case.status == "published"  # not reopened by itself
    notice = Notification.objects.get(kind=Notification.Kind.REPLY)
    assert notice.recipient == people["jongno"] and notice.case == case
    page = client_for(people["jongno"]).get(f"/work/cases/{case.pk}/")
    html = page.content.decode()
    assert "아직 안 고쳐졌어요" in html
    assert "/reopen/" in html  # the officer can reopen from the case page
    services.reopen_case(case, reason="시민이 아직 고쳐지지 않았다고 답함", actor=people["jongno"])
    case.refresh_from_db()
    assert case.status != "published"


def test_reply_to_the_citys_answer_by_someone_else_is_not_a_follow_up(opened, people):
    first, case = opened
    publish(case, people)
    [other] = arrive(
        tweet(
            "저도 같은 문제가 있어요 창신동 보안등",
            author="@neighbour",
            in_reply_to="1790000000000099999",
        )
    )
    assert role_of(other) != CaseMessage.Role.REPLY
    assert not Notification.objects.filter(kind=Notification.Kind.REPLY).exists()


def test_follow_up_to_a_merged_case_joins_the_case_it_was_merged_into(opened, people):
    first, case = opened
    [other] = ingest_batch([tweet("세종대로 보도블록이 깨져 있어요", author="@other")])
    OrmQ.objects.all().delete()
    [target] = services.open_cases(
        [
            services.CaseOpening(
                message=other, case_type=case.case_type, category=None, unit=case.unit, urgent=False
            )
        ]
    )
    services.merge_case(case, target, actor=people["center"])
    [follow] = arrive(tweet(FOLLOW_UP, in_reply_to=first.external_id))
    assert case_of(follow) == target


def test_the_citys_own_posts_coming_back_are_not_citizens_messages(opened):
    first, case = opened
    own = arrive(
        tweet(
            "답변드립니다. 보안등을 교체하겠습니다.",
            author="@Seoul_SMC",
            in_reply_to=first.external_id,
        ),
        tweet("서울시 공지입니다", author="seoul_mayor"),
    )
    assert own == []
    assert not Message.objects.filter(author_handle__iexact="@seoul_smc").exists()
