"""For tests: run the jobs waiting in the database queue in this process, exactly as a
django-q2 worker would unpack and call them."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from django_q.models import OrmQ
from django_q.signing import SignedPackage


def run_queued_jobs() -> int:
    ran = 0
    while True:
        queued = list(OrmQ.objects.order_by("id"))
        if not queued:
            return ran
        for row in queued:
            task = SignedPackage.loads(row.payload)
            module, _, name = task["func"].rpartition(".")
            func: Callable[..., object] = getattr(importlib.import_module(module), name)
            func(*task["args"], **task["kwargs"])
            row.delete()
            ran += 1
