from django.core.management.base import BaseCommand, CommandError

from sotong.directory.models import Channel
from sotong.inbox.services import create_connector_token


class Command(BaseCommand):
    help = "Create a connector token for POST /api/v1/messages; the token is printed once."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--channel", help="limit the token to this channel code")

    def handle(self, *args, name: str, channel: str | None, **options):
        limit = None
        if channel:
            limit = Channel.objects.filter(code=channel).first()
            if limit is None:
                raise CommandError(f"no channel '{channel}'")
        _, plain = create_connector_token(name, limit)
        self.stdout.write(plain)
