"""The one way Sotong hands work to the background: `enqueue` after the transaction commits.

Jobs run on django-q2 (the database broker in the embedded mode, Redis when configured).
The queue is only a prompt: the database holds the truth (a message waiting for triage, a
case near its deadline), and periodic sweeps pick up anything whose job was lost.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task

log = logging.getLogger(__name__)


def enqueue(func: str, *args: Any, **kwargs: Any) -> None:
    """Run `func` (a dotted path) in a worker once the current transaction has committed.

    With the database queue the job row is written inside the caller's transaction, so the
    job exists exactly when the work it refers to does (and no extra connection is made).
    With Redis the job is sent after commit, so a worker never sees work not yet committed.
    """
    if settings.SOTONG_QUEUE == "database" and not transaction.get_autocommit():
        async_task(func, *args, **kwargs)
        return

    def send() -> None:
        try:
            async_task(func, *args, **kwargs)
        except Exception:
            # The broker is down: the periodic sweeps will find the work in the database.
            log.exception("could not enqueue %s; the next sweep will pick it up", func)

    transaction.on_commit(send)
