"""Request rates for the throttles: DRF's sliding window, counted in one atomic step.

DRF's ``SimpleRateThrottle`` reads a client's history of timestamps, drops those older than the
window, refuses when ``limit`` remain, and otherwise stores the history with the new request:
two round trips that race each other. Here the same decision is one operation of the backend,
for any number of throttles at once (``RateCheck`` in, ``Verdict`` out): a Lua script over a
sorted set on Redis (``redis``), a deque under a lock in process memory on locmem (``RateStore``),
kept apart from the LRU of cached entries so that filling the cache never resets a budget.

Because it is one operation, the read path sends it in the same round trip as the generations
(docs/design.md, "A cached GET"): throttling a warm hit costs no round trip of its own.

A check with a limit of 0 (``RateCheck.peek``) counts nothing and stores nothing: its verdict
says how many requests the window holds (the login lockout asks before an attempt, and counts
failures after it). A history is kept only while it matters: a refused request on a client
with no history, or a peek, leaves no key behind, and a history whose window has passed goes
before any live one when the store is full.
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

    @classmethod
    def peek(cls, key: str, duration: float, now: float) -> RateCheck:
        """How many requests ``key``'s window holds, counting nothing (a limit of 0 refuses)."""
        return cls(key, 0, duration, now)


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
    newest last, bounded in keys. When full, the histories whose window has passed go first
    (looked for at most once a second), then the least recently used."""

    #: Seconds between two searches for histories whose window has passed.
    sweep_interval = 1.0

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._histories: OrderedDict[str, deque[float]] = OrderedDict()
        #: When each history's newest request leaves its window.
        self._until: dict[str, float] = {}
        self._swept = float("-inf")
        self._lock = threading.Lock()

    def hit(self, checks: list[RateCheck]) -> list[Verdict]:
        with self._lock:
            return [self._hit(check) for check in checks]

    def _hit(self, check: RateCheck) -> Verdict:
        history = self._histories.get(check.key)
        if history is not None:
            while history and history[0] <= check.now - check.duration:
                history.popleft()
            if history:
                self._histories.move_to_end(check.key)
            else:
                self._forget(check.key)
                history = None
        if history is None:
            if check.limit <= 0:
                return Verdict(False, 0, None)  # a peek, or a rate of none: nothing to keep
            self._make_room(check.now)
            history = self._histories[check.key] = deque()
        if len(history) >= check.limit:
            return Verdict(False, len(history), history[0])
        history.append(check.now)
        self._until[check.key] = check.now + check.duration
        return Verdict(True, len(history), history[0])

    def _forget(self, key: str) -> None:
        del self._histories[key]
        self._until.pop(key, None)

    def _make_room(self, now: float) -> None:
        """Room for one more history: passed windows out, then the least recently used."""
        if len(self._histories) < self.max_keys:
            return
        if now - self._swept >= self.sweep_interval or now < self._swept:
            self._swept = now
            for key in [key for key, until in self._until.items() if until <= now]:
                self._forget(key)
        while len(self._histories) >= self.max_keys:
            key, _ = self._histories.popitem(last=False)
            self._until.pop(key, None)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._histories)

    def clear(self) -> None:
        with self._lock:
            self._histories.clear()
            self._until.clear()

    def __len__(self) -> int:
        return len(self._histories)
