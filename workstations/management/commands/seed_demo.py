"""Fill the inventory with realistic, reproducible demo data."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from workstations.selectors import workstation_list

from . import _demo
from ._recorded import RecordedCommand


class Command(RecordedCommand):
    help = (
        "Create demo locations, employees and workstations. The same --seed always gives the "
        "same rows. Refuses to run when workstations exist, unless --append."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--count", type=int, default=300, help="Workstations to create (default: 300)."
        )
        parser.add_argument(
            "--seed", type=int, default=42, help="Random seed; same seed, same data (default: 42)."
        )
        parser.add_argument(
            "--append",
            action="store_true",
            help="Add to existing workstations, numbering after the highest demo asset tag.",
        )

    def handle(self, *args: Any, count: int, seed: int, append: bool, **options: Any) -> None:
        if count < 0:
            raise CommandError("--count must be zero or more.")
        existing = workstation_list().count()
        if existing and not append:
            raise CommandError(
                f"The inventory already holds {existing} workstations; "
                "pass --append to add demo workstations to them."
            )
        verbosity = options["verbosity"]
        show_progress = verbosity >= 1 and count > _demo.BATCH_SIZE

        def progress(done: int, total: int) -> None:
            if show_progress:
                self.stderr.write(f"  {done:,}/{total:,} workstations")

        result = _demo.seed_demo(count=count, seed=seed, progress=progress)
        if verbosity >= 1:
            tags = (
                f" ({result.first_asset_tag} to {result.last_asset_tag})"
                if result.workstations_created
                else ""
            )
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created {result.workstations_created:,} workstations{tags}, "
                    f"{result.locations_created} locations and {result.users_created} users "
                    f"(seed {seed})."
                )
            )
