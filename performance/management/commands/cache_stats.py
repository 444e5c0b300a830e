from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from performance import cache

from ._base import CacheCommand


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


class Command(CacheCommand):
    help = "Show cache statistics per namespace (fleet-wide on Redis, this process on locmem)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.refuse_without_the_servers_cache("read the server's cache statistics")
        stats = cache.stats()
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2, default=str))
            return
        if not stats.get("instrumented"):
            self.stdout.write(f"The cache backend {stats['backend']} is not instrumented.")
            return
        scope = (
            "fleet-wide (every process sharing Redis)"
            if stats["scope"] == "fleet"
            else "this process only (local memory)"
        )
        self.stdout.write(
            f"Backend: {stats['backend']}  prefix: {stats['key_prefix']}  "
            f"default TTL: {stats['default_ttl']}s  figures: {scope}"
        )
        self.stdout.write(f"Since: {stats['reset_at']}")
        responses = stats["responses"]
        self.stdout.write(
            f"Response cache hit rate: {_pct(responses['hit_rate'])} "
            f"({responses['hits']} of {responses['hits'] + responses['misses']} cacheable "
            f"requests answered from the cache; {', '.join(responses['namespaces']) or 'none'})"
        )
        header = (
            f"{'namespace':<16}{'hits':>10}{'misses':>10}{'hit rate':>10}"
            f"{'sets':>8}{'deletes':>9}{'keys':>8}{'ms':>10}  kind"
        )
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for name, row in stats["namespaces"].items():
            keys = row.get("keys")
            self.stdout.write(
                f"{name:<16}{row['hits']:>10}{row['misses']:>10}{_pct(row['hit_rate']):>10}"
                f"{row['sets']:>8}{row['deletes']:>9}{'-' if keys is None else keys:>8}"
                f"{row['time_us'] / 1000:>10.1f}  {row['kind']}"
            )
        self.stdout.write(
            "(responses: hits and misses are responses, one per cacheable request; "
            "bookkeeping and internal: lookups; ms: total time in the backend)"
        )
        if stats.get("unavailable"):
            self.stderr.write(self.style.WARNING("The cache is unreachable: figures are partial."))
