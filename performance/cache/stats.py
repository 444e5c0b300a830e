"""Per-namespace cache statistics: cheap counters in each process, summed where they must be.

Every instrumented operation records into a process-local ``StatsRecorder`` under a lock (a few
dictionary updates). With locmem the process *is* the whole cache, so its counters are the truth.
With Redis every process flushes what it counted since its last flush into one Redis hash, at most
about once a second and in one round trip, so the console's figures are the fleet's.

What a namespace's hits and misses mean depends on what it holds (docs/design.md, "Invariants",
7): in a namespace that holds responses (``register_namespace(responses=True)``) they are the
responses themselves — one per cacheable request, a hit when it was answered from the cache
(``X-Cache: HIT``), a miss when it was computed (``MISS``) — whatever lookups it took to decide;
elsewhere (token lookups, generations...) they are lookups. The per-minute history counts HTTP
requests and those responses, for the console's chart.

Prometheus reads ``lifetime()``: this process's own counters, which a reset of the statistics
does not take back, so that they only ever go up and ``sum()`` over processes is the fleet's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Container, Iterable, Mapping, Sequence

#: ``calls`` counts round trips to the backend (a get_many is one call however many keys).
FIELDS = ("hits", "misses", "sets", "deletes", "time_us", "errors", "calls")
#: What the per-minute history counts: HTTP requests, and responses answered from the cache
#: (``hits``) or computed (``misses``).
MINUTE_FIELDS = ("requests", "hits", "misses")
#: Minutes of per-minute history kept for the console's chart.
HISTORY_MINUTES = 60


_INDEX = {name: n for n, name in enumerate(FIELDS)}
_HITS, _MISSES, _TIME, _CALLS = (_INDEX[name] for name in ("hits", "misses", "time_us", "calls"))
_MINUTE_INDEX = {name: n for n, name in enumerate(MINUTE_FIELDS)}


class StatsRecorder:
    """Thread-safe counters per namespace, with a pending part not yet flushed elsewhere.

    Every cache operation records here, so an operation adds its row (ordered like ``FIELDS``)
    to one list, under one lock: the pending counts. What was drained (published to Redis) is
    kept apart; the process's totals are the two added up when asked for.
    """

    #: Seconds since the epoch; tests replace it to set the clock.
    clock: Callable[[], float] = staticmethod(time.time)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[int]] = {}
        self._drained: dict[str, list[int]] = {}
        self._pending_minutes: dict[int, list[int]] = {}
        self._drained_minutes: dict[int, list[int]] = {}
        #: What was counted before the last reset (for ``lifetime``).
        self._before_reset: dict[str, list[int]] = {}
        self.evictions = 0
        self.evictions_before_reset = 0
        self.reset_at = self.clock()

    def record(self, namespace: str, **fields: int) -> None:
        self.record_many(((namespace, fields),))

    def record_many(self, items: Iterable[tuple[str, Mapping[str, int]]]) -> None:
        """Several records under one acquisition of the lock (a batch operation's keys)."""
        rows = []
        for namespace, fields in items:
            row = [0] * len(FIELDS)
            for name, value in fields.items():
                row[_INDEX[name]] = value
            rows.append((namespace, row))
        self.add_rows(rows)

    def add_rows(self, rows: Iterable[tuple[str, list[int]]]) -> None:
        """Add counter rows (ordered like ``FIELDS``), each to its namespace."""
        with self._lock:
            pending = self._pending
            for namespace, row in rows:
                waiting = pending.get(namespace)
                if waiting is None:
                    pending[namespace] = list(row)
                else:
                    for n, value in enumerate(row):
                        if value:
                            waiting[n] += value

    def add_read(
        self,
        keys: Sequence[str],
        namespaces: Sequence[str],
        found: Container[str],
        elapsed_us: int,
        uncounted: str | None = None,
    ) -> None:
        """One read of ``keys`` (of ``namespaces``, key by key): a hit for each key in
        ``found``, a miss for each other but ``uncounted``, ``elapsed_us`` of time each, and
        one call, on the first key's namespace."""
        with self._lock:
            pending = self._pending
            for key, namespace in zip(keys, namespaces, strict=True):
                row = pending.get(namespace)
                if row is None:
                    row = pending[namespace] = [0] * len(FIELDS)
                row[_TIME] += elapsed_us
                if key == uncounted:
                    continue
                row[_HITS if key in found else _MISSES] += 1
            pending[namespaces[0]][_CALLS] += 1

    def record_response(self, namespace: str, *, hit: bool) -> None:
        """One cacheable request of ``namespace``: answered from the cache, or computed."""
        field = _HITS if hit else _MISSES
        with self._lock:
            waiting = self._pending.get(namespace)
            if waiting is None:
                waiting = self._pending[namespace] = [0] * len(FIELDS)
            waiting[field] += 1
            self._minute_bucket()[1 if hit else 2] += 1

    def record_request(self) -> None:
        """One HTTP request, for the chart of requests per minute."""
        with self._lock:
            self._minute_bucket()[0] += 1

    def _minute_bucket(self) -> list[int]:
        minute = int(self.clock() // 60)
        bucket = self._pending_minutes.get(minute)
        if bucket is None:  # a new minute: the oldest ones go
            bucket = self._pending_minutes[minute] = [0] * len(MINUTE_FIELDS)
            self._forget_old_minutes()
        return bucket

    def record_evictions(self, count: int) -> None:
        with self._lock:
            self.evictions += count

    def totals(self) -> dict[str, dict[str, int]]:
        """Everything this process counted since the last reset."""
        with self._lock:
            return self._totals()

    def _totals(self) -> dict[str, dict[str, int]]:
        names = {*self._pending, *self._drained}
        zero = [0] * len(FIELDS)
        return {
            ns: {
                name: a + b
                for name, a, b in zip(
                    FIELDS, self._pending.get(ns, zero), self._drained.get(ns, zero), strict=True
                )
            }
            for ns in names
        }

    def lifetime(self) -> dict[str, dict[str, int]]:
        """Everything this process counted since it started, resets of the statistics
        included: counters that never go down, for Prometheus."""
        totals = self.totals()
        with self._lock:
            before = {ns: list(row) for ns, row in self._before_reset.items()}
        for ns, row in before.items():
            into = totals.setdefault(ns, dict.fromkeys(FIELDS, 0))
            for name, value in zip(FIELDS, row, strict=True):
                into[name] += value
        return totals

    def history(self) -> dict[int, dict[str, int]]:
        """HTTP requests and responses per minute (``MINUTE_FIELDS``), the last
        ``HISTORY_MINUTES``."""
        zero = [0] * len(MINUTE_FIELDS)
        with self._lock:
            self._forget_old_minutes()
            minutes = {*self._pending_minutes, *self._drained_minutes}
            return {
                m: {
                    name: a + b
                    for name, a, b in zip(
                        MINUTE_FIELDS,
                        self._pending_minutes.get(m, zero),
                        self._drained_minutes.get(m, zero),
                        strict=True,
                    )
                }
                for m in minutes
            }

    def drain(self) -> tuple[dict[str, Counter[str]], dict[int, Counter[str]]]:
        """Take what was counted since the last drain (for flushing to a shared store)."""
        with self._lock:
            pending, minutes = self._pending, self._pending_minutes
            self._pending, self._pending_minutes = {}, {}
            _add_into(self._drained, pending)
            _add_into(self._drained_minutes, minutes)
            self._forget_old_minutes()
        return (
            {ns: _counter(zip(FIELDS, row, strict=True)) for ns, row in pending.items()},
            {m: _counter(zip(MINUTE_FIELDS, b, strict=True)) for m, b in minutes.items()},
        )

    def restore(
        self, pending: Mapping[str, Mapping[str, int]], minutes: Mapping[int, Mapping[str, int]]
    ) -> None:
        """Put back a drain whose flush failed, so nothing counted is lost (nor counted twice)."""
        with self._lock:
            for ns, counter in pending.items():
                waiting = self._pending.setdefault(ns, [0] * len(FIELDS))
                drained = self._drained.setdefault(ns, [0] * len(FIELDS))
                for name, value in counter.items():
                    waiting[_INDEX[name]] += value
                    drained[_INDEX[name]] -= value
            for minute, counter in minutes.items():
                waiting = self._pending_minutes.setdefault(minute, [0] * len(MINUTE_FIELDS))
                drained = self._drained_minutes.setdefault(minute, [0] * len(MINUTE_FIELDS))
                for name, value in counter.items():
                    waiting[_MINUTE_INDEX[name]] += value
                    drained[_MINUTE_INDEX[name]] -= value

    def reset(self) -> None:
        """Zero the statistics; what Prometheus reads (``lifetime``) keeps going up."""
        with self._lock:
            for ns, counts in self._totals().items():
                into = self._before_reset.setdefault(ns, [0] * len(FIELDS))
                for n, name in enumerate(FIELDS):
                    into[n] += counts[name]
            self._pending.clear()
            self._drained.clear()
            self._pending_minutes.clear()
            self._drained_minutes.clear()
            self.evictions_before_reset += self.evictions
            self.evictions = 0
            self.reset_at = self.clock()

    def _forget_old_minutes(self) -> None:
        for buckets in (self._pending_minutes, self._drained_minutes):
            if len(buckets) > HISTORY_MINUTES + 5:
                for old in sorted(buckets)[: -HISTORY_MINUTES - 1]:
                    del buckets[old]


def _add_into(target: dict, source: Mapping) -> None:
    for key, row in source.items():
        into = target.get(key)
        if into is None:
            target[key] = list(row)
        else:
            for n, value in enumerate(row):
                into[n] += value


def _counter(pairs: Iterable[tuple[str, int]]) -> Counter[str]:
    return Counter({name: value for name, value in pairs if value})


def summarise(
    per_namespace: Mapping[str, Mapping[str, int]], kinds: Mapping[str, str] | None = None
) -> dict[str, object]:
    """Add hit rates to raw per-namespace counters, and sum them apart: the ``responses``
    (namespaces of kind ``responses``: their hits and misses are responses), the rest
    (``bookkeeping``: lookups of token entries, generations, locks...) and every counter of
    every namespace (``totals``, without a hit rate: responses and lookups are not one thing
    to rate). ``kinds``: each namespace's kind (``namespaces.kind_of``)."""
    kinds = kinds or {}
    namespaces: dict[str, dict[str, object]] = {}
    total: Counter[str] = Counter()
    parts: dict[str, Counter[str]] = {"responses": Counter(), "bookkeeping": Counter()}
    for ns in sorted(per_namespace):
        counts = {f: int(per_namespace[ns].get(f, 0)) for f in FIELDS}
        kind = kinds.get(ns, "bookkeeping")
        total.update(counts)
        parts["responses" if kind == "responses" else "bookkeeping"].update(counts)
        namespaces[ns] = {
            **counts,
            "hit_rate": hit_rate(counts["hits"], counts["misses"]),
            "kind": kind,
        }
    summary: dict[str, object] = {"namespaces": namespaces, "totals": {f: total[f] for f in FIELDS}}
    for name, counts in parts.items():
        summary[name] = {
            "hits": counts["hits"],
            "misses": counts["misses"],
            "hit_rate": hit_rate(counts["hits"], counts["misses"]),
        }
    return summary


def hit_rate(hits: int, misses: int) -> float | None:
    lookups = hits + misses
    return round(hits / lookups, 4) if lookups else None


def merge(*sources: Iterable[tuple[str, Mapping[str, int]]]) -> dict[str, Counter[str]]:
    merged: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for source in sources:
        for ns, counts in source:
            merged[ns].update({k: int(v) for k, v in counts.items()})
    return dict(merged)
