"""Instrumented cache backends: one mixin, two thin subclasses.

The mixin wraps every operation of Django's cache API to count hits, misses, sets, deletes and
time per namespace, without changing what the operation returns. Hits are told from misses with
a private sentinel, so a cached ``None``, ``0`` or ``[]`` is a hit. Composite operations that
Django implements on top of others (``get_many`` on locmem calls ``get``) are counted once, at the
outermost call.
"""

from __future__ import annotations

import fnmatch
import logging
import pickle
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    CacheKeyWarning,
    memcache_key_warnings,
)
from django.core.cache.backends.locmem import LocMemCache
from django_redis.cache import RedisCache

from .breaker import CircuitBreakerError, guard_for
from .hot import HotEntries, hot_entries_for
from .stats import StatsRecorder, namespace_of

logger = logging.getLogger(__name__)

_MISSING = object()
_nesting = threading.local()

# Django creates one backend instance per thread; statistics belong to the process.
_recorders: dict[tuple[str, str, str], StatsRecorder] = {}
_recorders_lock = threading.Lock()


def _recorder_for(kind: str, location: str, prefix: str) -> StatsRecorder:
    key = (kind, location, prefix)
    with _recorders_lock:
        if key not in _recorders:
            _recorders[key] = StatsRecorder()
        return _recorders[key]


class CacheUnavailable(Exception):
    """The cache backend could not be reached; the caller falls back as if it missed."""


class InstrumentedCacheMixin:
    """Counts every operation per namespace; the subclasses decide where figures are summed."""

    #: ``fleet`` when the figures are shared by every process using the backend.
    stats_scope = "process"
    recorder: StatsRecorder
    #: Copies of entries the fast path served (``hot``), shared by this cache's instances.
    hot: HotEntries

    # Plumbing ----------------------------------------------------------------------------

    def _call_backend(self, fn: Callable[[], Any]) -> Any:
        """Run one backend call; subclasses turn an outage into ``CacheUnavailable``."""
        return fn()

    def _after_operation(self) -> None:
        """Hook run after each counted operation (the Redis backend flushes its counters)."""

    def count_hot_hits(self, keys: Iterable[str]) -> None:
        """Count entries served from this process's copies (``hot``): hits, but no round trip."""
        self.recorder.record_many((namespace_of(key), {"hits": 1}) for key in keys)

    def _run(
        self,
        namespace: str,
        fn: Callable[[], Any],
        *,
        fallback: Any = None,
        count: Callable[[Any], dict[str, int]] | None = None,
    ) -> Any:
        depth = getattr(_nesting, "depth", 0)
        _nesting.depth = depth + 1
        start = time.perf_counter()
        try:
            result = self._call_backend(fn)
        except CacheUnavailable:
            if depth == 0:
                self.recorder.record(namespace, misses=1 if count is _count_get else 0, errors=1)
            return fallback
        finally:
            _nesting.depth = depth
        if depth == 0:
            fields = count(result) if count else {}
            elapsed = int((time.perf_counter() - start) * 1_000_000)
            self.recorder.record(namespace, time_us=elapsed, calls=1, **fields)
            self._after_operation()
        return result

    def _run_many(
        self,
        keys: Iterable[str],
        fn: Callable[[], Any],
        *,
        fallback: Any,
        count: Callable[[str, Any], dict[str, int]],
    ) -> Any:
        keys = list(keys)
        depth = getattr(_nesting, "depth", 0)
        _nesting.depth = depth + 1
        start = time.perf_counter()
        try:
            result = self._call_backend(fn)
        except CacheUnavailable:
            if depth == 0:
                for key in keys:
                    self.recorder.record(namespace_of(key), errors=1)
            return fallback
        finally:
            _nesting.depth = depth
        if depth == 0 and keys:
            elapsed = int((time.perf_counter() - start) * 1_000_000) // len(keys)
            # One round trip for the whole batch: counted once, on its first key.
            self.recorder.record_many(
                (
                    namespace_of(key),
                    {"time_us": elapsed, "calls": int(n == 0), **count(key, result)},
                )
                for n, key in enumerate(keys)
            )
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
            count=lambda key, found: {"hits": 1} if key in found else {"misses": 1},
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
            count=lambda _: {"sets": 1},
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
            count=lambda added: {"sets": 1} if added else {},
        )

    def set_many(
        self, data: dict, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None, **kw: Any
    ) -> list:
        return self._run_many(
            data.keys(),
            lambda: super(InstrumentedCacheMixin, self).set_many(data, timeout, version, **kw),
            fallback=list(data),
            count=lambda key, failed: {} if failed and key in failed else {"sets": 1},
        )

    def delete(self, key: str, version: int | None = None, **kw: Any) -> bool:
        return self._run(
            namespace_of(key),
            lambda: super(InstrumentedCacheMixin, self).delete(key, version, **kw),
            fallback=False,
            count=lambda deleted: {"deletes": 1} if deleted else {},
        )

    def delete_many(self, keys: Iterable[str], version: int | None = None, **kw: Any) -> Any:
        keys = list(keys)
        return self._run_many(
            keys,
            lambda: super(InstrumentedCacheMixin, self).delete_many(keys, version, **kw),
            fallback=None,
            count=lambda key, _: {"deletes": 1},
        )

    def incr(self, key: str, delta: int = 1, version: int | None = None, **kw: Any) -> int:
        return self._run(
            namespace_of(key),
            lambda: self._increment(key, delta, version, **kw),
            fallback=None,
            count=lambda _: {"sets": 1},
        )

    def decr(self, key: str, delta: int = 1, version: int | None = None, **kw: Any) -> int:
        return self.incr(key, -delta, version, **kw)

    def _increment(self, key: str, delta: int, version: int | None, **kw: Any) -> int:
        return super().incr(key, delta, version, **kw)

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

    #: Whether invalidations must survive a cache outage (see ``performance.cache.outbox``).
    #: Local memory dies with its process, so nothing can outlive a missed invalidation there.
    durable_invalidation = False


def _internal(logical_key: str, pattern: str) -> bool:
    """Generation, lock and health keys are the cache layer's own: a pattern reaches them only
    when it names them (starts with ``_``)."""
    return logical_key.startswith("_") and not pattern.startswith("_")


def _count_get(value: Any) -> dict[str, int]:
    return {"misses": 1} if value is _MISSING else {"hits": 1}


class InstrumentedLocMemCache(InstrumentedCacheMixin, LocMemCache):
    """Django's local-memory cache, counted. One process owns it, so its figures are the truth.

    Bounded by ``MAX_ENTRIES``; when full, the least recently used entries go first, and every
    entry that goes is counted as an eviction.
    """

    stats_scope = "process"

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(name, params)
        self._name = name
        self.recorder = _recorder_for("locmem", name, self.key_prefix)
        self.hot = hot_entries_for("locmem", name, self.key_prefix, self.default_timeout)
        self._valid_keys: dict[tuple[str, int | None], str] = {}

    def get_many(self, keys: Iterable[str], version: int | None = None, **kw: Any) -> dict:
        """Django's ``get_many`` with one lock for the batch, rather than a ``get`` per key
        (``BaseCache.get_many``); expiry and recency are handled as ``LocMemCache.get`` does."""
        keys = list(keys)

        def fetch() -> dict:
            internal = {key: self._made_key(key, version) for key in keys}
            found = {}
            with self._lock:
                for key, made in internal.items():
                    if self._has_expired(made):
                        self._delete(made)
                        continue
                    found[key] = self._cache[made]
                    self._cache.move_to_end(made, last=False)
            return {key: pickle.loads(value) for key, value in found.items()}

        return self._run_many(
            keys,
            fetch,
            fallback={},
            count=lambda key, found: {"hits": 1} if key in found else {"misses": 1},
        )

    def _made_key(self, key: str, version: int | None) -> str:
        """``make_and_validate_key``, remembering keys that passed without a warning: the fast
        path asks for the same generation keys on every request."""
        made = self._valid_keys.get((key, version))
        if made is None:
            made = self.make_key(key, version=version)
            warned = False
            for warning in memcache_key_warnings(made):
                warnings.warn(warning, CacheKeyWarning, stacklevel=4)
                warned = True
            if not warned:
                if len(self._valid_keys) >= 1024:
                    self._valid_keys.clear()
                self._valid_keys[(key, version)] = made
        return made

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


class InstrumentedRedisCache(InstrumentedCacheMixin, RedisCache):
    """django-redis, counted; counters are flushed to Redis so they add up across the fleet."""

    stats_scope = "fleet"
    #: Seconds between two flushes of this process's counters.
    flush_interval = 1.0
    scan_count = 1000
    delete_chunk = 500

    durable_invalidation = True
    #: Seconds a call waits for another thread's replay of missed invalidations.
    replay_wait = 0.5

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._location = server
        self.recorder = _recorder_for("redis", server, self.key_prefix)
        self.hot = hot_entries_for("redis", server, self.key_prefix, self.default_timeout)
        self.guard = guard_for(
            f"{server}|{self.key_prefix}", is_outage=_is_unreachable, probe=self._ping
        )
        if not hasattr(self.recorder, "last_flush"):
            self.recorder.last_flush = time.monotonic()
            self.recorder.flush_lock = threading.Lock()
        if not self.key_prefix:
            raise ValueError("The Redis cache needs a KEY_PREFIX: it scopes clear and patterns.")

    # Outages -------------------------------------------------------------------------------

    def _ping(self) -> Any:
        return self._redis().ping()

    def _increment(self, key: str, delta: int, version: int | None, **kw: Any) -> int:
        """INCRBY of an existing key, in one atomic script.

        django-redis answers a script that Redis refuses (full with ``noeviction``, a read-only
        replica) with a read-modify-write of its own: TTL, GET, SET. That races every other
        writer, and a key deleted between its GET and SET (``generations._forget`` in another
        process) turns into a ``TypeError``. A refusal fails here like any other refused write;
        django-redis keeps the values its script cannot add to (beyond 64 bits, pickled).
        """
        from redis.exceptions import ResponseError

        client = self.client.get_client(write=True)
        try:
            value = client.eval(_INCR_EXISTING, 1, self.client.make_key(key, version), delta)
        except ResponseError as exc:
            if _is_outage(exc):
                raise
            return RedisCache.incr(self, key, delta, version, **kw)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def _call_backend(self, fn: Callable[[], Any]) -> Any:
        if self.guard.needs_replay and not getattr(_nesting, "replaying", False):
            if not self.guard.closed:
                # Fail at once, without the query a replay costs: its bumps cannot go through
                # until the trial call (made in the background) has closed the breaker.
                self.guard.try_in_background()
                raise CacheUnavailable("circuit breaker open")
            self._replay_missed_invalidations()
        try:
            return self.guard.call(fn)
        except CircuitBreakerError as exc:
            raise CacheUnavailable("circuit breaker open") from exc
        except Exception as exc:
            if _is_outage(exc):
                logger.debug("cache unavailable: %s", type(exc).__name__)
                raise CacheUnavailable(str(exc)) from exc
            raise

    def _replay_missed_invalidations(self) -> None:
        """After an outage, apply the invalidations left behind before using the cache again.

        Until that succeeds, this process treats the cache as unavailable, so nothing written
        while it was unreachable can be hidden by an entry stored before.
        """
        from .outbox import replay_all

        # Another thread may be replaying: wait for it briefly rather than fail, so that a
        # write's own bump, made meanwhile, is not missed in its turn.
        if not self.guard.replay_lock.acquire(timeout=self.replay_wait):
            raise CacheUnavailable("replaying missed invalidations")
        if not self.guard.needs_replay:  # the other thread has replayed them
            self.guard.replay_lock.release()
            return
        _nesting.replaying = True
        try:
            # The bumps go through the breaker: while it is open they fail at once; once its
            # reset timeout has passed, the first one is the trial call.
            if replay_all():
                self.guard.needs_replay = False
            else:
                raise CacheUnavailable("missed invalidations not yet replayed")
        finally:
            _nesting.replaying = False
            self.guard.replay_lock.release()

    def invalidation_missed(self) -> None:
        """An invalidation could not reach the cache: read nothing from it until replayed."""
        self.guard.needs_replay = True

    def breaker_state(self) -> dict[str, Any] | None:
        return self.guard.state()

    # Shared statistics -----------------------------------------------------------------------

    @property
    def _stats_key(self) -> str:
        return f"{self.key_prefix}#stats"

    def _minute_key(self, minute: int) -> str:
        return f"{self.key_prefix}#stats:m:{minute}"

    def _redis(self) -> Any:
        return self.client.get_client(write=True)

    def _after_operation(self) -> None:
        if time.monotonic() - self.recorder.last_flush >= self.flush_interval:
            self.flush_stats()

    def flush_stats(self) -> None:
        if not self.recorder.flush_lock.acquire(blocking=False):
            return  # another thread of this process is flushing
        try:
            self.recorder.last_flush = time.monotonic()
            pending, minutes = self.recorder.drain()
            if not pending and not minutes:
                return
            try:
                pipe = self._redis().pipeline(transaction=False)
                for ns, counter in pending.items():
                    for field, value in counter.items():
                        pipe.hincrby(self._stats_key, f"{ns}|{field}", value)
                for minute, counter in minutes.items():
                    key = self._minute_key(minute)
                    for field, value in counter.items():
                        pipe.hincrby(key, field, value)
                    pipe.expire(key, 2 * 3600)
                pipe.execute()
            except Exception as exc:
                if not _is_outage(exc):
                    raise
                self.recorder.restore(pending, minutes)
        finally:
            self.recorder.flush_lock.release()

    def stats_snapshot(self) -> dict[str, Any]:
        self.flush_stats()
        snapshot = {
            "per_namespace": {},
            "history": {},
            "evictions": None,
            "reset_at": self.recorder.reset_at,
        }
        try:
            redis = self._redis()
            raw = redis.hgetall(self._stats_key)
            per_ns: dict[str, Counter[str]] = {}
            for field, value in raw.items():
                name = field.decode() if isinstance(field, bytes) else field
                if name == "_reset_at":
                    snapshot["reset_at"] = float(value)
                    continue
                ns, _, counter = name.rpartition("|")
                per_ns.setdefault(ns, Counter())[counter] = int(value)
            snapshot["per_namespace"] = {ns: dict(c) for ns, c in per_ns.items()}
            now_minute = int(self.recorder.clock() // 60)
            minutes = list(range(now_minute - 59, now_minute + 1))
            pipe = redis.pipeline(transaction=False)
            for minute in minutes:
                pipe.hgetall(self._minute_key(minute))
            for minute, counts in zip(minutes, pipe.execute(), strict=True):
                if counts:
                    snapshot["history"][minute] = {
                        (k.decode() if isinstance(k, bytes) else k): int(v)
                        for k, v in counts.items()
                    }
        except Exception as exc:
            if not _is_outage(exc):
                raise
            snapshot["unavailable"] = True
        return snapshot

    def reset_stats(self) -> None:
        self.recorder.reset()
        redis = self._redis()
        pipe = redis.pipeline(transaction=True)
        pipe.delete(self._stats_key)
        pipe.hset(self._stats_key, "_reset_at", repr(self.recorder.reset_at))
        pipe.execute()

    # Keys of this service only ---------------------------------------------------------------

    def _glob_prefix(self, version: int | None = None) -> str:
        from django_redis.client.default import glob_escape

        version = self.version if version is None else version
        return f"{glob_escape(self.key_prefix)}:{version}:"

    def _scan(self, match: str) -> Iterator[bytes]:
        return self._redis().scan_iter(match=match, count=self.scan_count)

    def logical_keys(self, pattern: str = "*") -> Iterator[str]:
        prefix = f"{self.key_prefix}:{self.version}:"
        for raw in self._scan(self._glob_prefix() + pattern):
            key = raw.decode() if isinstance(raw, bytes) else raw
            yield key[len(prefix) :]

    def _unlink_matching(
        self, match: str, *, dry_run: bool, skip: Callable[[bytes], bool] | None = None
    ) -> int:
        redis = self._redis()
        count, chunk = 0, []
        for key in self._scan(match):
            if skip is not None and skip(key):
                continue
            count += 1
            if dry_run:
                continue
            chunk.append(key)
            if len(chunk) >= self.delete_chunk:
                redis.unlink(*chunk)
                chunk = []
        if chunk:
            redis.unlink(*chunk)
        return count

    def delete_logical(self, pattern: str, *, dry_run: bool = False) -> int:
        """Delete this service's keys whose logical name matches ``pattern`` (SCAN + UNLINK)."""
        prefix = f"{self.key_prefix}:{self.version}:".encode()

        def internal(raw: bytes) -> bool:
            key = raw if isinstance(raw, bytes) else str(raw).encode()
            return _internal(key[len(prefix) :].decode(errors="replace"), pattern)

        return self._unlink_matching(self._glob_prefix() + pattern, dry_run=dry_run, skip=internal)

    def clear(self) -> None:
        """Remove this service's keys, every version; never ``FLUSHDB`` a shared Redis."""
        from django_redis.client.default import glob_escape

        self._run(
            "default",
            lambda: self._unlink_matching(f"{glob_escape(self.key_prefix)}:*", dry_run=False),
            fallback=None,
        )

    def server_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": "redis", "location": _redact(self._location)}
        try:
            redis = self._redis()
            server = redis.info()
            info.update(
                {
                    key: server.get(key)
                    for key in (
                        "redis_version",
                        "used_memory",
                        "used_memory_human",
                        "maxmemory",
                        "maxmemory_human",
                        "maxmemory_policy",
                        "evicted_keys",
                        "expired_keys",
                        "keyspace_hits",
                        "keyspace_misses",
                        "connected_clients",
                        "uptime_in_seconds",
                    )
                }
            )
            info["db_keys"] = redis.dbsize()
        except Exception as exc:
            if not _is_outage(exc):
                raise
            info["unavailable"] = True
        return info


def _redact(location: Any) -> str:
    """A Redis URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    text = location[0] if isinstance(location, list | tuple) else str(location)
    parts = urlsplit(text)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


_INCR_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return false
"""


def _is_unreachable(exc: BaseException) -> bool:
    """Outages that trip the breaker: Redis does not answer (refused, reset, timed out).

    A Redis that answers but refuses an operation (full with noeviction, loading, read-only)
    fails that operation open without tripping the breaker: its reads still work, and so do the
    deletes that make a refused invalidation take effect (``generations._forget``).
    """
    return _is_outage(exc) and not _is_refusal(exc)


def _is_refusal(exc: BaseException) -> bool:
    from redis import exceptions as redis_errors

    return isinstance(exc, redis_errors.ResponseError)


def _is_outage(exc: BaseException) -> bool:
    """Errors that mean "the cache is not answering", as opposed to programming errors."""
    import socket

    from django_redis.exceptions import ConnectionInterrupted
    from redis import exceptions as redis_errors

    if isinstance(
        exc,
        ConnectionInterrupted
        | redis_errors.ConnectionError
        | redis_errors.TimeoutError
        | socket.timeout
        | ConnectionError
        # redis-py maps these replies to their own classes and strips the prefix ("OOM ...")
        # from the message; django-redis re-raises them as they are.
        | redis_errors.OutOfMemoryError
        | redis_errors.BusyLoadingError
        | redis_errors.ReadOnlyError
        | redis_errors.MasterDownError,
    ):
        return True
    if isinstance(exc, redis_errors.ResponseError):
        message = str(exc)
        return message.startswith(("OOM", "LOADING", "BUSY", "MASTERDOWN", "READONLY"))
    return False
