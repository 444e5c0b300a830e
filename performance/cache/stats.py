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


class StatsRecorder:
    """Thread-safe counters per namespace, with a pending part not yet flushed elsewhere."""

    #: Seconds since the epoch; tests replace it to set the clock.
    clock: Callable[[], float] = staticmethod(time.time)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._pending: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._minutes: dict[int, Counter[str]] = {}
        self._pending_minutes: defaultdict[int, Counter[str]] = defaultdict(Counter)
        self.evictions = 0
        self.reset_at = self.clock()

    def record(self, namespace: str, **fields: int) -> None:
        self.record_many(((namespace, fields),))

    def record_many(self, items: Iterable[tuple[str, dict[str, int]]]) -> None:
        """Several records under one acquisition of the lock (a batch operation's keys)."""
        minute = int(self.clock() // 60)
        hits = misses = 0
        with self._lock:
            totals, pending = self._totals, self._pending
            for namespace, fields in items:
                total, waiting = totals[namespace], pending[namespace]
                for name, value in fields.items():
                    if value:
                        total[name] += value
                        waiting[name] += value
                hits += fields.get("hits", 0)
                misses += fields.get("misses", 0)
            if hits or misses:
                bucket = self._minutes.get(minute)
                if bucket is None:
                    bucket = self._minutes[minute] = Counter()
                    if len(self._minutes) > HISTORY_MINUTES + 5:
                        for old in sorted(self._minutes)[: -HISTORY_MINUTES - 1]:
                            del self._minutes[old]
                bucket["hits"] += hits
                bucket["misses"] += misses
                waiting_minute = self._pending_minutes[minute]
                waiting_minute["hits"] += hits
                waiting_minute["misses"] += misses

    def record_evictions(self, count: int) -> None:
        with self._lock:
            self.evictions += count

    def totals(self) -> dict[str, dict[str, int]]:
        """Everything this process counted since the last reset."""
        with self._lock:
            return {ns: {f: c[f] for f in FIELDS} for ns, c in self._totals.items()}

    def history(self) -> dict[int, dict[str, int]]:
        with self._lock:
            return {m: dict(c) for m, c in self._minutes.items()}

    def drain(self) -> tuple[dict[str, Counter[str]], dict[int, Counter[str]]]:
        """Take what was counted since the last drain (for flushing to a shared store)."""
        with self._lock:
            pending, minutes = self._pending, self._pending_minutes
            self._pending = defaultdict(Counter)
            self._pending_minutes = defaultdict(Counter)
        return dict(pending), dict(minutes)

    def restore(
        self, pending: Mapping[str, Counter[str]], minutes: Mapping[int, Counter[str]]
    ) -> None:
        """Put back a drain whose flush failed, so nothing counted is lost."""
        with self._lock:
            for ns, counter in pending.items():
                self._pending[ns].update(counter)
            for minute, counter in minutes.items():
                self._pending_minutes[minute].update(counter)

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()
            self._pending.clear()
            self._minutes.clear()
            self._pending_minutes.clear()
            self.evictions = 0
            self.reset_at = self.clock()


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
