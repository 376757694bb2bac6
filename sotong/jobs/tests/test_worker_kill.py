"""A real worker (django-q2 cluster in its own processes) killed with SIGKILL in the middle
of triage loses no message and opens no case twice once a worker runs again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from sotong.cases.models import Case, CaseMessage
from sotong.inbox.models import Message, TriageState
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.models import TriageDecision

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
TEXTS = [
    "종로구 창신동 골목 보안등이 꺼져 있어요 고쳐주세요",
    "마포구 합정역 앞 불법주차 단속해주세요",
    "472번 버스 배차간격이 너무 길어요",
    "오늘 영화 너무 재밌었다 ㅋㅋ",
    "강남역 사거리에 싱크홀이 생겼어요 위험해요",
    "우리 동네 좀 어떻게 해주세요",
]


def database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    return f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


def start_worker() -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SOTONG_DATABASE_URL": database_url(),
        "SOTONG_QUEUE": "database",
        "SOTONG_WORKERS": "2",
        "SOTONG_JOB_TIMEOUT_SECONDS": "5",
        "SOTONG_JOB_RETRY_SECONDS": "6",
        "SOTONG_JOB_POLL_SECONDS": "0.1",
        "SOTONG_JOBS_SYNC": "0",
    }
    # Its own session, so that SIGKILL reaches the whole cluster (sentinel, pusher, workers).
    return subprocess.Popen(
        [sys.executable, "-m", "sotong.cli", "worker"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill(worker: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


def pending() -> int:
    return Message.objects.filter(triage_state=TriageState.PENDING).count()


def test_sigkill_mid_batch_loses_nothing_and_doubles_nothing(directory):
    total = 0
    # Many small jobs (one per ingest chunk of 10), so the kill lands between and inside them.
    for chunk in range(120):
        items = [
            NormalizedMessage(
                channel="x",
                external_id=f"kill-{chunk}-{i}",
                text=f"{TEXTS[(chunk + i) % len(TEXTS)]} #{chunk}-{i}",
            )
            for i in range(10)
        ]
        total += len(ingest_batch(items))
    assert total == 1200 and pending() == total

    worker = start_worker()
    try:
        deadline = time.monotonic() + 60
        while pending() == total and time.monotonic() < deadline:
            time.sleep(0.05)
        kill(worker)
    finally:
        if worker.poll() is None:
            kill(worker)
    left = pending()
    assert 0 < left < total, f"the kill should land mid-way ({left} of {total} still pending)"

    worker = start_worker()
    try:
        deadline = time.monotonic() + 120
        while pending() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        kill(worker)

    assert pending() == 0, "every message was triaged after the restart"
    assert TriageDecision.objects.count() == total
    opened = TriageDecision.objects.filter(
        relevant=True, review=TriageDecision.Review.AUTOMATIC
    ).count()
    assert opened > 0
    # Every relevant message belongs to exactly one case (repeated reports join the case of
    # the first), and every case was opened by exactly one message.
    assert CaseMessage.objects.count() == opened
    assert Case.objects.count() == CaseMessage.objects.filter(role="opened").count()
