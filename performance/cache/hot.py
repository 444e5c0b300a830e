"""A small copy, in each process, of the entries warm hits serve most (Redis only).

Every key of a cached response embeds its namespace's generation, so what is stored under a key
never changes. Once a warm read has read the current generations (its one round trip on every
request), an entry this process already fetched under the same key can be served again without
fetching it: a write still shows on the very next request everywhere, because it changes the
generation and with it the key. With the local-memory cache there is nothing to save: the
entries are in this process already, and the copies are off.

Three things end a copy besides a new generation:

- the *purge epoch*, a generation of its own that ``invalidate_pattern`` and ``clear`` bump
  fleet-wide and every warm read reads with the generations, so that deleting entries by hand
  also deletes them here;
- the expiry of the entry it was made from (an entry says when it expires), and at most the
  cache's default timeout from when the copy was made (the entry may go sooner still: evicted,
  or deleted by hand, which is why a pattern invalidation always bumps the purge epoch,
  whatever it matched);
- room: the copies are bounded in bytes (``CACHE_HOT_BYTES``), signatures included, oldest
  stored first out.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class HotEntries:
    """Copies of immutable cache entries, under keys that embed their generations, bounded in
    bytes."""

    def __init__(self, max_bytes: int, max_age: float | None) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._items: OrderedDict[Hashable, tuple[Any, Any, float, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, key: Hashable, epoch: Any) -> Any:
        """The copy under ``key`` if it was stored under the same purge epoch and is not too
        old; otherwise ``None``."""
        item = self._items.get(key)
        if item is None:
            return None
        value, stored_epoch, expires, _ = item
        if stored_epoch != epoch or time.monotonic() >= expires:
            self._discard(key)
            return None
        return value

    def put(
        self, key: Hashable, value: Any, epoch: Any, size: int, *, expires_at: float | None = None
    ) -> None:
        """Keep a copy of ``value`` until the entry it came from expires (``expires_at``, in
        seconds since the epoch) or its age reaches ``max_age``, whichever comes first."""
        if not self.enabled or size > self.max_bytes:
            return
        lifetime = self.max_age if self.max_age is not None else 1e12
        if expires_at is not None:
            lifetime = min(lifetime, expires_at - time.time())
            if lifetime <= 0:
                return
        expires = time.monotonic() + lifetime
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[3]
            self._items[key] = (value, epoch, expires, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, _, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def usage(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._items), "bytes": self._bytes, "max_bytes": self.max_bytes}

    def _discard(self, key: Hashable) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[3]
