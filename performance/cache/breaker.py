"""The circuit breaker around every Redis call (pybreaker), one per process and backend.

State lives in this process's memory (``state``), never in the Redis it guards. Closed → open after
``CACHE_BREAKER_FAIL_MAX`` consecutive outage errors; while open, cache calls fail at once (a
read is a miss, a write is skipped); after ``CACHE_BREAKER_RESET_TIMEOUT`` seconds one trial call
decides between closed and open again.

Opening also marks that invalidations may have been missed: until the durable invalidations are
replayed (``performance.cache.outbox``), this process reads nothing from the cache.

Two departures from pybreaker's own ``call``: the guarded calls run concurrently (pybreaker holds
its lock for the whole call, so every thread would wait for the one Redis call in flight,
danielfm/pybreaker#55), and the trial call runs in a background thread, so no request waits for
a socket timeout to learn that the cache is still down.
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

CircuitBreakerError = pybreaker.CircuitBreakerError


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
            self.guard.opened_monotonic = time.monotonic()
            self.guard.needs_replay = True
            logger.warning("cache circuit breaker opened: serving from the database")
        elif new == pybreaker.STATE_CLOSED:
            logger.warning("cache circuit breaker closed: the cache is back")
        else:
            logger.info("cache circuit breaker half-open: trying the cache again")


class _Breaker(pybreaker.CircuitBreaker):
    """pybreaker without its lock around the guarded call; state changes keep their own lock."""

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.state.call(func, *args, **kwargs)


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
        self.opened_monotonic = 0.0
        #: The trial call (a PING), set by the backend.
        self.probe: Callable[[], Any] | None = None
        self._trial: threading.Thread | None = None
        self._trial_lock = threading.Lock()
        self.breaker = _Breaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            listeners=[_Listener(self)],
            # Programming errors (a ValueError from incr on a missing key) are not outages.
            exclude=[exclude],
            name=name,
        )

    @property
    def closed(self) -> bool:
        return self.breaker.current_state == pybreaker.STATE_CLOSED

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` while the breaker is closed; otherwise fail at once (``CircuitBreakerError``)
        and, once the reset timeout has passed, try the cache again in the background."""
        if not self.closed:
            if self.probe is None:  # nothing to try in the background: this call is the trial
                return self.breaker.call(fn)
            self.try_in_background()
            raise CircuitBreakerError("circuit breaker open: serving from the database")
        return self.breaker.call(fn)

    def try_in_background(self) -> None:
        """Start the trial call in a thread once the reset timeout has passed (one at a time)."""
        if self.probe is None:
            return
        if time.monotonic() - self.opened_monotonic < self.breaker.reset_timeout:
            return
        with self._trial_lock:
            if self._trial is not None and self._trial.is_alive():
                return
            self._trial = threading.Thread(
                target=self._trial_call, name="cache-breaker-trial", daemon=True
            )
            self._trial.start()

    def _trial_call(self) -> None:
        probe = self.probe
        try:
            # Open and past its reset timeout: pybreaker moves to half-open and makes this the
            # one trial call, which closes the breaker or opens it for another reset timeout.
            self.breaker.call(probe)
        except Exception as exc:
            logger.debug("cache trial call failed: %s", type(exc).__name__)

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


def make_guard(
    name: str,
    *,
    is_outage: Callable[[BaseException], bool],
    probe: Callable[[], Any] | None = None,
) -> Guard:
    """A guard for one Redis location, from the settings (one per process: ``state``)."""
    guard = Guard(
        name,
        fail_max=getattr(settings, "CACHE_BREAKER_FAIL_MAX", 3),
        reset_timeout=getattr(settings, "CACHE_BREAKER_RESET_TIMEOUT", 5.0),
        exclude=lambda exc: not is_outage(exc),
    )
    guard.probe = probe
    return guard
