from django.core.management import call_command
from django.core.management.base import BaseCommand

from sotong.jobs.schedules import ensure_schedules


class Command(BaseCommand):
    help = "Run a background worker (django-q2 cluster): triage, deadline sweeps, e-mail."

    def handle(self, *args, **options):
        ensure_schedules()
        call_command("qcluster")
