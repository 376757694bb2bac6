"""The Threads connector: Meta-style webhooks on /hooks/threads/<handle>/ (handshake,
X-Hub-Signature-256), the documented replies and mentions notifications turned into
messages on the `threads` channel, and the answer published by the two-step publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
import responses.matchers
from django.test import Client

from sotong.cases import services
from sotong.cases.models import Case
from sotong.channels import outbox
from sotong.channels.connectors.base import (
    AccountConfig,
    OutgoingReply,
    PermanentError,
    RateLimited,
    WebhookRequest,
)
from sotong.channels.connectors.registry import connector_for, connector_for_channel, connectors
from sotong.channels.connectors.threads import ThreadsConnector, threads_length
from sotong.channels.models import (
    DeliveryState,
    PollState,
    ReplyDelivery,
    ReplyState,
    WebhookDelivery,
)
from sotong.channels.polling import poll_account
from sotong.channels.tests import threads_payloads
from sotong.channels.tests.meta_payloads import business_usage, encode, graph_error
from sotong.channels.tests.threads_payloads import (
    ACCESS_TOKEN,
    API,
    APP_SECRET,
    CITY_TEXT,
    HANDLE,
    URL,
    USER_ID,
    VERIFY_TOKEN,
    mention_payload,
    own_post_payload,
    reply_payload,
    threads_sign,
)
from sotong.directory.models import Account
from sotong.inbox.models import Message
from sotong.jobs.testing import run_queued_jobs

threads_account = threads_payloads.threads_account

THREADS = ThreadsConnector()
ACCOUNT = AccountConfig(
    "threads",
    HANDLE,
    {
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "access_token": ACCESS_TOKEN,
        "user_id": USER_ID,
    },
)
ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
    "{unit}(☎{phone})로 연락주시면 성심껏 답변드리겠습니다."
)


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.fixture
def threads_only(settings):
    settings.SOTONG_CONNECTORS = ["sotong.channels.connectors.threads.ThreadsConnector"]
    settings.SOTONG_LOCAL_OUTBOX = False
    connectors.cache_clear()
    yield
    connectors.cache_clear()


def deliver(client: Client, payload=None, *, body: bytes | None = None, signature="sign"):
    body = encode(payload) if body is None else body
    headers: dict[str, Any] = {}
    if signature == "sign":
        headers["HTTP_X_HUB_SIGNATURE_256"] = threads_sign(body)
    elif signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    return client.generic("POST", URL, body, content_type="application/json", **headers)


def request(payload) -> WebhookRequest:
    return WebhookRequest("POST", {}, {}, encode(payload))


def form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def stub_publish(stub, *media_ids: str) -> None:
    """The Threads API's answers to one reply per media id: a container, then the post."""
    for number, media_id in enumerate(media_ids, start=1):
        stub.post(f"{API}/{USER_ID}/threads", json={"id": f"container-{number}"})
        stub.post(f"{API}/{USER_ID}/threads_publish", json={"id": media_id})


def publish(case: Case, people, text: str | None = None) -> Case:
    case = Case.objects.select_related("unit").get(pk=case.pk)
    assert case.unit is not None
    text = text or ANSWER.format(unit=case.unit.name, phone=case.unit.phone)
    services.draft_answer(case, text, actor=people["jongno"])
    services.publish_answer(case, actor=people["jongno"])
    return case


# --- the connector over plain data ---------------------------------------------------------


def test_registered_on_the_threads_channel(threads_only):
    assert isinstance(connector_for("threads"), ThreadsConnector)
    assert connector_for_channel("threads") is connector_for("threads")
    assert {f.name: f.secret for f in THREADS.settings_fields} == {
        "app_secret": True,
        "verify_token": True,
        "access_token": True,
        "user_id": False,
    }
    assert all("(" in f.label for f in THREADS.settings_fields)
    assert "/hooks/threads/" in THREADS.settings_fields[0].help


def test_length_counts_emoji_as_their_utf8_bytes():
    assert threads_length("보안등 고쳐주세요 #서울 123*") == 18
    assert threads_length("😀") == 4
    assert threads_length("👍🏽") == 8  # thumbs up and a skin tone: 4 + 4 bytes
    assert threads_length("☎") == 3
    assert THREADS.reply_limit({}) == 500 and THREADS.max_thread_parts == 3


def test_reply_and_mention_notifications_become_messages():
    (reply,) = THREADS.parse(ACCOUNT, request(reply_payload())).messages
    assert (reply.channel, reply.external_id, reply.account) == (
        "threads",
        "18050000000000001",
        HANDLE,
    )
    assert (reply.author, reply.text) == ("seoul_citizen", CITY_TEXT)
    assert reply.in_reply_to == "18040000000000001"
    assert reply.sent_at == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    assert reply.raw["field"] == "replies"
    (mention,) = THREADS.parse(ACCOUNT, request(mention_payload())).messages
    assert (mention.external_id, mention.author) == ("18060000000000001", "citizen_kim")
    assert mention.in_reply_to == ""


@pytest.mark.parametrize(
    "payload",
    [
        own_post_payload("delete"),
        own_post_payload("publish"),
        reply_payload(username="seoul_official"),  # the city's own reply
        reply_payload(text=""),  # an image alone
        {**reply_payload(), "values": {"field": "likes", "value": {"id": "1"}}},
        {"values": [None, 3, {"field": "replies", "value": "x"}]},
        {"values": {"field": "replies", "value": {"id": ["x"], "text": 5}}},
    ],
)
def test_what_is_not_a_citizens_message_is_ignored(payload):
    parsed = THREADS.parse(ACCOUNT, request(payload))
    assert parsed.messages == [] and parsed.ignored >= 1


# --- webhooks through the real endpoint ----------------------------------------------------


def test_handshake(client, threads_account):
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "77"}
    answer = client.get(URL, query)
    assert (answer.status_code, answer.content) == (200, b"77")
    assert client.get(URL, {**query, "hub.verify_token": "nope"}).status_code == 403


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", threads_sign(b"{}")])
def test_forged_signature_is_refused_and_nothing_stored(client, threads_account, signature):
    assert deliver(client, reply_payload(), signature=signature).status_code == 403
    assert WebhookDelivery.objects.count() == 0


def test_signed_with_the_meta_apps_secret_instead_is_refused(client, threads_account):
    from sotong.channels.tests.meta_payloads import sign

    body = encode(reply_payload())
    assert deliver(client, body=body, signature=sign(body)).status_code == 403


@pytest.mark.parametrize(
    "body", [b"{", b'["values"]', b'{"object": "page"}', "보안등".encode("cp949")]
)
def test_malformed_delivery_is_stored_and_ignored(client, threads_account, body):
    assert deliver(client, body=body).status_code == 200
    run_queued_jobs()
    assert WebhookDelivery.objects.get().state == DeliveryState.IGNORED
    assert Message.objects.count() == 0


def test_unknown_field_is_stored_and_ignored(client, threads_account):
    assert deliver(client, own_post_payload("publish")).status_code == 200
    payload = reply_payload()
    payload["values"]["field"] = "quotes"
    assert deliver(client, payload).status_code == 200
    run_queued_jobs()
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {DeliveryState.IGNORED}
    assert Message.objects.count() == 0


def test_a_delivery_replayed_ten_times_is_one_message(client, threads_account, threads_only):
    for _ in range(10):
        assert deliver(client, reply_payload()).status_code == 200
        assert deliver(client, mention_payload()).status_code == 200
    run_queued_jobs()
    assert sorted(Message.objects.values_list("external_id", flat=True)) == [
        "18050000000000001",
        "18060000000000001",
    ]
    assert WebhookDelivery.objects.count() == 2


def test_script_in_a_reply_is_kept_as_text(client, threads_account, threads_only):
    deliver(client, reply_payload(text="<script>alert(1)</script> 보안등 고쳐주세요"))
    run_queued_jobs()
    assert Message.objects.get().text == "<script>alert(1)</script> 보안등 고쳐주세요"


# --- the answer, end to end ----------------------------------------------------------------


def test_reply_opens_a_case_and_the_answer_is_published_in_two_steps(
    client, threads_account, people, threads_only
):
    assert deliver(client, reply_payload()).status_code == 200
    run_queued_jobs()
    message = Message.objects.select_related("channel").get()
    assert message.channel.code == "threads" and message.account == threads_account
    assert message.author_handle == "seoul_citizen"
    case = message.case_link.case
    assert case.unit.code == "district-jongno"
    publish(case, people)
    with responses.RequestsMock() as stub:
        stub_publish(stub, "18080000000000001")
        run_queued_jobs()
        create, publish_call = stub.calls
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "18080000000000001"
    assert create.request.url == f"{API}/{USER_ID}/threads"
    assert form(create) == {
        "media_type": "TEXT",
        "text": delivery.text,
        "reply_to_id": "18050000000000001",
        "access_token": ACCESS_TOKEN,
    }
    assert publish_call.request.url == f"{API}/{USER_ID}/threads_publish"
    assert form(publish_call) == {"creation_id": "container-1", "access_token": ACCESS_TOKEN}
    assert delivery.text.endswith(outbox.public_case_link(case))
    assert threads_length(delivery.text) <= 500


def test_a_long_answer_is_a_numbered_thread_each_part_replying_to_the_one_before(
    client, threads_account, people, threads_only
):
    deliver(client, reply_payload())
    run_queued_jobs()
    case = Case.objects.select_related("unit").get()
    long = ANSWER.format(unit=case.unit.name, phone=case.unit.phone) + (
        " 공사 기간에는 우회로를 이용해 주시기 바랍니다 🚧." * 30
    )
    publish(case, people, long)
    with responses.RequestsMock() as stub:
        stub_publish(stub, "18080000000000001", "18080000000000002", "18080000000000003")
        run_queued_jobs()
        calls = list(stub.calls)
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.SENT
    assert delivery.platform_reply_id == "18080000000000001"  # the first part
    assert len(delivery.parts) == 3
    creates = [form(c) for c in calls[0::2]]
    publishes = [form(c) for c in calls[1::2]]
    assert [c["reply_to_id"] for c in creates] == [
        "18050000000000001",
        "18080000000000001",
        "18080000000000002",
    ]
    assert [c["text"] for c in creates] == delivery.parts
    assert [p["creation_id"] for p in publishes] == ["container-1", "container-2", "container-3"]
    for number, part in enumerate(delivery.parts, start=1):
        assert part.startswith(f"({number}/3) ")
        assert threads_length(part) <= 500
    assert delivery.parts[-1].endswith(outbox.public_case_link(case))


def test_a_part_failing_after_the_first_is_published_is_not_posted_again(
    client, threads_account, people, threads_only
):
    deliver(client, reply_payload())
    run_queued_jobs()
    case = Case.objects.select_related("unit").get()
    long = ANSWER.format(unit=case.unit.name, phone=case.unit.phone) + (
        " 공사 기간에는 우회로를 이용해 주시기 바랍니다." * 12
    )
    publish(case, people, long)
    with responses.RequestsMock() as stub:
        stub_publish(stub, "18080000000000001")
        stub.post(f"{API}/{USER_ID}/threads", status=500, json=graph_error(2))
        run_queued_jobs()
        assert len(stub.calls) == 3
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.FAILED
    assert len(delivery.parts) == 2
    assert "only 1 of 2 parts were posted (18080000000000001)" in delivery.last_error
    assert "post the rest by hand" in delivery.last_error


def test_expired_token_and_rate_limit(client, threads_account, people, threads_only):
    deliver(client, reply_payload())
    run_queued_jobs()
    case = publish(Case.objects.get(), people)
    with responses.RequestsMock() as stub:
        stub.post(
            f"{API}/{USER_ID}/threads",
            status=400,
            headers={"X-Business-Use-Case-Usage": business_usage(30, USER_ID)},
            json=graph_error(4, None, "Application request limit reached"),
        )
        run_queued_jobs()
    delivery = ReplyDelivery.objects.get(case=case)
    assert delivery.state == ReplyState.PENDING
    wait = delivery.next_attempt_at - datetime.now(UTC)
    assert 29 * 60 < wait.total_seconds() <= 30 * 60
    ReplyDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=datetime.now(UTC))
    with responses.RequestsMock() as stub:
        stub.post(f"{API}/{USER_ID}/threads", status=401, json=graph_error(190))
        outbox.send_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == ReplyState.FAILED
    assert delivery.last_error.startswith("needs re-authorization")


def test_rate_limit_raised_by_the_connector():
    reply = OutgoingReply("18050000000000001", "답변", "k")
    with responses.RequestsMock() as stub:
        stub.post(f"{API}/{USER_ID}/threads", status=400, json=graph_error(613))
        with pytest.raises(RateLimited):
            THREADS.send_reply(ACCOUNT, reply)


def test_missing_user_id_is_a_permanent_error():
    account = AccountConfig("threads", HANDLE, {"access_token": ACCESS_TOKEN})
    with pytest.raises(PermanentError, match="user ID"):
        THREADS.send_reply(account, OutgoingReply("1", "답변", "k"))


@responses.activate
def test_find_sent_finds_our_reply_under_the_citizens_post():
    responses.get(
        f"{API}/18050000000000001/replies",
        json={
            "data": [
                {"id": "1", "text": "답변", "username": "seoul_citizen"},
                {"id": "2", "text": "답변", "username": "seoul_official"},
            ]
        },
    )
    found = THREADS.find_sent(ACCOUNT, OutgoingReply("18050000000000001", "답변", "k"))
    assert found is not None and found.platform_id == "2"
    params = parse_qs(responses.calls[0].request.url.split("?", 1)[1])
    assert params["access_token"] == [ACCESS_TOKEN]
    assert THREADS.find_sent(ACCOUNT, OutgoingReply("18050000000000001", "다른", "k")) is None


# --- mentions by polling, through the real poller ------------------------------------------


# Mentions API (developers.facebook.com/docs/threads/threads-mentions): `GET
# /{user-id}/mentions` returns {"data": [Threads media objects], "paging": {"cursors",
# "next"}}.
def mention_item(media_id: str, username: str, timestamp: str, text: str = CITY_TEXT) -> dict:
    return {
        "id": media_id,
        "text": text,
        "username": username,
        "timestamp": timestamp,
        "permalink": f"https://www.threads.net/@{username}/post/D{media_id[-4:]}",
        "media_type": "TEXT_POST",
    }


def test_mentions_are_polled_from_the_cursor_and_its_pages(threads_account, threads_only):
    assert poll_account(threads_account.pk) == "polled"  # the first poll starts from now
    state = PollState.objects.get(account=threads_account)
    start = int(state.cursor)
    assert abs(start - datetime.now(UTC).timestamp()) < 60
    PollState.objects.filter(pk=state.pk).update(cursor="1795564800", next_poll_at=None)
    following = f"{API}/{USER_ID}/mentions?after=QVFIUk&access_token={ACCESS_TOKEN}"
    with responses.RequestsMock() as stub:
        stub.get(
            f"{API}/{USER_ID}/mentions",
            match=[
                responses.matchers.query_param_matcher(
                    {
                        "fields": "id,text,username,timestamp,permalink,media_type,replied_to,"
                        "root_post",
                        "since": "1795564800",
                        "limit": "100",
                        "access_token": ACCESS_TOKEN,
                    }
                )
            ],
            json={
                "data": [
                    mention_item("18090000000000002", "citizen_lee", "2026-11-25T00:10:00+0000"),
                    mention_item("18090000000000003", "seoul_official", "2026-11-25T00:20:00+0000"),
                ],
                "paging": {"cursors": {"after": "QVFIUk"}, "next": following},
            },
        )
        stub.get(
            following,
            match=[responses.matchers.query_string_matcher(following.split("?", 1)[1])],
            json={
                "data": [
                    mention_item("18090000000000001", "citizen_kim", "2026-11-25T00:05:00+0000")
                ]
            },
        )
        assert poll_account(threads_account.pk) == "polled"
    got = Message.objects.filter(channel__code="threads").order_by("external_id")
    assert [(m.external_id, m.author_handle) for m in got] == [
        ("18090000000000001", "citizen_kim"),
        ("18090000000000002", "citizen_lee"),
    ]
    state.refresh_from_db()
    # The newest seen, the city's own post included (2026-11-25 00:20 UTC).
    assert state.cursor == "1795566000"


def test_polling_needs_a_token_and_a_rate_limit_waits(directory, threads_only):
    account = threads_payloads.configure(
        Account.objects.get(channel__code="threads", handle=HANDLE), token=False
    )
    with responses.RequestsMock() as stub:
        assert poll_account(account.pk) == "not polled"
        assert len(stub.calls) == 0
    threads_payloads.configure(account)
    PollState.objects.filter(account=account).update(cursor="1795564800", next_poll_at=None)
    with responses.RequestsMock() as stub:
        stub.get(f"{API}/{USER_ID}/mentions", status=400, json=graph_error(4))
        assert poll_account(account.pk) == "rate limited"
    state = PollState.objects.get(account=account)
    assert state.cursor == "1795564800"
    assert state.next_poll_at > datetime.now(UTC) + timedelta(minutes=14)
