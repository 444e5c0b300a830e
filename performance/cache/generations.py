"""Generation counters: O(1) invalidation of a whole namespace.

Every cached entry's key embeds its namespace's generation, read *before* the data is computed.
A write bumps the generation, which makes every older key unreachable at once, without scanning;
a slow reader that raced a write stores its body under the dead generation, where nobody looks.

Generations never repeat: a missing generation (evicted, flushed, Redis restarted empty) is
seeded from the clock in microseconds, which is larger than any value the previous counter
reached unless it was bumped more than once per microsecond since its own seed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.core.cache import caches

from .keys import GENERATION_NAMESPACE, generation_key

logger = logging.getLogger(__name__)

__all__ = ["GENERATION_NAMESPACE", "bump_generation", "generation_key", "get_generation"]

#: Seconds since the epoch as a float; tests replace it to set the clock.
clock: Callable[[], float] = time.time


# The highest generation this process has seen, per namespace: a seed never goes below it, so
# a clock that stands still or steps back cannot hand out a generation this process used.
_highest: dict[str, int] = {}
_highest_lock = threading.Lock()


def _seen(namespace: str, value: int) -> int:
    with _highest_lock:
        if value > _highest.get(namespace, 0):
            _highest[namespace] = value
    return value


def _seed(namespace: str = "") -> int:
    with _highest_lock:
        return max(int(clock() * 1_000_000), _highest.get(namespace, 0) + 1)


def get_generation(namespace: str, *, alias: str = "default") -> int:
    """The namespace's current generation, seeding it from the clock when missing.

    When the cache cannot store it (an outage), a fresh clock value is returned: every request
    then misses, which is slow but never stale.
    """
    cache = caches[alias]
    key = generation_key(namespace)
    value = cache.get(key)
    if value is not None and not isinstance(value, int):
        logger.warning("the generation of %r is not a number: starting a new one", namespace)
        cache.delete(key)
        value = None
    if value is None:
        if not cache.add(key, _seed(namespace), timeout=None) and cache.get(key) is None:
            # The key is there but cannot be read (something else wrote it): start again.
            logger.warning("the generation of %r cannot be read: starting a new one", namespace)
            cache.delete(key)
            cache.add(key, _seed(namespace), timeout=None)
        value = cache.get(key)
        if value is None:
            return _seed(namespace)
    return _seen(namespace, int(value))


def bump_generation(namespace: str, *, alias: str = "default") -> int | None:
    """Make every entry of ``namespace`` unreachable.

    Returns the new generation, or ``None`` when the cache could not be reached (the caller keeps
    the invalidation to replay it).
    """
    cache = caches[alias]
    key = generation_key(namespace)
    try:
        value = cache.incr(key)
    except ValueError:
        # Missing: seed it. The seed is already newer than anything stored before.
        seed = _seed(namespace)
        if cache.add(key, seed, timeout=None):
            return _seen(namespace, seed)
        try:
            value = cache.incr(key)
        except (ValueError, TypeError):
            value = None
    except Exception:
        # Not a number (written there by hand), or a backend error that is not an outage. The
        # write this follows has committed and must not fail now: forget the generation, which
        # invalidates as well, and let the caller keep the bump to replay.
        logger.exception("could not bump the generation of %r", namespace)
        value = None
    if value is None:
        _forget(cache, key)
        return None
    return _seen(namespace, int(value))


def _forget(cache: object, key: str) -> None:
    """A bump that did not go through: at least make the old generation unreachable.

    A Redis that is full with ``noeviction`` refuses writes (the bump) but still accepts a
    delete, which frees memory. With the generation key gone, every process seeds a new one
    from the clock (or, while nothing can be stored, computes every request afresh), so none
    serves an entry stored before this write. The caller still replays the bump later.
    """
    cache.delete(key)
