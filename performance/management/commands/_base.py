from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand

from performance import services


class CacheCommand(BaseCommand):
    """Shared by the cache commands: they act as the shell, and are audited as such."""

    def actor(self) -> services.Actor:
        return services.Actor(source="command")

    def shell_user(self) -> str:
        try:
            return getpass.getuser()
        except Exception:  # no login name in some containers
            return "unknown"
