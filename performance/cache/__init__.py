"""The one place that talks to Django's cache framework.

Everything else in the service calls these functions; ruff's banned-api rule keeps
``django.core.cache`` out of every other module.
"""

from __future__ import annotations

from django.db import transaction

from .generations import bump_generation, get_generation

__all__ = ["bump_generation", "get_generation", "invalidate", "invalidate_on_commit"]


def invalidate(*namespaces: str) -> None:
    """Bump the generation of each namespace now: O(1) whatever the number of keys."""
    for namespace in dict.fromkeys(namespaces):
        bump_generation(namespace)


def invalidate_on_commit(*namespaces: str) -> None:
    """Invalidate ``namespaces`` once the current transaction commits (now if there is none)."""
    transaction.on_commit(lambda: invalidate(*namespaces))
