"""Operator actions on the cache, audited. The admin page, the staff API and the management
commands all call these, so each action behaves and is recorded the same way everywhere."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from . import cache
from .models import CacheAction


@dataclass(frozen=True)
class Actor:
    """Who acts and from where, for the audit trail."""

    source: str
    user: AbstractBaseUser | AnonymousUser | None = None
    remote_addr: str | None = None


def _record(
    actor: Actor,
    kind: str,
    *,
    target: str = "",
    dry_run: bool = False,
    keys: int | None = None,
    message: str = "",
    succeeded: bool = True,
) -> CacheAction:
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    return CacheAction.objects.create(
        user=user,
        source=actor.source,
        kind=kind,
        target=target[:255],
        dry_run=dry_run,
        keys_affected=keys,
        remote_addr=actor.remote_addr or None,
        succeeded=succeeded,
        message=message[:500],
    )


def live_key_count() -> int | None:
    """How many keys this service has in the cache now (None when the cache cannot tell)."""
    counts = cache.api.key_counts()
    return None if counts is None else sum(counts.values())


def cache_clear(*, actor: Actor) -> int | None:
    """Remove this service's keys; returns how many there were (None if it cannot tell)."""
    keys = live_key_count()
    cache.clear()
    _record(actor, CacheAction.Kind.CLEAR, keys=keys, message="Cleared this service's keys.")
    return keys


def cache_invalidate_pattern(*, actor: Actor, pattern: str, dry_run: bool = False) -> int:
    """Delete (or with ``dry_run`` count) the keys matching ``pattern``.

    Raises ``cache.InvalidPattern`` for a pattern that is empty, too broad, too long or
    malformed; nothing is recorded then, since nothing was done.
    """
    pattern = cache.validate_pattern(pattern)
    count = cache.invalidate_pattern(pattern, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    _record(
        actor,
        CacheAction.Kind.INVALIDATE_PATTERN,
        target=pattern,
        dry_run=dry_run,
        keys=count,
        message=f"Pattern {pattern!r} {verb} {count} key(s).",
    )
    return count


def cache_invalidate_namespace(*, actor: Actor, namespace: str) -> int | None:
    """Bump a namespace's generation (O(1)); raises ``cache.UnknownNamespace``."""
    namespace = cache.validate_namespace(namespace)
    generation = cache.invalidate(namespace)[namespace]
    succeeded = generation is not None
    _record(
        actor,
        CacheAction.Kind.INVALIDATE_NAMESPACE,
        target=namespace,
        succeeded=succeeded,
        message=(
            f"Namespace {namespace!r} invalidated."
            if succeeded
            else f"The cache was unreachable; namespace {namespace!r} was not invalidated."
        ),
    )
    return generation


def sweep_bound() -> float:
    """Seconds within which every server process applies a change counted in the database."""
    return 2 * float(getattr(settings, "CACHE_SWEEP_INTERVAL", 0.5))


def cache_invalidate_namespace_through_database(*, actor: Actor, namespace: str) -> None:
    """Count a change of ``namespace`` in the database, as its triggers count writes: every
    server process bumps its generation with its next sweep. For a process that cannot reach
    the servers' cache (a command, when the cache lives in the server's memory)."""
    namespace = cache.validate_namespace(namespace)
    cache.changes.count(namespace)
    _record(
        actor,
        CacheAction.Kind.INVALIDATE_NAMESPACE,
        target=namespace,
        message=(
            f"Recorded in the database for namespace {namespace!r}: the server processes apply "
            f"it within {sweep_bound():g} s."
        ),
    )


def cache_warm(*, actor: Actor) -> dict[str, int]:
    """Fill the common responses; returns how many entries each namespace received."""
    filled = cache.warm()
    total = sum(filled.values())
    _record(
        actor,
        CacheAction.Kind.WARM,
        keys=total,
        message=", ".join(f"{ns}: {n}" for ns, n in sorted(filled.items())) or "nothing to warm",
    )
    return filled


def cache_reset_stats(*, actor: Actor) -> None:
    """Zero the statistics (fleet-wide on Redis)."""
    cache.reset_stats()
    _record(actor, CacheAction.Kind.RESET_STATS, message="Statistics reset.")


def recent_actions(*, limit: int = 20) -> list[CacheAction]:
    return list(CacheAction.objects.select_related("user")[:limit])
