from django.core.management.base import BaseCommand

from sotong.cases.jobs import sweep


class Command(BaseCommand):
    help = "Send reminders before deadlines and escalate overdue cases (normally the worker does this)."

    def handle(self, *args, **options):
        self.stdout.write(sweep())
