from django.core.management.base import BaseCommand
from django.utils import translation

from sotong.channels.demo import configure_demo_accounts
from sotong.directory.demo import create_demo_people


class Command(BaseCommand):
    help = "Create (or reset) the demo sign-ins and print their passwords."

    def handle(self, *args, **options):
        with translation.override("ko"):
            people = create_demo_people()
        self.stdout.write("Demo sign-ins (demo data; passwords are new on every start):")
        for username, password, role in people:
            self.stdout.write(f"  {username:20} {password:16} {role}")
        written = configure_demo_accounts()
        self.stdout.write(
            f"Demo webhook secrets set on the demo accounts ({written} settings; see README)."
        )
