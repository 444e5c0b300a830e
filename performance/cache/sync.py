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
from typing import Any, NamedTuple

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
        read = _read(names)
    except DatabaseError:
        logger.warning("could not read the database's versions after a write", exc_info=True)
        read = Read({}, {}, {})
    found = {name: read.versions.get(name) for name in names}
    bumped = advance_after_write(_steps(read._replace(versions=found), WRITE))
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
        read = _read(None)
    except DatabaseError:
        logger.warning("could not read the database's versions", exc_info=True)
        return False
    ahead = _level(read)
    if ahead is None:
        return False
    if ahead and not _settle(ahead):
        return False
    _prune(read.versions)
    return True


class Read(NamedTuple):
    """What the database and the cache say of some namespaces (``_read``)."""

    #: name -> the database's version.
    versions: Mapping[str, int | None]
    #: name -> the version the cache took in last, of the namespaces keyed by object.
    taken: Mapping[str, int]
    #: name -> the objects the versions since ``taken`` touched (``changes.object_changes``).
    objects: Mapping[str, dict[str, bool] | None]


def _read(names: list[str] | None) -> Read:
    """The database's versions of ``names`` (every namespace: ``None``) and, of those keyed
    by object, the version their cache took in and the objects each version since touched:
    one round trip to the cache, then one to the database (``changes.versions_since``).
    ``DatabaseError`` when the database cannot answer."""
    every = namespaces() if names is None else names
    keyed = [name for name in every if changes.keyed_by_object(name)]
    recorded = _backend().get_many([applied_key(name) for name in keyed]) if keyed else {}
    taken = {
        name: since
        for name in keyed
        if type(since := recorded.get(applied_key(name))) is int  # (not a bool, not garbage)
    }
    found, objects = changes.versions_since(names, taken)
    return Read(found, taken, objects)


def _level(read: Read) -> list[str] | None:
    """Bump every namespace whose recorded version differs from the database's; the names the
    cache has recorded a newer version of, or ``None`` when the cache could not be reached."""
    if not read.versions:
        return []
    results = advance(_steps(read, SYNC))
    if results is None:
        return None
    return [name for name, result in zip(read.versions, results, strict=True) if result == AHEAD]


def _steps(read: Read, mode: str) -> list[Step]:
    """A step of ``mode`` for each namespace, taking in the version read for it — but for a
    namespace keyed by object whose versions since the one its cache took in each touched a
    few objects (``changes.object_changes``): then an ``OBJECTS`` step, which invalidates those
    objects' responses and the namespace's collections, and leaves the other objects' cached
    (docs/design.md, "Invariants", 6). The cache checks, atomically, that it has still taken in
    that version; otherwise the step is a ``SYNC``, which invalidates the whole namespace."""
    steps = []
    for name, version in read.versions.items():
        since = read.taken.get(name)
        objects = None
        if since is not None and version is not None and since < version:
            objects = read.objects.get(name)
        if objects is None:
            if mode == WRITE and since is not None and version and since >= version:
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
        again = _read(ahead)
    except DatabaseError:
        return False
    back = _level(again)
    if back is None:
        return False
    if back:
        logger.warning("the database's versions went back for %s: invalidating", ", ".join(back))
        steps = [Step(name, again.versions[name], RESET) for name in back]
        if advance(steps) is None:
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
