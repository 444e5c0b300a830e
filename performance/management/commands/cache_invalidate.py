from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from performance import cache, services

from ._base import CacheCommand


class Command(CacheCommand):
    help = (
        "Invalidate cache entries: by glob PATTERN over this service's keys "
        "(e.g. 'workstations:*'), or a whole --namespace (a generation bump)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pattern", nargs="?", help="Glob over logical keys.")
        parser.add_argument("--namespace", help="Invalidate every entry of this namespace.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the matching keys, delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        pattern, namespace = options["pattern"], options["namespace"]
        if (pattern is None) == (namespace is None):
            raise CommandError("Give either a PATTERN or --namespace NAME.")
        try:
            if namespace is not None:
                if options["dry_run"]:
                    raise CommandError("--dry-run applies to patterns only.")
                generation = services.cache_invalidate_namespace(
                    actor=self.actor(), namespace=namespace
                )
                if generation is None:
                    raise CommandError("The cache is unreachable; nothing was invalidated.")
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Invalidated namespace {namespace!r} (generation {generation})."
                    )
                )
                return
            count = services.cache_invalidate_pattern(
                actor=self.actor(), pattern=pattern, dry_run=options["dry_run"]
            )
        except (cache.InvalidPattern, cache.UnknownNamespace) as exc:
            raise CommandError(str(exc)) from exc
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {count} key(s) match {pattern!r}; nothing was deleted.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Removed {count} key(s) matching {pattern!r}."))
