"""Request rates for the throttles: DRF's sliding window, counted in one atomic step.

DRF's ``SimpleRateThrottle`` reads a client's history of timestamps, drops those older than the
window, refuses when ``limit`` remain, and otherwise stores the history with the new request:
two round trips that race each other. Here the same decision is one operation of the backend,
for any number of throttles at once (``RateCheck`` in, ``Verdict`` out): a Lua script over a
sorted set on Redis (``redis``), a deque under a lock in process memory on locmem (``RateStore``),
kept apart from the LRU of cached entries so that filling the cache never resets a budget.

Because it is one operation, the read path sends it in the same round trip as the generations
(docs/design.md, "A cached GET"): throttling a warm hit costs no round trip of its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RateCheck:
    """One throttle's question: may one more request under ``key`` pass at ``now``?"""

    key: str
    limit: int
    duration: float
    now: float


@dataclass(frozen=True)
class Verdict:
    """The answer, and what DRF's ``wait()`` needs: the requests in the window (this one
    included when it passed) and the oldest of them."""

    allowed: bool
    count: int
    oldest: float | None

    def wait(self, check: RateCheck) -> float:
        """Seconds until a request would pass, as DRF's ``SimpleRateThrottle.wait`` computes it:
        the rest of the window, spread over the requests still available."""
        remaining = check.duration - (check.now - self.oldest) if self.oldest else check.duration
        available = check.limit - self.count + 1
        if available <= 0:  # a rate lowered while the history was kept: the whole remainder
            return remaining
        return remaining / available


#: What an unreachable cache answers: throttles fail open.
ALLOWED = Verdict(True, 0, None)


class RateStore:
    """Histories in process memory (the local-memory backend): one deque of timestamps per key,
    newest last, bounded in keys (least recently used first out)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._histories: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, checks: list[RateCheck]) -> list[Verdict]:
        with self._lock:
            return [self._hit(check) for check in checks]

    def _hit(self, check: RateCheck) -> Verdict:
        history = self._histories.get(check.key)
        if history is None:
            history = self._histories[check.key] = deque()
            while len(self._histories) > self.max_keys:
                self._histories.popitem(last=False)
        else:
            self._histories.move_to_end(check.key)
        while history and history[0] <= check.now - check.duration:
            history.popleft()
        if len(history) >= check.limit:
            return Verdict(False, len(history), history[0])
        history.append(check.now)
        return Verdict(True, len(history), history[0])

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._histories)

    def clear(self) -> None:
        with self._lock:
            self._histories.clear()

    def __len__(self) -> int:
        return len(self._histories)
