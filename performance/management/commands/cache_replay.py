from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from performance.cache import sync

from ._base import CacheCommand


class Command(CacheCommand):
    help = (
        "Apply to the cache every change the database has counted and the cache has not taken "
        "in yet (an outage, a process killed between a write's commit and its bump). Server "
        "processes do this every CACHE_SWEEP_INTERVAL seconds."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.refuse_without_the_servers_cache("apply changes to the cache")
        late = sync.behind()
        if not sync.sync():
            raise CommandError(
                f"The cache is unreachable: {len(late)} namespace(s) still behind the database."
            )
        names = ", ".join(sorted(late)) or "none"
        self.stdout.write(
            self.style.SUCCESS(
                f"Applied the database's changes. Namespaces that were behind: {names}."
            )
        )
