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
#: ``--delimiter`` by name or as the character itself.
DELIMITER_NAMES = {
    **{name: char for char, name in importing.DELIMITERS.items()},
    **{char: char for char in importing.DELIMITERS},
    "\\t": "\t",
}


class Command(RecordedCommand):
    help = (
        "Import workstations from a CSV file with a header row (columns: "
        + ", ".join(importing.COLUMNS)
        + "; only asset_tag and hostname are required; location is a location name and "
        "assigned_to a username). A .json file holds an array of objects with the same keys. "
        "With --update, rows whose asset_tag exists change that workstation and the others are "
        "created. Every row is validated first and every error reported with its line number; "
        "if any row is bad, nothing is imported."
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
            help="Validate and report what would be created and changed; write nothing.",
        )
        parser.add_argument(
            "--update",
            action="store_true",
            help="Update the workstations whose asset_tag exists (only the columns in the "
            "file; an empty cell clears a field that may be empty) and create the others.",
        )
        parser.add_argument(
            "--delimiter",
            choices=sorted(DELIMITER_NAMES),
            metavar="{comma,semicolon,tab}",
            help="The CSV delimiter (default: detected from the header).",
        )
        parser.add_argument(
            "--map",
            dest="mapping",
            default="",
            metavar='"Header=column,..."',
            help='Read columns named otherwise, e.g. --map "Asset Tag=asset_tag,Host=hostname".',
        )
        parser.add_argument(
            "--preset",
            choices=sorted(importing.PRESETS),
            help="Read another product's export: "
            + "; ".join(f"{p.name}: {p.description}" for p in importing.PRESETS.values())
            + " (its columns and status names mapped).",
        )
        parser.add_argument(
            "--ignore-unknown-columns",
            action="store_true",
            help="Leave out columns that name no field (otherwise they are an error).",
        )

    def handle(self, *args: Any, file: Path, dry_run: bool, update: bool, **options: Any) -> None:
        verbosity = options["verbosity"]
        try:
            preset = importing.get_preset(options["preset"])
            read_options = importing.ReadOptions(
                fmt=options.get("format"),
                delimiter=DELIMITER_NAMES.get(options["delimiter"] or ""),
                mapping=importing.parse_mapping(options["mapping"]),
                preset=preset,
                ignore_unknown_columns=options["ignore_unknown_columns"],
            )
            table = importing.read_table(file, options=read_options)
        except importing.ImportFileError as exc:
            raise CommandError(str(exc)) from None
        if table.ignored_columns and verbosity >= 1:
            self.stdout.write(f"Ignored columns: {', '.join(table.ignored_columns)}")

        show_progress = verbosity >= 1 and len(table.rows) > PROGRESS_EVERY

        def progress(done: int, total: int) -> None:
            if show_progress and (done % PROGRESS_EVERY == 0 or done == total):
                self.stderr.write(f"  validated {done:,}/{total:,} rows")

        report = importing.validate_table(
            table,
            update=update,
            update_hint="run the import again with --update",
            preset=preset,
            progress=progress,
        )
        if report.errors:
            outcome = "nothing imported (dry run)" if dry_run else "nothing imported"
            count = len(report.errors)
            raise CommandError(
                f"{count} error{'s' if count != 1 else ''} in {file}, {outcome}:\n"
                + "\n".join(f"  {line}" for line in importing.summarise_errors(report.errors))
            )
        if dry_run:
            if verbosity >= 1:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Dry run: {len(table.rows):,} rows of {file} are valid: "
                        f"{report.summary()}; nothing written."
                    )
                )
                self._write_changes(report, verbosity)
            return
        try:
            result = importing.apply_report(report)
        except ValidationError as exc:
            # A concurrent writer took a unique value after validation: nothing was written.
            raise CommandError(f"{'; '.join(exc.messages)} Nothing imported.") from None
        if verbosity >= 1:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Imported {len(result.created):,} workstations from {file}"
                    + (
                        f"; updated {len(result.updated):,}, {result.unchanged:,} unchanged."
                        if update
                        else "."
                    )
                )
            )
            self._write_changes(report, verbosity)

    def _write_changes(self, report: importing.ValidationReport, verbosity: int) -> None:
        """The changed fields of each updated row; their values from ``-v 2``."""
        for change in report.changes:
            if verbosity >= 2:
                fields = "; ".join(
                    f"{name}: {_show(before)} → {_show(after)}"
                    for name, (before, after) in change.fields.items()
                )
            else:
                fields = ", ".join(change.fields)
            self.stdout.write(f"  {change.where}, {change.workstation.asset_tag}: {fields}")


def _show(value: Any) -> str:
    return (
        "(empty)" if value in (None, "") else repr(value) if isinstance(value, str) else str(value)
    )
