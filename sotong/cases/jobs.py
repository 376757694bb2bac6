"""Background jobs of the case workflow: the deadline sweep and notification e-mail."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone, translation

from sotong.cases.deadlines import sweep_deadlines
from sotong.cases.models import Notification

log = logging.getLogger(__name__)


def sweep() -> str:
    report = sweep_deadlines()
    return f"reminded {report.reminded}, escalated {report.escalated}"


def email_notifications(case_ids: list[int], kind: str) -> int:
    """E-mail the notices of `kind` for these cases that were not e-mailed yet.

    In-app notices exist regardless; each is marked when its mail went out, so a retried
    job does not mail twice.
    """
    sent = 0
    notices = Notification.objects.filter(
        case_id__in=case_ids, kind=kind, emailed_at__isnull=True
    ).select_related("recipient", "case")
    with translation.override(settings.LANGUAGE_CODE):
        for notice in notices:
            if not notice.recipient.email:
                continue
            # Claim the notice first: of two workers running this job, one sends.
            claimed = Notification.objects.filter(pk=notice.pk, emailed_at__isnull=True).update(
                emailed_at=timezone.now()
            )
            if not claimed:
                continue
            subject = f"[Sotong] {notice.case.number} {notice.get_kind_display()}"
            link = f"{settings.PUBLIC_URL}/work/cases/{notice.case.pk}/"
            try:
                send_mail(subject, f"{subject}\n{link}\n", None, [notice.recipient.email])
            except Exception:
                # Unclaim, so that a retry of the job sends it.
                Notification.objects.filter(pk=notice.pk).update(emailed_at=None)
                raise
            sent += 1
    return sent
