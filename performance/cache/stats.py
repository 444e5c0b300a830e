"""Per-namespace cache statistics: cheap counters in each process, summed where they must be.

Every instrumented operation records into a process-local ``StatsRecorder`` under a lock (a few
dictionary updates). With locmem the process *is* the whole cache, so its counters are the truth.
With Redis every process flushes what it counted since its last flush into one Redis hash, at most
about once a second and in one round trip, so the figures are the fleet's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping

#: ``calls`` counts round trips to the backend (a get_many is one call however many keys).
FIELDS = ("hits", "misses", "sets", "deletes", "time_us", "errors", "calls")
#: Minutes of per-minute history kept for the console's chart.
HISTORY_MINUTES = 60


_INDEX = {name: n for n, name in enumerate(FIELDS)}
_HITS, _MISSES = _INDEX["hits"], _INDEX["misses"]


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
        self.evictions = 0
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
        hits = misses = 0
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
                hits += row[_HITS]
                misses += row[_MISSES]
            if hits or misses:
                minute = int(self.clock() // 60)
                bucket = self._pending_minutes.get(minute)
                if bucket is None:  # a new minute: the oldest ones go
                    bucket = self._pending_minutes[minute] = [0, 0]
                    self._forget_old_minutes()
                bucket[0] += hits
                bucket[1] += misses

    def record_evictions(self, count: int) -> None:
        with self._lock:
            self.evictions += count

    def totals(self) -> dict[str, dict[str, int]]:
        """Everything this process counted since the last reset."""
        with self._lock:
            names = {*self._pending, *self._drained}
            zero = [0] * len(FIELDS)
            return {
                ns: {
                    name: a + b
                    for name, a, b in zip(
                        FIELDS,
                        self._pending.get(ns, zero),
                        self._drained.get(ns, zero),
                        strict=True,
                    )
                }
                for ns in names
            }

    def history(self) -> dict[int, dict[str, int]]:
        """Hits and misses per minute, for the last ``HISTORY_MINUTES``."""
        with self._lock:
            self._forget_old_minutes()
            minutes = {*self._pending_minutes, *self._drained_minutes}
            return {
                m: {
                    "hits": self._pending_minutes.get(m, (0, 0))[0]
                    + self._drained_minutes.get(m, (0, 0))[0],
                    "misses": self._pending_minutes.get(m, (0, 0))[1]
                    + self._drained_minutes.get(m, (0, 0))[1],
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
            {m: _counter((("hits", b[0]), ("misses", b[1]))) for m, b in minutes.items()},
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
                waiting = self._pending_minutes.setdefault(minute, [0, 0])
                drained = self._drained_minutes.setdefault(minute, [0, 0])
                for n, name in enumerate(("hits", "misses")):
                    waiting[n] += counter.get(name, 0)
                    drained[n] -= counter.get(name, 0)

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
            self._drained.clear()
            self._pending_minutes.clear()
            self._drained_minutes.clear()
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


def summarise(per_namespace: Mapping[str, Mapping[str, int]]) -> dict[str, object]:
    """Add hit rates and totals to raw per-namespace counters."""
    namespaces: dict[str, dict[str, object]] = {}
    total: Counter[str] = Counter()
    for ns in sorted(per_namespace):
        counts = {f: int(per_namespace[ns].get(f, 0)) for f in FIELDS}
        total.update(counts)
        namespaces[ns] = {**counts, "hit_rate": hit_rate(counts["hits"], counts["misses"])}
    totals = {f: total[f] for f in FIELDS}
    totals["hit_rate"] = hit_rate(total["hits"], total["misses"])
    return {"namespaces": namespaces, "totals": totals}


def hit_rate(hits: int, misses: int) -> float | None:
    lookups = hits + misses
    return round(hits / lookups, 4) if lookups else None


def merge(*sources: Iterable[tuple[str, Mapping[str, int]]]) -> dict[str, Counter[str]]:
    merged: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for source in sources:
        for ns, counts in source:
            merged[ns].update({k: int(v) for k, v in counts.items()})
    return dict(merged)
