from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from performance import services

from ._base import CacheCommand


class Command(CacheCommand):
    help = "Remove this service's cache keys (other applications' keys are never touched)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Never prompt: without --yes, refuse instead of asking.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.refuse_without_the_servers_cache("clear the cache")
        if not options["yes"]:
            if not options["interactive"] or not self.stdin_isatty():
                raise CommandError("Refusing to clear without confirmation: pass --yes.")
            answer = input("Remove every key of this service from the cache? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("Cancelled; nothing was cleared.")
        keys = services.cache_clear(actor=self.actor())
        count = "its" if keys is None else f"{keys}"
        self.stdout.write(self.style.SUCCESS(f"Cleared the cache: removed {count} key(s)."))

    @staticmethod
    def stdin_isatty() -> bool:
        import sys

        return sys.stdin.isatty()
