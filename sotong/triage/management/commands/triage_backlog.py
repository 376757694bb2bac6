from django.core.management.base import BaseCommand

from sotong.triage.services import triage_backlog


class Command(BaseCommand):
    help = "Triage every message still waiting for triage (normally the worker does this)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, default=0.0, help="seconds")

    def handle(self, *args, older_than: float, **options):
        self.stdout.write(f"Triaged {triage_backlog(older_than_seconds=older_than)} messages")
