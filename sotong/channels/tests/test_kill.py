"""Kill test: a worker killed with SIGKILL while sending loses no reply and posts none twice.

A real worker (`sotong worker`, the django-q2 cluster, in its own process group) sends
answers through the real Mastodon connector (Mastodon.py) over HTTP to a local
Mastodon-like server (sotong/channels/testing.py) that keeps statuses and honours the
Idempotency-Key. The server is made to hang at the moment that matters; the worker is
killed with SIGKILL there; then the outbox's sweep, once the send is stale, recovers.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from sotong.cases import services
from sotong.cases.models import Case
from sotong.cases.services import CaseOpening, open_cases
from sotong.channels import outbox
from sotong.channels.connectors.registry import connectors
from sotong.channels.credentials import set_account_setting
from sotong.channels.models import ReplyDelivery, ReplyState
from sotong.channels.testing import StubState, stub_mastodon
from sotong.directory.models import Account, CaseType, Unit
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[3]
HANDLE = "@seoul@mastodon.example"
ANSWER = (
    "소중한 의견을 주셔서 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 "
    "확인하였으며, 2026년 11월 27일까지 보안등을 교체할 예정입니다. 기타 문의사항은 "
    "종로구청 건설관리과(☎02-2148-1234)로 연락주시면 성심껏 답변드리겠습니다."
)
_ids = itertools.count(1)


@pytest.fixture
def platform(settings, people) -> Iterator[tuple[str, StubState]]:
    settings.SOTONG_CONNECTORS = ["sotong.channels.connectors.mastodon.MastodonConnector"]
    settings.SOTONG_LOCAL_OUTBOX = False
    connectors.cache_clear()
    with stub_mastodon() as (url, state):
        account = Account.objects.get(channel__code="mastodon", handle=HANDLE)
        set_account_setting(account, "api_base_url", url)
        set_account_setting(account, "access_token", "kill-test-token")
        set_account_setting(account, "acct", "seoul@mastodon.example")
        yield url, state
    connectors.cache_clear()


def published(people, count: int = 1) -> list[ReplyDelivery]:
    """Cases opened by Mastodon mentions, answered and published; their deliveries made,
    their send jobs queued (for the worker), nothing sent yet."""
    deliveries = []
    for _ in range(count):
        n = next(_ids)
        [message] = ingest_batch(
            [
                NormalizedMessage(
                    channel="mastodon",
                    external_id=f"11100000000000{n:04d}",
                    account=HANDLE,
                    author="@citizen@mastodon.example",
                    text=f"창신동 골목 보안등이 꺼졌어요 ({n})",
                    raw={"visibility": "public"},
                )
            ]
        )
        [case] = open_cases(
            [
                CaseOpening(
                    message=message,
                    case_type=CaseType.objects.get(code="request"),
                    category=None,
                    unit=Unit.objects.get(code="district-jongno"),
                    urgent=False,
                )
            ]
        )
        OrmQ.objects.all().delete()  # only the send jobs matter here
        case = Case.objects.get(pk=case.pk)
        services.draft_answer(case, ANSWER, actor=people["jongno"])
        services.publish_answer(case, actor=people["jongno"])
        OrmQ.objects.all().delete()
        delivery = outbox.deliver_answer(case.answers.get().pk)
        assert delivery is not None and delivery.state == ReplyState.PENDING
        deliveries.append(delivery)
    return deliveries


def database_url() -> str:
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    user, host, port = config["USER"] or "postgres", config["HOST"], config["PORT"] or 5432
    return f"postgres://{user}@{host}:{port}/{config['NAME']}"


def start_worker() -> subprocess.Popen[bytes]:
    """The real worker, on the test's database, in a process group of its own."""
    env = dict(
        os.environ,
        SOTONG_DATABASE_URL=database_url(),
        SOTONG_SECRET_KEY=settings.SECRET_KEY,
        SOTONG_CREDENTIALS_KEY=settings.SOTONG_CREDENTIALS_KEY,
        SOTONG_QUEUE="database",
        SOTONG_WORKERS="1",
        SOTONG_JOB_POLL_SECONDS="0.2",
        SOTONG_LOCAL_OUTBOX="0",
        SOTONG_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "sotong.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)


def queue_sends(deliveries: list[ReplyDelivery]) -> None:
    from sotong.jobs.queue import enqueue

    for delivery in deliveries:
        enqueue(outbox.SEND_JOB, delivery.pk)


def recover(monkeypatch) -> None:
    """Later, when the killed send is stale: the outbox's sweep, as the next worker runs it."""
    moment = timezone.now() + outbox.STALE_SENDING + timedelta(minutes=1)
    monkeypatch.setattr(timezone, "now", lambda: moment)
    outbox.sweep_outbox()


def assert_once_each(deliveries: list[ReplyDelivery], state: StubState) -> None:
    in_reply_to = sorted(str(p.params.get("in_reply_to_id")) for p in state.posted)
    assert in_reply_to == sorted(d.message.external_id for d in deliveries)  # once each
    for delivery in deliveries:
        delivery.refresh_from_db()
        assert delivery.state == ReplyState.SENT
        [posted] = [
            p
            for p in state.posted
            if str(p.params.get("in_reply_to_id")) == delivery.message.external_id
        ]
        assert delivery.platform_reply_id == posted.id
        assert posted.headers.get("Idempotency-Key") == delivery.idempotency_key


@pytest.mark.parametrize("context_visible", [True, False], ids=["found", "idempotency-key"])
def test_killed_after_the_platform_took_the_reply(platform, people, monkeypatch, context_visible):
    """The platform stored the reply; the worker died before reading the answer. Found on
    the platform afterwards (or, where the platform cannot tell, sent again with the same
    Idempotency-Key, which the platform answers with the first status)."""
    _, state = platform
    state.hide_context = not context_visible
    [delivery] = published(people)
    state.hang_on = {1}  # the first POST is taken and never answered
    queue_sends([delivery])
    worker = start_worker()
    try:
        wait_for(lambda: state.requests >= 1, "the worker's POST")
    finally:
        kill(worker)
    delivery.refresh_from_db()
    assert delivery.state == ReplyState.SENDING  # left by the killed worker
    assert len(state.posted) == 1

    recover(monkeypatch)
    assert_once_each([delivery], state)
    assert state.requests == (1 if context_visible else 2)


def test_killed_before_the_platform_stored_anything(platform, people, monkeypatch):
    """The worker died while its request was in flight and the platform committed nothing:
    the reply is not lost, it is sent by the recovery, once."""
    _, state = platform
    [delivery] = published(people)
    state.drop = 1
    queue_sends([delivery])
    worker = start_worker()
    try:
        wait_for(lambda: state.requests >= 1, "the worker's POST")
    finally:
        kill(worker)
    state.release.set()  # the platform gives up on the dead connection, storing nothing
    assert state.posted == []
    delivery.refresh_from_db()
    assert delivery.state == ReplyState.SENDING

    recover(monkeypatch)
    assert_once_each([delivery], state)


def test_killed_in_the_middle_of_a_run_of_sends(platform, people, monkeypatch):
    """Five answers queued; the worker is killed while sending the third. The first two
    were sent, the third is recovered, the last two are sent: each exactly once."""
    _, state = platform
    deliveries = published(people, 5)
    queue_sends(deliveries)
    state.hang_on = {3}  # the third POST is taken and never answered
    worker = start_worker()
    try:
        wait_for(lambda: state.requests >= 3, "the third POST")
    finally:
        kill(worker)
    assert ReplyDelivery.objects.filter(state=ReplyState.SENT).count() == 2

    recover(monkeypatch)
    assert_once_each(deliveries, state)
