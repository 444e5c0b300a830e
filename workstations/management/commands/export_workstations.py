"""Export every workstation as CSV or JSON, in the format import_workstations reads."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workstations import importing
from workstations.selectors import workstation_list

CHUNK_SIZE = 2_000


class _Stdout:
    """Lets the writers stream into ``self.stdout`` without it adding line endings."""

    def __init__(self, command: BaseCommand) -> None:
        self.command = command

    def write(self, text: str) -> int:
        self.command.stdout.write(text, ending="")
        return len(text)


class Command(BaseCommand):
    help = (
        "Write every workstation as CSV (default) or JSON, to stdout or --output. Locations are "
        "written by name and assignees by username, so the file imports into another database "
        "with import_workstations."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=importing.FORMATS, default="csv")
        parser.add_argument(
            "--output", "-o", type=Path, help="Write to this file instead of stdout."
        )

    def handle(self, *args: Any, output: Path | None, **options: Any) -> None:
        write = importing.WRITERS[options["format"]]
        # select_related in the selector: a constant number of queries, streamed in chunks.
        workstations = workstation_list().iterator(chunk_size=CHUNK_SIZE)
        if output is None:
            try:
                write(_Stdout(self), workstations)
            except BrokenPipeError:
                # The reader went away (`| head`): stop quietly, as Unix tools do, and keep
                # Python from failing again when it flushes stdout at exit.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
        try:
            with output.open("w", encoding="utf-8", newline="") as stream:
                count = write(stream, workstations)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}.") from None
        if options["verbosity"] >= 1:
            self.stdout.write(self.style.SUCCESS(f"Exported {count:,} workstations to {output}."))
