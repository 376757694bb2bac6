"""`sotong import-calls FILE`: import a 120 call-center export (CSV or .xlsx) from the console,
with the same checks, mapping and report as the workbench page (see sotong.inbox.imports)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from sotong.directory.models import Account
from sotong.errors import SotongError
from sotong.inbox import imports
from sotong.inbox.models import ImportBatch


class Command(BaseCommand):
    help = (
        "Import a 120 call-center file (CSV or .xlsx). Columns are recognised by name; "
        "override with --map field=column (fields: " + ", ".join(imports.FIELD_CODES) + ")."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--encoding", choices=list(imports.ENCODINGS), default="auto", help="of a CSV file"
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN",
            help="the column (its name, or its number from 1) that holds a field",
        )
        parser.add_argument("--account", help="handle of the call-center account")
        parser.add_argument(
            "--strict", action="store_true", help="import nothing if any row is rejected"
        )

    def handle(self, *args, file: Path, encoding: str, map: list[str], **options):
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        if len(content) > imports.MAX_FILE_BYTES:
            raise CommandError(f"{file} is larger than {imports.MAX_FILE_BYTES} bytes")
        try:
            batch = imports.upload_import(None, file.name, content, encoding=encoding)
            mapping = dict(batch.mapping)
            for item in map:
                code, _, column = item.partition("=")
                mapping[code.strip()] = self._column(batch, column.strip(), item)
            account = None
            if options["account"]:
                account = Account.objects.filter(
                    channel__code=imports.CALLCENTER, handle=options["account"]
                ).first()
                if account is None:
                    raise CommandError(f"no call-center account '{options['account']}'")
            imports.start_import(
                batch, None, mapping, account=account, strict=options["strict"], queue=False
            )
        except SotongError as exc:
            raise CommandError(exc.message) from None
        with tqdm(total=batch.total_rows, unit="row", disable=None) as bar:
            last = 0

            def progress(done: int) -> None:
                nonlocal last
                bar.update(done - last)
                last = done

            try:
                batch = imports.perform_import(batch, progress=progress)
            except Exception as exc:
                imports.record_failure(batch.pk, exc)
                message = exc.message if isinstance(exc, SotongError) else repr(exc)
                raise CommandError(f"nothing imported: {message}") from exc
        for row in batch.rejected_rows:
            self.stdout.write(f"row {row['row']}\t{row['record_id']}\t{imports.describe(row)}")
        self.stdout.write(
            f"import {batch.pk}: {batch.created_count} new, {batch.already_count} already "
            f"imported, {batch.rejected_count} rejected"
        )
        if batch.status == ImportBatch.Status.FAILED:
            raise CommandError(batch.error)

    @staticmethod
    def _column(batch: ImportBatch, column: str, item: str) -> int:
        if column in batch.headers:
            return batch.headers.index(column)
        if column.isdigit() and 1 <= int(column) <= len(batch.headers):
            return int(column) - 1
        raise CommandError(
            f"--map {item}: no such column; the file has: {', '.join(batch.headers)}"
        )
