"""The circuit breaker around every Redis call (pybreaker), one per process and backend.

State lives in this process's memory (``state``), never in the Redis it guards. Closed → open after
``CACHE_BREAKER_FAIL_MAX`` consecutive outage errors; while open, cache calls fail at once (a
read is a miss, a write is skipped); after ``CACHE_BREAKER_RESET_TIMEOUT`` seconds one trial call
decides between closed and open again.

Opening also marks that invalidations may have been missed: until the database's versions have
been applied again (``performance.cache.sync``), this process reads nothing from the cache.

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
_local = threading.local()


class CacheUnavailable(Exception):
    """The cache could not be reached (or refused): the caller falls back as if it missed."""


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
    """A pybreaker ``CircuitBreaker`` plus what the console and the sweep need to know, and
    the one place that decides what a cache call's error means (``run``)."""

    #: Seconds a call waits for another thread's replay of missed invalidations.
    replay_wait = 0.5

    def __init__(
        self,
        name: str,
        *,
        fail_max: int,
        reset_timeout: float,
        exclude: Callable[[BaseException], bool],
        is_outage: Callable[[BaseException], bool] = lambda exc: False,
        replay: Callable[[], bool] | None = None,
    ) -> None:
        #: Errors that mean the cache is not answering (or refuses): the call fails open.
        self.is_outage = is_outage
        #: Applies the invalidations missed while the cache was away; True when all went.
        self.replay = replay
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

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run one cache call: through the breaker, after replaying what an outage left behind;
        an outage (or a refusal) raises ``CacheUnavailable``, any other error propagates."""
        if self.needs_replay and not getattr(_local, "replaying", False):
            if not self.closed:
                # Fail at once, without the query a replay costs: its bumps cannot go through
                # until the trial call (made in the background) has closed the breaker.
                self.try_in_background()
                raise CacheUnavailable("circuit breaker open")
            self._replay_missed()
        try:
            return self.call(fn)
        except CircuitBreakerError as exc:
            raise CacheUnavailable("circuit breaker open") from exc
        except Exception as exc:
            if self.is_outage(exc):
                logger.debug("cache unavailable: %s", type(exc).__name__)
                raise CacheUnavailable(str(exc)) from exc
            raise

    def _replay_missed(self) -> None:
        """After an outage, apply the invalidations left behind before using the cache again.

        Until that succeeds, this process treats the cache as unavailable, so nothing written
        while it was unreachable can be hidden by an entry stored before.
        """
        # Another thread may be replaying: wait for it briefly rather than fail, so that a
        # write's own bump, made meanwhile, is not missed in its turn.
        if not self.replay_lock.acquire(timeout=self.replay_wait):
            raise CacheUnavailable("replaying missed invalidations")
        if not self.needs_replay:  # the other thread has replayed them
            self.replay_lock.release()
            return
        _local.replaying = True
        try:
            # The bumps go through the breaker: while it is open they fail at once; once its
            # reset timeout has passed, the first one is the trial call.
            if self.replay is not None and self.replay():
                self.needs_replay = False
            else:
                raise CacheUnavailable("missed invalidations not yet replayed")
        finally:
            _local.replaying = False
            self.replay_lock.release()

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
    trips: Callable[[BaseException], bool],
    is_outage: Callable[[BaseException], bool],
    probe: Callable[[], Any] | None = None,
    replay: Callable[[], bool] | None = None,
) -> Guard:
    """A guard for one Redis location, from the settings (one per process: ``state``).

    ``trips``: the errors that count towards opening the breaker (the cache does not answer);
    ``is_outage``: those that fail the call open (``trips``, and refusals of a cache that
    answers)."""
    guard = Guard(
        name,
        fail_max=getattr(settings, "CACHE_BREAKER_FAIL_MAX", 3),
        reset_timeout=getattr(settings, "CACHE_BREAKER_RESET_TIMEOUT", 5.0),
        exclude=lambda exc: not trips(exc),
        is_outage=is_outage,
        replay=replay,
    )
    guard.probe = probe
    return guard
