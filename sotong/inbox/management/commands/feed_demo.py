from django.core.management.base import BaseCommand

from sotong.inbox.demo import feed


class Command(BaseCommand):
    help = "Feed the demo stream (demo data written for the project) through ingest."

    def add_arguments(self, parser):
        parser.add_argument(
            "--loop", action="store_true", help="keep feeding, one message per interval"
        )
        parser.add_argument("--interval", type=float, default=8.0, help="seconds between messages")
        parser.add_argument("--limit", type=int, default=None)
        parser.add_argument(
            "--post-to",
            default=None,
            help="the running server's base URL: post demo messages to its webhooks, "
            "signed as the platforms sign them",
        )

    def handle(
        self, *args, loop: bool, interval: float, limit: int | None, post_to: str | None, **options
    ):
        sent = feed(loop=loop, interval=interval if loop else 0, limit=limit, post_to=post_to)
        self.stdout.write(f"Fed {sent} demo messages")
