"""`sotong rebuild-portal`: recompute the public read model (every public case row and the
overview's counters) from the cases and messages. The running system keeps both up to date
by itself; run this after restoring a backup, importing cases or upgrading."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from sotong.cases.models import Case
from sotong.portal.projection import rebuild


class Command(BaseCommand):
    help = "Recompute the public cases and the overview's counters from scratch."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch", type=int, default=2000, help="cases read at a time")
        parser.add_argument(
            "--if-needed",
            action="store_true",
            help="only when some case has no public row (a database from before the portal)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_needed"] and not Case.objects.filter(public__isnull=True).exists():
            return
        cases, counters = rebuild(batch=options["batch"], progress=options["verbosity"] > 1)
        self.stdout.write(f"rebuilt {cases} public cases and {counters} counters")
