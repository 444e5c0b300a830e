from __future__ import annotations

from typing import Any

from performance import services

from ._base import CacheCommand


class Command(CacheCommand):
    help = "Fill the cache with the most requested responses (first list pages, summary)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.refuse_without_the_servers_cache("warm the cache")
        filled = services.cache_warm(actor=self.actor())
        for namespace, count in sorted(filled.items()):
            if options["verbosity"] >= 1:
                self.stdout.write(f"  {namespace}: {count} entr{'y' if count == 1 else 'ies'}")
        self.stdout.write(self.style.SUCCESS(f"Warmed {sum(filled.values())} entries."))
