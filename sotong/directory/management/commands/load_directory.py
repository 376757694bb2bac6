from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from sotong.directory.loading import DEFAULT_DIRECTORY, DirectoryError, load_directory
from sotong.triage.services import forget_rules


class Command(BaseCommand):
    help = "Load (or reload) the city's directory from its data files (default: Seoul)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--path",
            type=Path,
            default=DEFAULT_DIRECTORY,
            help="folder with units.yaml, case_types.yaml, categories.yaml, channels.yaml",
        )

    def handle(self, *args, path: Path, **options):
        try:
            report = load_directory(path)
        except DirectoryError as exc:
            raise CommandError(str(exc)) from exc
        forget_rules()
        self.stdout.write(f"Loaded {report} from {path}")
