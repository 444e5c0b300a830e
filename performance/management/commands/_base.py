from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from performance import cache, services

#: Where staff act on the cache of a server whose cache lives in its own memory.
WHERE = "the admin's cache page (/admin/performance/cache/) or the staff API (/api/performance/)"


class CacheCommand(BaseCommand):
    """Shared by the cache commands: they act as the shell, and are audited as such."""

    def actor(self) -> services.Actor:
        return services.Actor(source="command")

    def refuse_without_the_servers_cache(self, what: str) -> None:
        """With the local-memory cache (the embedded shape) the cache lives inside the server
        process: this command's process has a cache of its own, which nobody reads. Acting on it
        and reporting success would be a lie, so the command refuses and says where to act."""
        if getattr(cache.backend(), "process_local", False):
            raise CommandError(
                f"Cannot {what} from here: the cache lives in the server process's memory "
                f"(no REDIS_URL), which a command cannot reach. Use {WHERE}."
            )

    def shell_user(self) -> str:
        try:
            return getpass.getuser()
        except Exception:  # no login name in some containers
            return "unknown"
