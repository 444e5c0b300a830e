"""Instrumented cache backends: one mixin that counts, two thin subclasses.

The mixin wraps every operation of Django's cache API to count hits, misses, sets, deletes and
time per namespace, without changing what the operation returns. Hits are told from misses with
a private sentinel, so a cached ``None``, ``0`` or ``[]`` is a hit. Composite operations that
Django implements on top of others (``get_many`` on locmem calls ``get``) are counted once, at the
outermost call.

What each process keeps about a cache (statistics, breaker, decoded tokens, copies, rates) is
one ``state.CacheState``; what Redis is asked beyond Django's API is in ``redis``.
"""

from __future__ import annotations

import fnmatch
import logging
import pickle
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    CacheKeyWarning,
    memcache_key_warnings,
)
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django_redis.cache import RedisCache

from . import redis as redis_client
from .breaker import CircuitBreakerError, make_guard
from .hot import HotEntries
from .keys import RATE_NAMESPACE, namespace_of
from .rates import ALLOWED, RateCheck, RateStore, Verdict
from .state import CacheState, state_for
from .stats import FIELDS, StatsRecorder

logger = logging.getLogger(__name__)

_MISSING = object()
_nesting = threading.local()


class CacheUnavailable(Exception):
    """The cache backend could not be reached; the caller falls back as if it missed."""


class InstrumentedCacheMixin:
    """Counts every operation per namespace; the subclasses decide where figures are summed."""

    #: ``fleet`` when the figures are shared by every process using the backend.
    stats_scope = "process"
    state: CacheState

    #: Whether invalidations must survive a cache outage (see ``performance.cache.outbox``).
    #: Local memory dies with its process, so nothing can outlive a missed invalidation there.
    durable_invalidation = False

    @property
    def recorder(self) -> StatsRecorder:
        return self.state.recorder

    @property
    def hot(self) -> HotEntries:
        """This process's copies of entries for warm hits (disabled where they save nothing)."""
        return self.state.copies

    # Plumbing ----------------------------------------------------------------------------

    def _call_backend(self, fn: Callable[[], Any]) -> Any:
        """Run one backend call; subclasses turn an outage into ``CacheUnavailable``."""
        return fn()

    def _after_operation(self) -> None:
        """Hook run after each counted operation (the Redis backend flushes its counters)."""

    def count_local_hits(self, keys: Iterable[str]) -> None:
        """Count entries served from this process's memory: hits, but no round trip."""
        self.state.recorder.add_rows((namespace_of(key), _row(_HITS)) for key in keys)

    def _run(
        self,
        namespace: str,
        fn: Callable[[], Any],
        *,
        fallback: Any = None,
        count: Callable[[Any], int | None] | None = None,
    ) -> Any:
        """Run one operation; count it (``count`` names the field the result adds one to)."""
        depth = getattr(_nesting, "depth", 0)
        _nesting.depth = depth + 1
        start = time.perf_counter()
        try:
            result = self._call_backend(fn)
        except CacheUnavailable:
            if depth == 0:
                row = _row(_ERRORS)
                if count is _count_get:
                    row[_MISSES] = 1
                self.state.recorder.add_rows(((namespace, row),))
            return fallback
        finally:
            _nesting.depth = depth
        if depth == 0:
            row = _row(_CALLS)
            row[_TIME] = int((time.perf_counter() - start) * 1_000_000)
            field = count(result) if count else None
            if field is not None:
                row[field] += 1
            self.state.recorder.add_rows(((namespace, row),))
            self._after_operation()
        return result

    def _run_many(
        self,
        keys: Iterable[str],
        fn: Callable[[], Any],
        *,
        fallback: Any,
        count: Callable[[str, Any], int | None],
    ) -> Any:
        """Run one operation on several keys; count each key once, the round trip once."""
        keys = list(keys)
        depth = getattr(_nesting, "depth", 0)
        _nesting.depth = depth + 1
        start = time.perf_counter()
        try:
            result = self._call_backend(fn)
        except CacheUnavailable:
            if depth == 0:
                self.state.recorder.add_rows((namespace_of(key), _row(_ERRORS)) for key in keys)
            return fallback
        finally:
            _nesting.depth = depth
        if depth == 0 and keys:
            elapsed = int((time.perf_counter() - start) * 1_000_000) // len(keys)
            rows: dict[str, list[int]] = {}
            for key in keys:
                namespace = namespace_of(key)
                row = rows.get(namespace)
                if row is None:
                    row = rows[namespace] = _row()
                row[_TIME] += elapsed
                field = count(key, result)
                if field is not None:
                    row[field] += 1
            # One round trip for the whole batch: counted once, on its first key's namespace.
            rows[namespace_of(keys[0])][_CALLS] = 1
            self.state.recorder.add_rows(rows.items())
            self._after_operation()
        return result

    # Django's cache API --------------------------------------------------------------------

    def get(self, key: str, default: Any = None, version: int | None = None, **kw: Any) -> Any:
        value = self._run(
            namespace_of(key),
            lambda: super(InstrumentedCacheMixin, self).get(key, _MISSING, version, **kw),
            fallback=_MISSING,
            count=_count_get,
        )
        return default if value is _MISSING else value

    def get_many(self, keys: Iterable[str], version: int | None = None, **kw: Any) -> dict:
        keys = list(keys)
        return self._run_many(
            keys,
            lambda: super(InstrumentedCacheMixin, self).get_many(keys, version=version, **kw),
            fallback={},
            count=_count_found,
        )

    def set(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        **kw: Any,
    ) -> Any:
        return self._run(
            namespace_of(key),
            lambda: super(InstrumentedCacheMixin, self).set(key, value, timeout, version, **kw),
            fallback=False,
            count=_count_set,
        )

    def add(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        **kw: Any,
    ) -> bool:
        return self._run(
            namespace_of(key),
            lambda: super(InstrumentedCacheMixin, self).add(key, value, timeout, version, **kw),
            fallback=False,
            count=lambda added: _SETS if added else None,
        )

    def set_many(
        self, data: dict, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None, **kw: Any
    ) -> list:
        return self._run_many(
            data.keys(),
            lambda: super(InstrumentedCacheMixin, self).set_many(data, timeout, version, **kw),
            fallback=list(data),
            count=lambda key, failed: None if failed and key in failed else _SETS,
        )

    def delete(self, key: str, version: int | None = None, **kw: Any) -> bool:
        return self._run(
            namespace_of(key),
            lambda: super(InstrumentedCacheMixin, self).delete(key, version, **kw),
            fallback=False,
            count=lambda deleted: _DELETES if deleted else None,
        )

    def delete_many(self, keys: Iterable[str], version: int | None = None, **kw: Any) -> Any:
        keys = list(keys)
        return self._run_many(
            keys,
            lambda: super(InstrumentedCacheMixin, self).delete_many(keys, version, **kw),
            fallback=None,
            count=lambda key, _: _DELETES,
        )

    def incr(self, key: str, delta: int = 1, version: int | None = None, **kw: Any) -> int:
        return self._run(
            namespace_of(key),
            lambda: super(InstrumentedCacheMixin, self).incr(key, delta, version, **kw),
            fallback=None,
            count=_count_set,
        )

    def decr(self, key: str, delta: int = 1, version: int | None = None, **kw: Any) -> int:
        return self.incr(key, -delta, version, **kw)

    def touch(
        self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None, **kw: Any
    ) -> bool:
        return self._run(
            namespace_of(key),
            lambda: super(InstrumentedCacheMixin, self).touch(key, timeout, version, **kw),
            fallback=False,
        )

    def has_key(self, key: str, version: int | None = None, **kw: Any) -> bool:
        return self._run(
            namespace_of(key),
            lambda: super(InstrumentedCacheMixin, self).has_key(key, version, **kw),
            fallback=False,
        )

    # Reads and rates in one round trip -------------------------------------------------------

    def read(
        self,
        keys: Sequence[str],
        *,
        rates: Sequence[RateCheck] = (),
        rates_if: tuple[str, Any] | None = None,
    ) -> tuple[dict[str, Any], list[Verdict] | None]:
        """The values of ``keys`` that are present, and the verdicts of ``rates`` — counted only
        if the value under ``rates_if[0]`` (one of ``keys``) is ``rates_if[1]``; ``None`` when
        it was not (or when no rates were asked for). On an unreachable cache: nothing found,
        every rate allowed."""
        values = self.get_many(keys)
        if not rates or (rates_if is not None and values.get(rates_if[0]) != rates_if[1]):
            return values, None
        return values, self.rate_hits(rates)

    def rate_hits(self, checks: Sequence[RateCheck]) -> list[Verdict]:
        """Count one request against each rate, if it passes (``rates``)."""
        rates = self.state.rates
        assert rates is not None, "a backend without its own rate store overrides rate_hits"
        return self._run(RATE_NAMESPACE, lambda: rates.hit(list(checks)), fallback=[])

    # Service-level operations ----------------------------------------------------------------

    def stats_snapshot(self) -> dict[str, Any]:
        """Raw counters per namespace and the per-minute history, as this backend sums them."""
        return {
            "per_namespace": self.recorder.totals(),
            "history": self.recorder.history(),
            "evictions": self.recorder.evictions,
            "reset_at": self.recorder.reset_at,
        }

    def reset_stats(self) -> None:
        self.recorder.reset()

    def flush_stats(self) -> None:
        """Publish pending counters where other processes see them (nothing to do locally)."""

    def logical_keys(self, pattern: str = "*") -> Iterator[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def delete_logical(self, pattern: str, *, dry_run: bool = False) -> int:
        raise NotImplementedError  # pragma: no cover - abstract

    def server_info(self) -> dict[str, Any]:
        return {}

    def breaker_state(self) -> dict[str, Any] | None:
        """The circuit breaker's state, where the backend has one."""
        return None

    def invalidation_missed(self) -> None:
        """Called when a generation bump could not reach the cache (see the Redis backend)."""


def _internal(logical_key: str, pattern: str) -> bool:
    """Generation, lock and health keys are the cache layer's own: a pattern reaches them only
    when it names them (starts with ``_``)."""
    return logical_key.startswith("_") and not pattern.startswith("_")


_HITS, _MISSES, _SETS, _DELETES, _TIME, _ERRORS, _CALLS = (
    FIELDS.index(name)
    for name in ("hits", "misses", "sets", "deletes", "time_us", "errors", "calls")
)


def _row(field: int | None = None) -> list[int]:
    """A row of counters (``stats.FIELDS``), with one in ``field``."""
    row = [0] * len(FIELDS)
    if field is not None:
        row[field] = 1
    return row


def _count_get(value: Any) -> int:
    return _MISSES if value is _MISSING else _HITS


def _count_set(_: Any) -> int:
    return _SETS


def _count_found(key: str, found: dict) -> int:
    return _HITS if key in found else _MISSES


def _fill_verdicts(verdicts: list[Verdict], checks: Sequence[RateCheck]) -> list[Verdict]:
    """An unreachable cache answers no verdict: every request passes (throttles fail open)."""
    return verdicts if len(verdicts) == len(checks) else [ALLOWED] * len(checks)


class _Frozen:
    """A value stored as it is: immutable all the way down, so nobody can change it in place."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_SCALARS = frozenset({bytes, str, int, float, bool, type(None)})


def _is_frozen(value: Any, depth: int = 0) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    return kind is tuple and depth < 3 and all(_is_frozen(item, depth + 1) for item in value)


class _LocMemStore(LocMemCache):
    """Django's local-memory cache, storing immutable values (a response's bytes, ETag and
    content type; a generation) as they are instead of pickling them.

    Django pickles every value so that a caller cannot change what is cached by changing what
    it got back; a value that cannot change needs no such copy. A warm hit then reads the
    entry without unpickling 50 rows' worth of bytes, and memory holds one copy of each body.
    Keys that passed Django's check once are remembered (the read path asks for the same keys
    on every request).
    """

    state: CacheState

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(name, params)
        # Per instance: the made key depends on this instance's key function and version.
        self._made_keys: dict[tuple[str, int], str] = {}

    def _encode(self, value: Any) -> Any:
        return _Frozen(value) if _is_frozen(value) else pickle.dumps(value, self.pickle_protocol)

    @staticmethod
    def _decode(stored: Any) -> Any:
        return stored.value if type(stored) is _Frozen else pickle.loads(stored)

    def _made_key(self, key: str, version: int | None) -> str:
        """``make_and_validate_key``, remembering keys that passed without a warning."""
        made_keys = self._made_keys
        version = self.version if version is None else version
        made = made_keys.get((key, version))
        if made is None:
            made = self.make_key(key, version=version)
            warned = False
            for warning in memcache_key_warnings(made):
                warnings.warn(warning, CacheKeyWarning, stacklevel=4)
                warned = True
            if not warned:
                if len(made_keys) >= 1024:
                    made_keys.clear()
                made_keys[(key, version)] = made
        return made

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        stored = self._encode(value)
        with self._lock:
            if self._has_expired(key):
                self._set(key, stored, timeout)
                return True
            return False

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        key = self._made_key(key, version)
        with self._lock:
            if self._has_expired(key):
                self._delete(key)
                return default
            stored = self._cache[key]
            self._cache.move_to_end(key, last=False)
        return self._decode(stored)

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict:
        """One lock for the batch, rather than a ``get`` per key (``BaseCache.get_many``)."""
        internal = {key: self._made_key(key, version) for key in keys}
        found = {}
        with self._lock:
            for key, made in internal.items():
                if self._has_expired(made):
                    self._delete(made)
                    continue
                found[key] = self._cache[made]
                self._cache.move_to_end(made, last=False)
        return {key: self._decode(stored) for key, stored in found.items()}

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> None:
        key = self.make_and_validate_key(key, version=version)
        stored = self._encode(value)
        with self._lock:
            self._set(key, stored, timeout)

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        with self._lock:
            if self._has_expired(key):
                self._delete(key)
                raise ValueError(f"Key '{key}' not found")
            new_value = self._decode(self._cache[key]) + delta
            self._cache[key] = self._encode(new_value)
            self._cache.move_to_end(key, last=False)
        return new_value


class InstrumentedLocMemCache(InstrumentedCacheMixin, _LocMemStore):
    """Django's local-memory cache, counted. One process owns it, so its figures are the truth.

    Bounded by ``MAX_ENTRIES``; when full, the least recently used entries go first, and every
    entry that goes is counted as an eviction. Request rates are kept beside it (``rates``), not
    in it: filling the cache must not evict a client's history. No copies of entries: they are
    in this process already.
    """

    stats_scope = "process"

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(name, params)
        self._name = name
        self.state = state_for(
            "locmem", name, self.key_prefix, lambda: CacheState(rates=RateStore())
        )

    def rate_hits(self, checks: Sequence[RateCheck]) -> list[Verdict]:
        return _fill_verdicts(super().rate_hits(checks), checks)

    def _cull(self) -> None:
        before = len(self._cache)
        super()._cull()
        self.recorder.record_evictions(before - len(self._cache))

    def _internal_prefix(self) -> str:
        return self.make_key("", version=self.version)

    def logical_keys(self, pattern: str = "*") -> Iterator[str]:
        prefix = self._internal_prefix()
        with self._lock:
            keys = [k for k in self._cache if k.startswith(prefix) and not self._has_expired(k)]
        for key in keys:
            logical = key[len(prefix) :]
            if fnmatch.fnmatchcase(logical, pattern) and not _internal(logical, pattern):
                yield logical

    def delete_logical(self, pattern: str, *, dry_run: bool = False) -> int:
        keys = list(self.logical_keys(pattern))
        if not dry_run and keys:
            super().delete_many(keys)
        return len(keys)

    def server_info(self) -> dict[str, Any]:
        with self._lock:
            entries = len(self._cache)
        return {
            "backend": "locmem",
            "location": self._name,
            "entries": entries,
            "max_entries": self._max_entries,
            "evictions": self.recorder.evictions,
        }


#: The client classes the Redis backend runs on: its own (what it needs beyond Django's API).
REDIS_CLIENT = "performance.cache.redis.InventoryRedisClient"
_STOCK_CLIENTS = {"", "django_redis.client.DefaultClient", REDIS_CLIENT}


class InstrumentedRedisCache(InstrumentedCacheMixin, RedisCache):
    """django-redis, counted; counters are flushed to Redis so they add up across the fleet.

    Every call goes through the process's circuit breaker; after an outage, the invalidations
    the cache missed are replayed before anything is read from it again.
    """

    stats_scope = "fleet"
    #: Seconds between two flushes of this process's counters.
    flush_interval = 1.0
    durable_invalidation = True
    #: Seconds a call waits for another thread's replay of missed invalidations.
    replay_wait = 0.5

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS", {}))
        if options.get("CLIENT_CLASS", "") not in _STOCK_CLIENTS:
            raise ImproperlyConfigured(
                f"The Redis cache runs on its own client ({REDIS_CLIENT}); "
                f"CLIENT_CLASS {options['CLIENT_CLASS']!r} is not supported."
            )
        options["CLIENT_CLASS"] = REDIS_CLIENT
        super().__init__(server, {**params, "OPTIONS": options})
        if not self.key_prefix:
            raise ValueError("The Redis cache needs a KEY_PREFIX: it scopes clear and patterns.")
        self._location = server
        self.state = state_for("redis", server, self.key_prefix, self._new_state)
        # Django makes a backend per thread: the trial call may use any of them.
        self.state.guard.probe = self._ping

    def _new_state(self) -> CacheState:
        return CacheState(
            copies=HotEntries(getattr(settings, "CACHE_HOT_BYTES", 0), self.default_timeout),
            guard=make_guard(
                f"{self._location}|{self.key_prefix}",
                is_outage=redis_client.is_unreachable,
                probe=self._ping,
            ),
            last_flush=time.monotonic(),
        )

    @property
    def guard(self) -> Any:
        return self.state.guard

    # Outages -------------------------------------------------------------------------------

    def _ping(self) -> Any:
        return self.client.redis().ping()

    def _call_backend(self, fn: Callable[[], Any]) -> Any:
        guard = self.guard
        if guard.needs_replay and not getattr(_nesting, "replaying", False):
            if not guard.closed:
                # Fail at once, without the query a replay costs: its bumps cannot go through
                # until the trial call (made in the background) has closed the breaker.
                guard.try_in_background()
                raise CacheUnavailable("circuit breaker open")
            self._replay_missed_invalidations()
        try:
            return guard.call(fn)
        except CircuitBreakerError as exc:
            raise CacheUnavailable("circuit breaker open") from exc
        except Exception as exc:
            if redis_client.is_outage(exc):
                logger.debug("cache unavailable: %s", type(exc).__name__)
                raise CacheUnavailable(str(exc)) from exc
            raise

    def _replay_missed_invalidations(self) -> None:
        """After an outage, apply the invalidations left behind before using the cache again.

        Until that succeeds, this process treats the cache as unavailable, so nothing written
        while it was unreachable can be hidden by an entry stored before.
        """
        from .outbox import replay_all

        guard = self.guard
        # Another thread may be replaying: wait for it briefly rather than fail, so that a
        # write's own bump, made meanwhile, is not missed in its turn.
        if not guard.replay_lock.acquire(timeout=self.replay_wait):
            raise CacheUnavailable("replaying missed invalidations")
        if not guard.needs_replay:  # the other thread has replayed them
            guard.replay_lock.release()
            return
        _nesting.replaying = True
        try:
            # The bumps go through the breaker: while it is open they fail at once; once its
            # reset timeout has passed, the first one is the trial call.
            if replay_all():
                guard.needs_replay = False
            else:
                raise CacheUnavailable("missed invalidations not yet replayed")
        finally:
            _nesting.replaying = False
            guard.replay_lock.release()

    def invalidation_missed(self) -> None:
        """An invalidation could not reach the cache: read nothing from it until replayed."""
        self.guard.needs_replay = True

    def breaker_state(self) -> dict[str, Any] | None:
        return self.guard.state()

    # Reads and rates in one round trip -------------------------------------------------------

    def read(
        self,
        keys: Sequence[str],
        *,
        rates: Sequence[RateCheck] = (),
        rates_if: tuple[str, Any] | None = None,
    ) -> tuple[dict[str, Any], list[Verdict] | None]:
        if not rates:
            return self.get_many(keys), None
        outcome = self._run_many(
            [*keys, *(check.key for check in rates)],
            lambda: self.client.read(keys, rates, rates_if),
            fallback=({}, [ALLOWED] * len(rates)),
            count=lambda key, result: _count_found(key, result[0]) if key in keys else None,
        )
        return outcome

    def rate_hits(self, checks: Sequence[RateCheck]) -> list[Verdict]:
        _, verdicts = self.read((), rates=checks)
        return _fill_verdicts(verdicts or [], checks)

    # Shared statistics -----------------------------------------------------------------------

    @property
    def _stats_key(self) -> str:
        return f"{self.key_prefix}#stats"

    def _minute_key(self, minute: int) -> str:
        return f"{self.key_prefix}#stats:m:{minute}"

    def _after_operation(self) -> None:
        if time.monotonic() - self.state.last_flush >= self.flush_interval:
            self.flush_stats()

    def flush_stats(self) -> None:
        state = self.state
        if not state.flush_lock.acquire(blocking=False):
            return  # another thread of this process is flushing
        try:
            state.last_flush = time.monotonic()
            pending, minutes = self.recorder.drain()
            if not pending and not minutes:
                return
            try:
                self.client.publish(self._stats_key, self._minute_key, pending, minutes)
            except Exception as exc:
                if not redis_client.is_outage(exc):
                    raise
                self.recorder.restore(pending, minutes)
        finally:
            state.flush_lock.release()

    def stats_snapshot(self) -> dict[str, Any]:
        self.flush_stats()
        snapshot = {
            "per_namespace": {},
            "history": {},
            "evictions": None,
            "reset_at": self.recorder.reset_at,
        }
        now_minute = int(self.recorder.clock() // 60)
        minutes = list(range(now_minute - 59, now_minute + 1))
        try:
            per_ns, history, reset_at = self.client.counters(
                self._stats_key, self._minute_key, minutes
            )
        except Exception as exc:
            if not redis_client.is_outage(exc):
                raise
            snapshot["unavailable"] = True
            return snapshot
        snapshot.update(per_namespace=per_ns, history=history)
        if reset_at is not None:
            snapshot["reset_at"] = reset_at
        return snapshot

    def reset_stats(self) -> None:
        self.recorder.reset()
        self.client.reset_counters(self._stats_key, self.recorder.reset_at)

    # Keys of this service only ---------------------------------------------------------------

    def logical_keys(self, pattern: str = "*") -> Iterator[str]:
        prefix = self.client.logical_prefix()
        for raw in self.client.scan(self.client.glob_prefix() + pattern):
            key = raw.decode() if isinstance(raw, bytes) else raw
            yield key[len(prefix) :]

    def delete_logical(self, pattern: str, *, dry_run: bool = False) -> int:
        """Delete this service's keys whose logical name matches ``pattern`` (SCAN + UNLINK)."""
        prefix = self.client.logical_prefix().encode()

        def internal(raw: bytes) -> bool:
            key = raw if isinstance(raw, bytes) else str(raw).encode()
            return _internal(key[len(prefix) :].decode(errors="replace"), pattern)

        return self.client.unlink_matching(
            self.client.glob_prefix() + pattern, dry_run=dry_run, skip=internal
        )

    def clear(self) -> None:
        """Remove this service's keys, every version, but the clients' request rates; never
        ``FLUSHDB`` a shared Redis."""
        from django_redis.client.default import glob_escape

        rates = f":{RATE_NAMESPACE}:".encode()

        def rate(raw: bytes) -> bool:
            return rates in raw

        self._run(
            "default",
            lambda: self.client.unlink_matching(
                f"{glob_escape(self.key_prefix)}:*", dry_run=False, skip=rate
            ),
            fallback=None,
        )

    def server_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": "redis", "location": redis_client.redact(self._location)}
        try:
            info.update(self.client.server_info())
        except Exception as exc:
            if not redis_client.is_outage(exc):
                raise
            info["unavailable"] = True
        return info
