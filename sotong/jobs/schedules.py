"""The periodic jobs every deployment runs, registered with django-q2's scheduler."""

from __future__ import annotations

from django_q.models import Schedule

PERIODIC = {
    # Safety net for messages whose triage job was lost (broker down, worker killed).
    "sotong.triage.services.triage_backlog": 1,
    # Reminders and escalations.
    "sotong.cases.jobs.sweep": 1,
    # Fetch the polled accounts (e-mail …) that are due; each poll is a job of its own.
    "sotong.channels.polling.poll_due": 1,
    # Published answers' replies: send those due, recover sends a crash left half done.
    "sotong.channels.outbox.sweep_outbox": 1,
    # Receipts whose job was lost (accounts with receipts on).
    "sotong.channels.receipts.sweep_receipts": 1,
    # Call-center imports whose job was lost.
    "sotong.inbox.imports.resume_imports": 5,
    # Learn from the day's answers and corrections; promoted only if not worse.
    "sotong.triage.training.nightly_retrain": 24 * 60,
}


def ensure_schedules() -> None:
    """Create or update the schedules; safe to run on every worker start."""
    for func, minutes in PERIODIC.items():
        Schedule.objects.update_or_create(
            name=func,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
