"""Instrumented cache backends: the mixin that counts, whatever the backend.

The mixin wraps every operation of Django's cache API to count hits, misses, sets, deletes and
time per namespace, without changing what the operation returns. Hits are told from misses with
a private sentinel, so a cached ``None``, ``0`` or ``[]`` is a hit. Composite operations that
Django implements on top of others (``get_many`` on locmem calls ``get``) are counted once, at the
outermost call.

What each process keeps about a cache (statistics, breaker, decoded tokens, copies, rates) is
one ``state.CacheState``. The backends are ``locmem.InstrumentedLocMemCache`` and
``redis.InstrumentedRedisCache``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from .breaker import CacheUnavailable
from .hot import HotEntries
from .keys import RATE_NAMESPACE, generation_key, namespace_of, namespaces_of
from .rates import ALLOWED, RateCheck, Verdict
from .state import CacheState
from .stats import FIELDS, StatsRecorder

#: How both backends store values unless ``OPTIONS["SERIALIZER"]`` says otherwise: MessagePack,
#: plain data only (None, booleans, numbers, strings, bytes, lists, dicts with string keys),
#: which nothing executes when it is read (docs/design.md, "Invariants", 4). JSON would do as
#: much but cannot carry a response's body as bytes. Django's own contract suite configures
#: django-redis's pickle serializer, for the arbitrary objects it stores.
SERIALIZER = "django_redis.serializers.msgpack.MSGPackSerializer"
_MISSING = object()
_Plan = TypeVar("_Plan")
#: Sets of more keys than this are read without remembering what is the same for the same keys
#: (``read_values``): a page's rows, which each page reads its own of.
MAX_PLANNED_KEYS = 16
#: How many sets of keys a backend remembers the plan of (``remember_plan``).
_MAX_READ_PLANS = 256
_NO_COPIES = HotEntries(0, None)
_nesting = threading.local()
#: Key -> (value, timeout): writes waiting for the response's store (``writes_deferred``).
Pending = Mapping[str, tuple[Any, Any]]
#: The cache whose writes wait, and them.
_pending: contextvars.ContextVar[tuple[Any, dict[str, tuple[Any, Any]]] | None] = (
    contextvars.ContextVar("performance_cache_pending", default=None)
)


def _waiting(cache: Any) -> dict[str, tuple[Any, Any]] | None:
    """The writes of ``cache`` waiting for its store, ``None`` when its writes do not wait."""
    current = _pending.get()
    return current[1] if current is not None and current[0] is cache else None


def _taken(cache: Any) -> dict[str, tuple[Any, Any]]:
    """The writes of ``cache`` waiting for a store (``writes_deferred``), which the caller now
    makes."""
    pending = _waiting(cache)
    if not pending:
        return {}
    taken = dict(pending)
    pending.clear()
    return taken


class PageEntry(NamedTuple):
    """A list page to store (``InstrumentedCacheMixin.store_page``)."""

    key: str
    value: Any
    #: Seconds to live (``None``: until it goes).
    timeout: int | None
    #: The collections' generation key and the value read before the page was computed.
    unless_changed: tuple[str, int]
    #: The page's generation key.
    page: str
    #: The objects it shows (``keys.object_field``).
    shows: Sequence[str]
    #: The stampede lock taken to compute it (``keys.lock_key``), released in the same step,
    #: stored or not.
    release: str | None = None


class Lookup(NamedTuple):
    """What a response's lookup found (``InstrumentedCacheMixin.lookup``)."""

    #: The value under the key, ``None`` when there is none.
    value: Any
    #: Whether the lock was taken: this caller computes the value.
    locked: bool
    #: The keys read ahead, and what they hold (``None`` for those missing).
    ahead: dict[str, Any]
    #: With a seed: ``True`` when it was stored, else what its key holds (``None``: nothing
    #: readable, or the cache did not answer); nothing else was looked up then.
    seeded: Any = None


_NOT_LOOKED_UP = Lookup(None, False, {})


def _nothing_ahead() -> Sequence[str]:
    return ()


class InstrumentedCacheMixin:
    """Counts every operation per namespace; the subclasses decide where figures are summed."""

    #: ``fleet`` when the figures are shared by every process using the backend.
    stats_scope = "process"
    state: CacheState

    #: Whether the cache lives in this process only (local memory): another process (a shell,
    #: a command) cannot reach the server's, and says so instead of acting on its own.
    process_local = False

    @property
    def recorder(self) -> StatsRecorder:
        return self.state.recorder

    @property
    def hot(self) -> HotEntries:
        """This process's copies of entries for warm hits (disabled where they save nothing)."""
        return self.state.copies or _NO_COPIES

    # Plumbing ----------------------------------------------------------------------------

    def _call_backend(self, fn: Callable[[], Any], *, short: bool = False) -> Any:
        """Run one backend call; subclasses turn an outage into ``CacheUnavailable``, and one
        across the network lets another thread of a serving process run while it waits
        (``performance.turns``) — but for a ``short`` call (a warm hit's read), which waits
        for its answer itself."""
        return fn()

    def _after_operation(self) -> None:
        """Hook run after each counted operation (the Redis backend flushes its counters)."""

    def count_local_hits(self, keys: Iterable[str]) -> None:
        """Count entries served from this process's memory: hits, but no round trip."""
        self.state.recorder.add_rows((namespace_of(key), _row(_HITS)) for key in keys)

    def count_response(self, namespace: str, *, hit: bool) -> None:
        """Count one response of ``namespace``: answered from the cache (``X-Cache: HIT``) or
        computed (``MISS``). The read path counts its lookups of entries with ``peek``, so a
        response namespace's hits and misses are its responses, one per request, whatever the
        lookups it took (an early read, DRF's path, a wait on the stampede lock)."""
        self.state.recorder.record_response(namespace, hit=hit)

    def count_request(self) -> None:
        """Count one HTTP request, for the per-minute history."""
        self.state.recorder.record_request()

    def peek(self, key: str) -> Any:
        """``get`` that counts the call and its time, but neither a hit nor a miss (the caller
        counts what the lookup decided: ``count_response``); ``None`` when missing."""
        value = self._run(
            namespace_of(key),
            lambda: super(InstrumentedCacheMixin, self).get(key, _MISSING),
            fallback=_MISSING,
        )
        return None if value is _MISSING else value

    def lookup(
        self,
        key: str,
        lock: str,
        lock_timeout: int,
        ahead: Callable[[], Sequence[str]] = _nothing_ahead,
        seed: Any = None,
    ) -> Lookup:
        """What a response's miss needs before it is computed, in one round trip where the
        backend can: the value under ``key`` (looked up as ``peek`` does); when there is none,
        the stampede lock ``lock`` taken (``add``, for ``lock_timeout`` seconds: this caller
        computes the value) and the keys ``ahead()`` names read (what the computation reads
        first: a list's ids). Asked for the keys only when they are read (the value missing)
        where the backend reads in this process. The keys read ahead count a hit or a miss
        each, as ``get_many`` counts them; on an unreachable cache, nothing is found and no
        lock taken.

        ``seed``: a generation of ``key`` found missing, with the value proposed for it
        (``generations.Seed``), added first (``add``); if another was there, what it holds is
        answered (``Lookup.seeded``) and nothing else is done: ``key`` is not the key."""
        found = self._run(
            namespace_of(key),
            lambda: self._lookup(key, lock, lock_timeout, ahead, seed),
            fallback=_NOT_LOOKED_UP,
        )
        if found.ahead:
            self.state.recorder.add_rows(
                (namespace_of(name), _row(_MISSES if value is None else _HITS))
                for name, value in found.ahead.items()
            )
        return found

    def _lookup(
        self,
        key: str,
        lock: str,
        lock_timeout: int,
        ahead: Callable[[], Sequence[str]],
        seed: Any,
    ) -> Lookup:
        parent = super()
        if seed is not None and not parent.add(seed.key, seed.value, seed.lives):
            return Lookup(None, False, {}, parent.get(seed.key))
        seeded = None if seed is None else True
        value = parent.get(key, _MISSING)
        if value is not _MISSING:
            return Lookup(value, False, {}, seeded)
        locked = parent.add(lock, 1, lock_timeout)
        names = list(ahead())
        read = parent.get_many(names) if names else {}
        return Lookup(None, locked, {name: read.get(name) for name in names}, seeded)

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
        namespaces: Sequence[str] | None = None,
        uncounted: str | None = None,
        short: bool = False,
    ) -> Any:
        """Run one operation on several keys; count each key once, the round trip once.
        ``namespaces``: those of ``keys``, when the caller knows them already. A read
        (``count_found``) is counted in one step (a cold page reads a hundred keys), but
        ``uncounted``, read with them, neither a hit nor a miss (``peek``)."""
        keys = keys if type(keys) is tuple else list(keys)
        depth = getattr(_nesting, "depth", 0)
        _nesting.depth = depth + 1
        start = time.perf_counter()
        try:
            result = self._call_backend(fn, short=short)
        except CacheUnavailable:
            if depth == 0:
                self.state.recorder.add_rows((namespace_of(key), _row(_ERRORS)) for key in keys)
            return fallback
        finally:
            _nesting.depth = depth
        if depth == 0 and keys:
            elapsed = int((time.perf_counter() - start) * 1_000_000) // len(keys)
            if namespaces is None:
                namespaces = namespaces_of(keys)
            if count is count_found:
                self.state.recorder.add_read(keys, namespaces, result, elapsed, uncounted)
                self._after_operation()
                return result
            rows: dict[str, list[int]] = {}
            for key, namespace in zip(keys, namespaces, strict=True):
                row = rows.get(namespace)
                if row is None:
                    row = rows[namespace] = _row()
                row[_TIME] += elapsed
                field = count(key, result)
                if field is not None:
                    row[field] += 1
            # One round trip for the whole batch: counted once, on its first key's namespace.
            rows[namespaces[0]][_CALLS] = 1
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
            count=count_found,
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
        peek: str | None = None,
    ) -> tuple[dict[str, Any], list[Verdict] | None]:
        """The values of ``keys`` that are present, and the verdicts of ``rates`` — counted only
        if the value under ``rates_if[0]`` (one of ``keys``) is ``rates_if[1]``; ``None`` when
        it was not (or when no rates were asked for). On an unreachable cache: nothing found,
        every rate allowed. ``peek``: one more key read with them, counted as ``peek`` counts
        it, its value (when there) among those found: a warm hit's entry, read in the same
        round trip as the generations its key was made of."""
        values = self.read_values(tuple(keys), peek)
        if not rates or (rates_if is not None and values.get(rates_if[0]) != rates_if[1]):
            return values, None
        return values, self.rate_hits(rates)

    def read_values(self, keys: tuple[str, ...], peek: str | None = None) -> dict[str, Any]:
        """``get_many(keys)`` for the few keys every warm hit reads (the generations), counted
        as ``get_many`` counts them, with what is the same for the same keys (their namespaces,
        the backend's made keys: ``_values``) worked out once; and ``peek``'s value (``read``),
        counted as ``peek`` counts it: a call, neither a hit nor a miss."""
        planned = len(keys) <= MAX_PLANNED_KEYS
        if peek is None:
            return self._run_many(
                keys,
                lambda: self._values(keys, None),
                fallback={},
                count=count_found,
                namespaces=_namespaces_of_read(keys) if planned else None,
                short=True,
            )
        return self._run_many(
            (*keys, peek),
            lambda: self._values(keys, peek),
            fallback={},
            count=count_found,
            namespaces=(*_namespaces_of_read(keys), namespace_of(peek)) if planned else None,
            uncounted=peek,
            short=True,
        )

    def _values(self, keys: tuple[str, ...], peek: str | None) -> dict[str, Any]:
        """Hook: the values of ``keys`` and ``peek`` that are present, uncounted
        (``read_values``)."""
        return super().get_many(keys if peek is None else (*keys, peek))  # type: ignore[misc]

    def rate_hits(self, checks: Sequence[RateCheck]) -> list[Verdict]:
        """Count one request against each rate, if it passes (``rates``); on an unreachable
        cache every request passes (throttles fail open)."""
        rates = self.state.rates
        assert rates is not None, "a backend without its own rate store overrides rate_hits"
        return self._run(
            RATE_NAMESPACE, lambda: rates.hit(list(checks)), fallback=[ALLOWED] * len(checks)
        )

    # Generations ------------------------------------------------------------------------------

    def advance_generations(self, steps: Sequence[Any], now: int) -> list[int] | None:
        """``generations.advance`` in one atomic step for all ``steps`` (``None``: the cache
        could not be reached). ``now``: this process's clock in microseconds, for backends
        without a clock of their own."""
        keys = [generation_key(step.namespace) for step in steps]
        return self._run_many(
            keys,
            lambda: self._advance(steps, now),
            fallback=None,
            count=lambda key, results: _SETS,
        )

    def store(self, key: str, value: Any, timeout: Any, *, release: str | None = None) -> bool:
        """``set`` of ``key`` (``timeout`` as ``set`` takes it) and, when given, the ``delete``
        of the lock ``release`` held while its value was computed, with the writes deferred
        until then (``writes_deferred``): in one round trip where the backend can. True when
        stored."""
        pending = _taken(self)
        keys = [key, *pending, *([] if release is None else [release])]
        return self._run_many(
            keys,
            lambda: self._store(key, value, timeout, release, pending),
            fallback=False,
            count=lambda name, stored: _DELETES if name == release else _SETS,
        )

    def _store(
        self, key: str, value: Any, timeout: Any, release: str | None, pending: Pending
    ) -> bool:
        self._set_each(pending)
        parent = super()
        stored = parent.set(key, value, timeout)
        if release is not None:
            parent.delete(release)
        return stored is not False

    # Writes that wait for the response's store ----------------------------------------------

    @contextlib.contextmanager
    def writes_deferred(self) -> Iterator[None]:
        """Within the block, ``set_later``'s writes wait for the next ``store`` or
        ``store_page`` and go with it (one round trip where the backend can): what a response
        computed on a miss remembers on the way (a list's ids, rows rendered) is stored with
        it. Those still waiting when the block ends are written then."""
        token = _pending.set((self, {}))
        try:
            yield
        finally:
            left = _taken(self)
            _pending.reset(token)
            if left:
                self._run_many(
                    list(left),
                    lambda: self._set_each(left),
                    fallback=None,
                    count=lambda key, _: _SETS,
                )

    def set_later(self, data: Mapping[str, Any], timeout: Any) -> None:
        """``set_many(data, timeout)``, but within ``writes_deferred``: then with the store that
        ends it. (A value not stored yet is computed again by whoever asks meanwhile.)"""
        pending = _waiting(self)
        if pending is None:  # (not within this cache's ``writes_deferred``)
            self.set_many(dict(data), timeout)
            return
        for key, value in data.items():
            pending[key] = (value, timeout)

    def _set_each(self, pending: Pending) -> None:
        """Each of ``pending``'s keys set to its value, with its timeout."""
        parent = super()
        for key, (value, timeout) in pending.items():
            parent.set(key, value, timeout)

    def _advance(self, steps: Sequence[Any], now: int) -> list[int]:
        raise NotImplementedError  # pragma: no cover - each backend has its own

    def store_page(self, page: PageEntry) -> bool:
        """Store a list page's entry, and note that it shows the objects ``page.shows``
        (``keys.object_field``) — so that a change of one of them bumps the page's generation
        (``page.page``, its generation key) — in one atomic step, and only if no change to one
        of them was taken in since the collections' generation was ``page.unless_changed``
        (key, value: read before the page was computed): such a change may have looked for the
        pages of its object before this one noted it shows it. True when stored."""
        pending = _taken(self)
        return self._run_many(
            [page.key, *pending],
            lambda: self._store_page(page, pending),
            fallback=False,
            count=lambda key, stored: _SETS,
        )

    def _store_page(self, page: PageEntry, pending: Pending) -> bool:
        """``store_page``, after the ``pending`` writes (``writes_deferred``)."""
        raise NotImplementedError  # pragma: no cover - each backend has its own

    def add_many(self, data: Mapping[str, Any], timeout: int | None) -> dict[str, Any]:
        """``add`` of each of ``data``'s keys (``timeout``: seconds, ``None`` for no expiry),
        then what each key holds — its value, or the one that was there —, in one round trip
        where the backend can (generations seeded together). A key that holds nothing readable
        is missing from the answer; an unreachable cache answers nothing."""
        return self._run_many(
            data.keys(),
            lambda: self._add_many(data, timeout),
            fallback={},
            count=lambda key, held: _SETS if held.get(key) == data[key] else None,
        )

    def _add_many(self, data: Mapping[str, Any], timeout: int | None) -> dict[str, Any]:
        parent = super()
        for key, value in data.items():
            parent.add(key, value, timeout)
        return parent.get_many(list(data))

    # Service-level operations ----------------------------------------------------------------

    def stats_snapshot(self) -> dict[str, Any]:
        """Raw counters per namespace and the per-minute history, as this backend sums them."""
        return {
            "per_namespace": self.recorder.totals(),
            "history": self.recorder.history(),
            "evictions": self.recorder.evictions,
            "reset_at": self.recorder.reset_at,
        }

    def gauges(self) -> dict[str, Any]:
        """What this process holds now, for Prometheus: ``entries`` and ``bytes`` of a cache in
        this process (locmem; ``None`` where the cache is shared), copies of entries."""
        return {"entries": None, "bytes": None, "copies": self.hot.usage()}

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

    def reachable(self) -> bool:
        """Whether cache calls go through now, as far as this process knows: not while its
        breaker is open or what an outage left behind is not replayed yet (they fail at once)."""
        return True

    def invalidation_missed(self) -> None:
        """Called when a generation bump could not reach the cache (see the Redis backend)."""


def internal_key(logical_key: str, pattern: str) -> bool:
    """Generation, lock and health keys are the cache layer's own: a pattern reaches them only
    when it names them (starts with ``_``)."""
    return logical_key.startswith("_") and not pattern.startswith("_")


_HITS, _MISSES, _SETS, _DELETES, _TIME, _ERRORS, _CALLS = (
    FIELDS.index(name)
    for name in ("hits", "misses", "sets", "deletes", "time_us", "errors", "calls")
)


def remember_plan(plans: dict[tuple[str, ...], _Plan], keys: tuple[str, ...], plan: _Plan) -> _Plan:
    """``plan`` — what is the same each time ``keys`` are read together (a backend's made keys,
    its packed command) — kept in ``plans`` for a set of a few keys, the generations a view
    reads; all forgotten at once past a bound. A page's rows, which each page reads its own
    of, are not kept."""
    if len(keys) <= MAX_PLANNED_KEYS:
        if len(plans) >= _MAX_READ_PLANS:
            plans.clear()
        plans[keys] = plan
    return plan


@functools.lru_cache(maxsize=1024)
def _namespaces_of_read(keys: tuple[str, ...]) -> tuple[str, ...]:
    """``namespaces_of(keys)``, remembered for the sets of keys warm hits read again and again
    (``read_values``)."""
    return tuple(namespaces_of(keys))


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


def count_found(key: str, found: dict) -> int:
    return _HITS if key in found else _MISSES
