"""Durable invalidations: no invalidation missed during a cache outage survives it.

``invalidate_on_commit`` writes one ``PendingInvalidation`` row per namespace inside the
caller's transaction, then bumps the generations on commit and deletes the rows. A bump that
cannot reach the cache leaves its row behind; ``replay()`` applies what is left. It runs:

- from a background sweeper thread in each server process, about once a second (off the request
  path, so warm hits still run no SQL);
- in a process whose circuit breaker opened, before it reads from the cache again;
- from ``manage.py cache_replay``.

Bumping twice is harmless (an extra miss), so replay needs no coordination between processes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from django.core.cache import caches
from django.db import DatabaseError, transaction

from .generations import bump_generation

logger = logging.getLogger(__name__)


def _model():
    from performance.models import PendingInvalidation

    return PendingInvalidation


def _apply(ids_by_namespace: dict[str, list[int]]) -> tuple[int, int]:
    """Bump each namespace; delete the rows of those that went through.

    Returns (rows applied, namespaces that could not be bumped).
    """
    applied: list[int] = []
    failed = 0
    for namespace, ids in ids_by_namespace.items():
        if bump_generation(namespace) is not None:
            applied.extend(ids)
        else:
            failed += 1
    if failed:
        # This process may hold entries the missed bump should have hidden: it reads nothing
        # from the cache until a replay has gone through.
        missed = getattr(caches["default"], "invalidation_missed", None)
        if missed is not None:
            missed()
    if applied:
        try:
            _model().objects.filter(pk__in=applied).delete()
        except DatabaseError:
            logger.warning("could not delete applied invalidations", exc_info=True)
    return len(applied), failed


def invalidate_on_commit(namespaces: Iterable[str]) -> None:
    """Record the invalidations with the current write; apply them once it commits."""
    names = list(dict.fromkeys(namespaces))
    rows = _model().objects.bulk_create([_model()(namespace=ns) for ns in names])
    ids_by_namespace: dict[str, list[int]] = {}
    for row in rows:
        ids_by_namespace.setdefault(row.namespace, []).append(row.pk)
    if any(row.pk is None for row in rows):  # a backend that does not return ids
        ids_by_namespace = {}
    transaction.on_commit(lambda: _apply(ids_by_namespace) if ids_by_namespace else replay())


def pending() -> int:
    return _model().objects.count()


def replay(limit: int = 10_000) -> int:
    """Apply every invalidation left behind; returns how many rows were applied."""
    return _replay(limit)[0]


def replay_all(limit: int = 10_000) -> bool:
    """Replay; True when nothing that was pending is left unapplied."""
    _, failed, complete = _replay(limit)
    return complete and failed == 0


def _replay(limit: int) -> tuple[int, int, bool]:
    try:
        rows = list(_model().objects.values_list("pk", "namespace")[:limit])
    except DatabaseError:
        logger.warning("could not read pending invalidations", exc_info=True)
        return 0, 0, False
    ids_by_namespace: dict[str, list[int]] = {}
    for pk, namespace in rows:
        ids_by_namespace.setdefault(namespace, []).append(pk)
    applied, failed = _apply(ids_by_namespace)
    if applied:
        logger.info("replayed %d pending invalidation(s)", applied)
    return applied, failed, len(rows) < limit


class Sweeper(threading.Thread):
    """Replays left-behind invalidations about once a second, in the background."""

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__(name="cache-invalidation-sweeper", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.db import connection

        while not self.stopped.wait(self.interval):
            try:
                replay()
            except Exception:
                logger.exception("invalidation sweep failed")
            finally:
                connection.close()

    def stop(self) -> None:
        self.stopped.set()


_sweeper: Sweeper | None = None
_sweeper_lock = threading.Lock()


def start_sweeper(interval: float = 1.0) -> Sweeper:
    """Start this process's sweeper once (gunicorn's post_worker_init calls it)."""
    global _sweeper
    with _sweeper_lock:
        if _sweeper is None or not _sweeper.is_alive():
            _sweeper = Sweeper(interval)
            _sweeper.start()
        return _sweeper
