"""What one cache keeps in each process: one object, shared by Django's per-thread backends.

Django builds a backend instance per thread; statistics, the circuit breaker, the decoded token
lookups, the copies of entries and (on locmem) the request rates belong to the process. They
live together in one ``CacheState`` per cache (backend kind, location, key prefix), created on
first use, so that no second registry keyed the same way can drift from the first.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from .breaker import Guard
from .hot import HotEntries
from .rates import RateStore
from .stats import StatsRecorder
from .tokens import TokenMemo


@dataclass(eq=False)
class CacheState:
    recorder: StatsRecorder = field(default_factory=StatsRecorder)
    tokens: TokenMemo = field(default_factory=TokenMemo)
    #: Copies of entries for warm hits: only where they save a round trip (Redis).
    copies: HotEntries | None = None
    #: Request rates, where the backend keeps them in process memory (locmem).
    rates: RateStore | None = None
    #: The circuit breaker, where the backend can be unreachable (Redis).
    guard: Guard | None = None
    #: When this process last published its counters (Redis).
    last_flush: float = 0.0
    flush_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Makes each step of ``generations.advance`` atomic where the process owns the cache.
    generation_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Redis: who the server was when this process last looked (``run_id``, ``master_replid``),
    #: and whether it has changed since every generation was last re-seeded (``sync``).
    identity: tuple[str, str] | None = None
    reseed: bool = False
    #: What the early read settled for requests answered from the cache before, by request
    #: (``responses.Settled``): a request seen before is answered again after its one read.
    settled: dict[tuple, Any] = field(default_factory=dict)
    #: The highest generation this process has seen of each namespace (``generations``).
    highest: dict[str, int] = field(default_factory=dict)
    #: Where the process owns the cache (locmem): which pages show each object, by namespace
    #: (``keys.listings_key`` on Redis).
    listings: dict[str, dict[str, dict[str, None]]] = field(default_factory=dict)
    #: Where the process owns the cache (locmem): the latest changes in place, by namespace,
    #: newest first (``keys.recent_key`` on Redis).
    recent: dict[str, deque[tuple[tuple[int, object], frozenset[str]]]] = field(
        default_factory=dict
    )


_states: dict[tuple[str, Hashable, str], CacheState] = {}
_lock = threading.Lock()


def state_for(
    kind: str, location: Hashable | list, prefix: str, make: Callable[[], CacheState]
) -> CacheState:
    """The process's state of one cache, made by ``make`` the first time it is asked for.

    ``location`` is what the backend was given: a string, or the list django-redis takes for a
    primary and its replicas (its order matters: the first is the primary).
    """
    key = (kind, location_key(location), prefix)
    with _lock:
        state = _states.get(key)
        if state is None:
            state = _states[key] = make()
        return state


def location_key(location: Hashable | list) -> Hashable:
    """``location`` as a dictionary key: lists (and lists inside tuples) become tuples."""
    if isinstance(location, list | tuple):
        return tuple(location_key(part) for part in location)
    return location


@receiver(setting_changed)
def _forget_settled(**kwargs: Any) -> None:
    """What the early read settled for each request read the settings (renderers, throttles
    and their rates, hosts): decided again."""
    with _lock:
        for state in _states.values():
            state.settled.clear()


def reset_all() -> None:
    """Forget every cache's state, as a new process would start (tests, settings changes)."""
    with _lock:
        _states.clear()
