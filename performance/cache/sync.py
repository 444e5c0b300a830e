"""Every committed change reaches every cache: the database's versions applied to generations.

The database counts the changes of each namespace (``changes``, by triggers, whoever writes).
Beside each generation the cache keeps the version it last took in. Two paths bring them level
(docs/design.md, "A write"):

- **after a write through the service** (``invalidate_on_commit``), on commit: the versions of
  the write's namespaces are read and their generations bumped, recording those versions — so
  every process serves the write on its very next request;
- **the sweep** (``sync``), in every server process every ``CACHE_SWEEP_INTERVAL`` seconds, in
  the background: every namespace whose recorded version differs from the database's is bumped
  — the writes of other processes (a shell, a command, another application, ``update()``, raw
  SQL), bumps a cache missed (an outage, a killed process, a lost failover), and a cache that
  went back in time (its recorded versions went back with its generations).

A process whose cache missed a bump, or whose Redis changed identity, reads nothing from the
cache until a sweep has gone through (the breaker's replay).

A bump twice is harmless (an extra miss); a version recorded by one process is not bumped again
by the others, so a write costs one bump, not one per process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.cache import caches
from django.db import DatabaseError, transaction

from . import changes
from .generations import (
    AHEAD,
    OBJECTS,
    RESET,
    SYNC,
    WRITE,
    Step,
    advance,
    advance_after_write,
)
from .keys import PURGE_NAMESPACE, applied_key
from .namespaces import namespaces

logger = logging.getLogger(__name__)


def _backend() -> Any:
    return caches["default"]


def invalidate_on_commit(names: Iterable[str]) -> None:
    """Bump ``names`` once the current transaction commits, recording the database's versions."""
    names = list(dict.fromkeys(names))
    transaction.on_commit(lambda: after_commit(names))


def after_commit(names: Iterable[str]) -> dict[str, int | None]:
    """A write's bumps: the namespaces' versions as the database has them now (the write's own
    included), recorded with new generations. A bump that cannot reach the cache leaves the
    version unrecorded, and the sweeps apply it."""
    names = list(names)
    try:
        found: Mapping[str, int | None] = changes.versions(names)
    except DatabaseError:
        logger.warning("could not read the database's versions after a write", exc_info=True)
        found = {}
    bumped = advance_after_write(_steps({name: found.get(name) for name in names}, WRITE))
    if any(generation is None for generation in bumped.values()):
        missed = getattr(_backend(), "invalidation_missed", None)
        if missed is not None:
            missed()
    return bumped


def sync(*, ask_server: bool = True) -> bool:
    """Bring every generation level with the database; True when it went through.

    On Redis, first ask who the server is (``ask_server``): a new identity (a failover, a
    restart) re-seeds every generation, so nothing this process served before can be served
    again under a generation the server hands out anew. A request that replays what an outage
    left behind does not ask: its new connections have asked already (``redis.Fence``), and a
    request should wait for no more round trips than the replay needs.
    """
    cache = _backend()
    changed = getattr(cache, "server_changed", None)
    if ask_server and changed is not None and changed() is None:
        return False  # nothing answers: one failure towards the breaker, not one per step
    state = getattr(cache, "state", None)
    if state is not None and state.reseed:
        if not _reseed():
            return False
        state.reseed = False
    try:
        found = changes.versions()
    except DatabaseError:
        logger.warning("could not read the database's versions", exc_info=True)
        return False
    ahead = _level(found)
    if ahead is None:
        return False
    if ahead and not _settle(ahead):
        return False
    _prune(found)
    return True


def _level(found: Mapping[str, int]) -> list[str] | None:
    """Bump every namespace whose recorded version differs from ``found``'s; the names the
    cache has recorded a newer version of, or ``None`` when the cache could not be reached."""
    if not found:
        return []
    results = advance(_steps(found, SYNC))
    if results is None:
        return None
    return [name for name, result in zip(found, results, strict=True) if result == AHEAD]


def _steps(found: Mapping[str, int | None], mode: str) -> list[Step]:
    """A step of ``mode`` for each namespace, taking in the version ``found`` for it — but for
    a namespace keyed by object whose versions since the one its cache took in each touched a
    few objects (``changes.object_changes``): then an ``OBJECTS`` step, which invalidates those
    objects' responses and the namespace's collections, and leaves the other objects' cached
    (docs/design.md, "Invariants", 6). The cache checks, atomically, that it has still taken in
    that version; otherwise the step is a ``SYNC``, which invalidates the whole namespace."""
    keyed = [
        name
        for name, version in found.items()
        if version is not None and changes.keyed_by_object(name)
    ]
    recorded = _backend().get_many([applied_key(name) for name in keyed]) if keyed else {}
    steps = []
    for name, version in found.items():
        since = recorded.get(applied_key(name))
        objects = None
        if type(since) is int and version is not None and since < version:
            try:
                objects = changes.object_changes(name, since, version)
            except DatabaseError:
                logger.warning("could not read which objects changed", exc_info=True)
        if objects is None:
            if mode == WRITE and type(since) is int and version and since >= version:
                # Another process took in this write's version already, with a bump made after
                # it committed: nothing left to invalidate (unless the cache disagrees: SYNC).
                mode_here = SYNC
            else:
                mode_here = mode
            steps.append(Step(name, version, mode_here))
        else:
            steps.append(
                Step(
                    name,
                    version,
                    OBJECTS,
                    since=since,
                    objects=tuple(sorted(objects)),
                    moved=any(objects.values()),
                )
            )
    return steps


#: Seconds between two prunings of the objects' notes (``changes.prune``) by one process.
PRUNE_INTERVAL = 60.0
_pruned_at: list[float] = [float("-inf")]


def _prune(found: Mapping[str, int]) -> None:
    """Forget, now and then, the notes of objects changed by versions the cache has taken in."""
    keyed = {name: version for name, version in found.items() if changes.keyed_by_object(name)}
    now = time.monotonic()
    if not keyed or now - _pruned_at[0] < PRUNE_INTERVAL:
        return
    _pruned_at[0] = now
    try:
        changes.prune(keyed)
    except DatabaseError:
        logger.warning("could not prune the notes of changed objects", exc_info=True)


def _reseed() -> bool:
    names = [*namespaces(), PURGE_NAMESPACE]
    return advance([Step(name, None) for name in names]) is not None


def _settle(ahead: list[str]) -> bool:
    """The cache has taken in a newer version than the one just read: another process's read
    raced this one (read again, and it is level), or the database went back (restored from a
    backup, a test's flush): then the database's versions are the truth."""
    try:
        again = changes.versions(ahead)
    except DatabaseError:
        return False
    back = _level(again)
    if back is None:
        return False
    if back:
        logger.warning("the database's versions went back for %s: invalidating", ", ".join(back))
        if advance([Step(name, again[name], RESET) for name in back]) is None:
            return False
    return True


def behind() -> dict[str, tuple[int, int | None]]:
    """The namespaces whose generations have not taken in the database's version yet: name ->
    (database version, version the cache recorded, ``None`` for none)."""
    cache = _backend()
    found = changes.versions()
    recorded = cache.get_many([applied_key(name) for name in found])
    late = {}
    for name, version in found.items():
        taken = recorded.get(applied_key(name))
        taken = taken if isinstance(taken, int) else None
        if (taken or 0) != version:
            late[name] = (version, taken)
    return late


class Sweeper(threading.Thread):
    """Brings the generations level with the database, every ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="cache-sweeper", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.db import connection

        while not self.stopped.wait(self.interval):
            try:
                sync()
            except Exception:
                logger.exception("cache sweep failed")
                connection.close()

    def stop(self) -> None:
        self.stopped.set()


_sweeper: Sweeper | None = None
_sweeper_lock = threading.Lock()


def start_sweeper(interval: float) -> Sweeper:
    """Start this process's sweeper once (every server process: gunicorn's post_worker_init),
    after one sweep made at once: a process levels the cache with the database before it serves
    (a fresh cache records the versions, so the first background sweep has nothing to bump)."""
    global _sweeper
    with _sweeper_lock:
        if _sweeper is None or not _sweeper.is_alive():
            try:
                sync()
            except Exception:
                logger.exception("the first cache sweep failed; the sweeper tries again")
            _sweeper = Sweeper(interval)
            _sweeper.start()
        return _sweeper
