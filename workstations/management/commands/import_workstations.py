"""Import workstations from a CSV (or JSON) file: every row valid, or nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from workstations import importing

from ._recorded import RecordedCommand

#: Files longer than this show progress, every this many rows.
PROGRESS_EVERY = 1_000


class Command(RecordedCommand):
    help = (
        "Import workstations from a CSV file with a header row (columns: "
        + ", ".join(importing.COLUMNS)
        + "; only asset_tag and hostname are required; location is a location name and "
        "assigned_to a username). A .json file holds an array of objects with the same keys. "
        "Every row is validated first and every error reported with its line number; if any "
        "row is bad, nothing is imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The CSV (or .json) file to import.")
        parser.add_argument(
            "--format",
            choices=importing.FORMATS,
            help="The file's format (default: from its extension, CSV unless .json).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and report, write nothing.",
        )

    def handle(self, *args: Any, file: Path, dry_run: bool, **options: Any) -> None:
        verbosity = options["verbosity"]
        try:
            table = importing.read_table(file, fmt=options.get("format"))
        except importing.ImportFileError as exc:
            raise CommandError(str(exc)) from None

        show_progress = verbosity >= 1 and len(table.rows) > PROGRESS_EVERY

        def progress(done: int, total: int) -> None:
            if show_progress and (done % PROGRESS_EVERY == 0 or done == total):
                self.stderr.write(f"  validated {done:,}/{total:,} rows")

        report = importing.validate_table(table, progress=progress)
        if report.errors:
            outcome = "nothing imported (dry run)" if dry_run else "nothing imported"
            count = len(report.errors)
            raise CommandError(
                f"{count} error{'s' if count != 1 else ''} in {file}, {outcome}:\n"
                + "\n".join(f"  {error}" for error in report.errors)
            )
        if dry_run:
            if verbosity >= 1:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Dry run: {len(report.workstations):,} rows of {file} are valid; "
                        "nothing written."
                    )
                )
            return
        try:
            created = importing.create_workstations(report)
        except ValidationError as exc:
            # A concurrent writer took a unique value after validation: nothing was written.
            raise CommandError(f"{'; '.join(exc.messages)} Nothing imported.") from None
        if verbosity >= 1:
            self.stdout.write(
                self.style.SUCCESS(f"Imported {len(created):,} workstations from {file}.")
            )
