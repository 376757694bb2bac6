"""The demo stream of `make run` moves the public pages: demo cases get published answers."""

from __future__ import annotations

from django.test import Client

from sotong.cases.models import Case
from sotong.directory.demo import create_demo_people
from sotong.inbox.demo import feed
from sotong.jobs.testing import run_queued_jobs


def test_demo_feed_opens_and_answers_cases(directory):
    create_demo_people()
    feed(loop=False, interval=0, limit=30, answer_every=0)
    run_queued_jobs()
    assert Case.objects.count() >= 5
    feed(loop=False, interval=0, limit=6, answer_every=2)
    published = Case.objects.filter(status="published")
    assert published.count() == 3
    page = Client().get("/cases/?state=answered").content.decode()
    for case in published:
        assert case.number in page
        assert "[데모 답변]" in Client().get(f"/cases/{case.number}/").content.decode()
