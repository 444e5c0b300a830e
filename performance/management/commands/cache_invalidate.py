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
                if getattr(cache.backend(), "process_local", False):
                    # The server's cache is out of reach, but the database is not: the change
                    # is counted there, and every server process applies it with its sweep.
                    services.cache_invalidate_namespace_through_database(
                        actor=self.actor(), namespace=namespace
                    )
                    self.stdout.write(
                        self.style.SUCCESS(
                            f"Recorded the invalidation of namespace {namespace!r} in the "
                            "database: every server process applies it within "
                            f"{services.sweep_bound():g} s."
                        )
                    )
                    return
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
            cache.validate_pattern(pattern)  # bad input is said first, wherever the cache is
            self.refuse_without_the_servers_cache("invalidate by pattern")
            count = services.cache_invalidate_pattern(
                actor=self.actor(), pattern=pattern, dry_run=options["dry_run"]
            )
        except (cache.InvalidPattern, cache.UnknownNamespace) as exc:
            raise CommandError(str(exc)) from exc
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {count} key(s) match {pattern!r}; nothing was deleted.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Removed {count} key(s) matching {pattern!r}."))
