from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from performance.cache import outbox

from ._base import CacheCommand


class Command(CacheCommand):
    help = (
        "Apply invalidations that could not reach the cache (an outage, or a process killed "
        "between a write's commit and its invalidation). Server processes do this every second."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        before = outbox.pending()
        applied = outbox.replay()
        left = outbox.pending()
        if left and not applied and before:
            raise CommandError(f"The cache is unreachable: {left} invalidation(s) still pending.")
        self.stdout.write(
            self.style.SUCCESS(f"Replayed {applied} pending invalidation(s); {left} left.")
        )
