"""The scaled path: with SOTONG_QUEUE=redis, messages ingested by one process are triaged by
a worker in another, through a real Redis server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
import redis

from sotong.cases.models import Case
from sotong.inbox.models import Message, TriageState
from sotong.jobs.tests.test_worker_kill import ROOT, database_url, kill

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("SOTONG_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def test_ingest_and_worker_through_redis(directory):
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} cannot be reached: {exc}")
    env = {
        **os.environ,
        "SOTONG_DATABASE_URL": database_url(),
        "SOTONG_QUEUE": "redis",
        "SOTONG_REDIS_URL": REDIS_URL,
        "SOTONG_JOB_LOG_LEVEL": "ERROR",
    }
    # A cluster name of its own, so the test's queue is not another run's.
    env["SOTONG_QUEUE_NAME"] = f"sotong-test-{uuid.uuid4().hex[:8]}"
    fed = subprocess.run(
        [sys.executable, "-m", "sotong.cli", "feed-demo", "--limit", "40"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Fed 40" in fed.stdout
    assert Message.objects.filter(triage_state=TriageState.PENDING).count() == 40

    worker = subprocess.Popen(
        [sys.executable, "-m", "sotong.cli", "worker"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while Message.objects.filter(triage_state=TriageState.PENDING).exists():
            assert time.monotonic() < deadline, "the worker did not triage the messages via Redis"
            time.sleep(0.2)
    finally:
        kill(worker)
    assert Case.objects.exists()
