"""The circuit breaker around every Redis call (pybreaker), one per process and backend.

State lives in this process's memory, never in the Redis it guards. Closed → open after
``CACHE_BREAKER_FAIL_MAX`` consecutive outage errors; while open, cache calls fail at once (a
read is a miss, a write is skipped); after ``CACHE_BREAKER_RESET_TIMEOUT`` seconds one trial call
decides between closed and open again.

Opening also marks that invalidations may have been missed: until the durable invalidations are
replayed (``performance.cache.outbox``), this process reads nothing from the cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pybreaker
from django.conf import settings

logger = logging.getLogger("performance.cache.breaker")


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else None
        new = new_state.name
        if old == new:
            return
        self.guard.last_change = time.time()
        if new == pybreaker.STATE_OPEN:
            self.guard.opened += 1
            self.guard.needs_replay = True
            logger.warning("cache circuit breaker opened: serving from the database")
        elif new == pybreaker.STATE_CLOSED:
            logger.warning("cache circuit breaker closed: the cache is back")
        else:
            logger.info("cache circuit breaker half-open: trying the cache again")


class Guard:
    """A pybreaker ``CircuitBreaker`` plus what the console and the outbox need to know."""

    def __init__(
        self,
        name: str,
        *,
        fail_max: int,
        reset_timeout: float,
        exclude: Callable[[BaseException], bool],
    ) -> None:
        self.opened = 0
        self.last_change: float | None = None
        self.needs_replay = False
        self.replay_lock = threading.Lock()
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            listeners=[_Listener(self)],
            # Programming errors (a ValueError from incr on a missing key) are not outages.
            exclude=[exclude],
            name=name,
        )

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.breaker.call(fn)

    def state(self) -> dict[str, Any]:
        return {
            "state": self.breaker.current_state,
            "failures": self.breaker.fail_counter,
            "opened": self.opened,
            "last_change": self.last_change,
            "fail_max": self.breaker.fail_max,
            "reset_timeout": self.breaker.reset_timeout,
            "needs_replay": self.needs_replay,
        }


_guards: dict[str, Guard] = {}
_guards_lock = threading.Lock()


def guard_for(name: str, *, is_outage: Callable[[BaseException], bool]) -> Guard:
    """The process-wide guard for one Redis location (Django makes a backend per thread)."""
    with _guards_lock:
        if name not in _guards:
            guard = Guard(
                name,
                fail_max=getattr(settings, "CACHE_BREAKER_FAIL_MAX", 3),
                reset_timeout=getattr(settings, "CACHE_BREAKER_RESET_TIMEOUT", 5.0),
                exclude=lambda exc: not is_outage(exc),
            )
            _guards[name] = guard
        return _guards[name]


def reset_all() -> None:
    """Forget every guard (tests, and settings changes)."""
    with _guards_lock:
        _guards.clear()


CircuitBreakerError = pybreaker.CircuitBreakerError
