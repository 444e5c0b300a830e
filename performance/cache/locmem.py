"""The local-memory backend: Django's ``LocMemCache``, counted, for the embedded shape.

One process owns it, so its figures are the truth, and its entries are in the process already:
no copies of them are kept (``hot``). Request rates are kept beside it (``rates``), not in it.

Bounded in bytes as well as in entries: Django's bound is a number of entries, and one client
that asks for 500-row pages under new query strings fills each entry with hundreds of kilobytes
(300 requests raised a worker from 114 MB to 418 MB). ``MAX_BYTES`` (``CACHE_MAX_BYTES``) bounds
what the entries hold, least recently used out first; a value over ``MAX_ENTRY_BYTES``
(``CACHE_MAX_ENTRY_BYTES``) is not cached at all.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.core.cache.backends.base import (
    DEFAULT_TIMEOUT,
    MEMCACHE_MAX_KEY_LENGTH,
    CacheKeyWarning,
    default_key_func,
    memcache_key_warnings,
)
from django.core.cache.backends.locmem import LocMemCache
from django.utils.module_loading import import_string
from django_redis.serializers.pickle import PickleSerializer

from . import glob
from .backends import (
    SERIALIZER,
    InstrumentedCacheMixin,
    PageEntry,
    Pending,
    internal_key,
    remember_plan,
)
from .generations import apply_step, now_us
from .keys import generation_key, layout_scope, namespace_of
from .rates import RateStore
from .state import CacheState, state_for

#: What ``_decode`` changes: an encoding, and a tuple (a list for every serializer but pickle).
_DECODED = frozenset({bytearray, tuple})
_SCALARS = frozenset({bytes, str, int, float, bool, type(None)})

#: What an entry costs beyond its key and value: its slots in the cache's ``OrderedDict`` and
#: in the expiry dictionary, the float of its expiry.
_ENTRY_OVERHEAD = 256
#: What memcached refuses in a key (Django's ``memcached_error_chars_re``, compiled here).
_MEMCACHED_REFUSES = re.compile(r"[\x00-\x20\x7f]")


def _value_size(stored: Any) -> int:
    """Bytes a stored value holds: an encoding's, or the sizes of a frozen value's parts."""
    return _frozen_size(stored)


def _frozen_size(value: Any) -> int:
    if type(value) is tuple:
        return sys.getsizeof(value) + sum(_frozen_size(item) for item in value)
    return sys.getsizeof(value)


class _Usage:
    """The bytes of one cache's entries (shared by its per-thread instances, like the entries
    themselves), changed only under the cache's lock."""

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}
        self.total = 0
        #: Values not cached because they were over the entry limit.
        self.refused = 0

    def add(self, key: str, size: int) -> None:
        self.forget(key)
        self.sizes[key] = size
        self.total += size

    def forget(self, key: str) -> None:
        self.total -= self.sizes.pop(key, 0)

    def clear(self) -> None:
        self.sizes.clear()
        self.total = 0


_usages: dict[str, _Usage] = {}
_usages_lock = threading.Lock()


def _is_frozen(value: Any, depth: int = 0) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    return kind is tuple and depth < 3 and all(_is_frozen(item, depth + 1) for item in value)


def _within_64_bits(value: Any) -> bool:
    """Whether every integer of a frozen value fits MessagePack's 64 bits."""
    if type(value) is tuple:
        return all(_within_64_bits(item) for item in value)
    return type(value) is not int or -(2**63) <= value < 2**64


def _as_lists(value: tuple) -> list:
    """A frozen tuple as MessagePack or JSON give it back: lists all the way down."""
    return [_as_lists(item) if type(item) is tuple else item for item in value]


class _LocMemStore(LocMemCache):
    """Django's local-memory cache, storing values through the Redis backend's serializer
    (``OPTIONS["SERIALIZER"]``, ``backends.SERIALIZER`` by default) instead of pickling them.

    Nobody but this process can write here, so pickles would be safe; but the embedded shape is
    where development and most tests run, and a value that works here must work on Redis. So a
    value the serializer cannot store, or could not read back (MessagePack: a dict whose keys
    are not strings), fails at ``set``, loudly, as it would on Redis (where one that cannot be
    read back is a miss on every read); and a tuple comes back as a list, as from Redis.

    Immutable values (a response's bytes, ETag and content type; a generation) are kept as they
    are once the serializer has accepted them: nobody can change them in place, so they need no
    copy. A warm hit then reads the entry without decoding 50 rows' worth of bytes, and memory
    holds one copy of each body. Keys that passed Django's check once are remembered (the read
    path asks for the same keys on every request).
    """

    state: CacheState

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(name, params)
        options = params.get("OPTIONS", {})
        self._serializer = import_string(options.get("SERIALIZER", SERIALIZER))(options=options)
        # Only pickle gives a tuple back as a tuple.
        self._tuples_as_lists = not isinstance(self._serializer, PickleSerializer)
        #: Bytes the entries may hold together, and one entry at most (``None``: no bound).
        self._max_bytes: int | None = options.get("MAX_BYTES") or None
        self._max_entry_bytes: int | None = options.get("MAX_ENTRY_BYTES") or None
        with _usages_lock:
            self._usage = _usages.setdefault(name, _Usage())
        #: Keys read together -> their made keys (``values_of``).
        self._read_plans: dict[tuple[str, ...], tuple[str, ...]] = {}

    def _encode(self, value: Any) -> Any:
        """What is kept for ``value``: a frozen value itself, anything else its encoding, as a
        ``bytearray`` (which no frozen value is). Neither is an object the garbage collector
        looks at (a tuple of plain values it stops tracking): a full collection, which holds
        every thread, does not grow with the entries."""
        if type(value) is int:
            return value  # django-redis stores ints as they are, not serialized
        if _is_frozen(value) and _within_64_bits(value):
            # Bytes, text, small numbers and tuples of them: every serializer stores these, so
            # no trial encoding of a response's hundreds of kilobytes is needed to know it.
            return value
        stored = self._serializer.dumps(value)
        if _is_frozen(value):
            return value
        self._serializer.loads(stored)  # what could not be read back fails now, not as a miss
        return bytearray(stored)

    def _decode(self, stored: Any) -> Any:
        kind = type(stored)
        if kind is bytearray:
            return self._serializer.loads(stored)
        return _as_lists(stored) if kind is tuple and self._tuples_as_lists else stored

    def _made_key(self, key: str, version: int | None) -> str:
        """``make_and_validate_key``."""
        made = self.make_key(key, version=self.version if version is None else version)
        self.validate_key(made)
        return made

    def validate_key(self, key: str) -> None:
        """Django's warnings for a key memcached would refuse, asked only of such a key: its
        check reaches its pattern through a lazy object and a generator on every key, which
        cost a cold page, whose hundred keys are each new, more than reading them."""
        if len(key) > MEMCACHE_MAX_KEY_LENGTH or _MEMCACHED_REFUSES.search(key):
            for warning in memcache_key_warnings(key):
                warnings.warn(warning, CacheKeyWarning, stacklevel=3)

    # Size accounting: every change of ``_cache`` goes through these, under ``_lock`` ------------

    def _set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> bool:
        """Store ``value`` (encoded) unless it is over the entry limit; then evict by bytes.
        Returns whether it was stored."""
        size = _ENTRY_OVERHEAD + sys.getsizeof(key) + _value_size(value)
        if self._max_entry_bytes is not None and size > self._max_entry_bytes:
            # Not cached; what the key held before is no longer the value: it goes too.
            self._delete(key)
            self._usage.refused += 1
            return False
        super()._set(key, value, timeout)
        self._usage.add(key, size)
        if self._max_bytes is not None and self._usage.total > self._max_bytes:
            self._evict_bytes()
        return True

    def _evict_bytes(self) -> None:
        """The least recently used entries out until the rest fit. The entry just set is the
        most recent (first), and the last to go: it fits alone, being under the entry limit."""
        evicted = 0
        while self._usage.total > self._max_bytes and len(self._cache) > 1:
            key, _ = self._cache.popitem()
            del self._expire_info[key]
            self._usage.forget(key)
            evicted += 1
        if evicted:
            self._evicted(evicted)

    def _evicted(self, count: int) -> None:
        """Hook: ``count`` entries went to make room (the instrumented backend counts them)."""

    def _delete(self, key: str) -> bool:
        deleted = super()._delete(key)
        if deleted:
            self._usage.forget(key)
        return deleted

    def _cull(self) -> None:
        """Django's cull (a third of the entries, least recently used first, or all of them
        with ``CULL_FREQUENCY`` 0), keeping the byte count."""
        if self._cull_frequency == 0:
            self._cache.clear()
            self._expire_info.clear()
            self._usage.clear()
            return
        for _ in range(len(self._cache) // self._cull_frequency):
            key, _ = self._cache.popitem()
            del self._expire_info[key]
            self._usage.forget(key)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._expire_info.clear()
            self._usage.clear()

    def usage(self) -> dict[str, int | None]:
        """Bytes held, the bounds, and the values refused for their size."""
        with self._lock:
            return {
                "bytes": self._usage.total,
                "max_bytes": self._max_bytes,
                "max_entry_bytes": self._max_entry_bytes,
                "refused_entries": self._usage.refused,
            }

    # Django's API --------------------------------------------------------------------------

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        stored = self._encode(value)
        with self._lock:
            if self._has_expired(key):
                return self._set(key, stored, timeout)
            return False

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        key = self._made_key(key, version)
        with self._lock:
            if self._has_expired(key):
                self._delete(key)
                return default
            stored = self._cache[key]
            self._cache.move_to_end(key, last=False)
        return self._decode(stored)

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict:
        """One lock for the batch, rather than a ``get`` per key (``BaseCache.get_many``); the
        keys made and checked together (``_made_keys``), and the clock read once: a cold page
        reads a hundred keys, and what each one cost beside its lookup was most of the read."""
        keys = list(keys)
        return self._get_made(keys, self._made_keys(keys, version))

    def values_of(self, keys: tuple[str, ...], peek: str | None = None) -> dict:
        """``get_many(keys)`` for the few keys every warm hit reads (the generations): their
        made keys remembered (``_made_keys`` looks through each for what memcached refuses).
        ``peek``: one more key read with them (a warm hit's entry: each page has its own)."""
        made_keys = self._read_plans.get(keys)
        if made_keys is None:
            made_keys = remember_plan(self._read_plans, keys, tuple(self._made_keys(keys, None)))
        if peek is not None:
            keys, made_keys = (*keys, peek), (*made_keys, self._made_key(peek, None))
        return self._get_made(keys, made_keys)

    def _get_made(self, keys: Sequence[str], made_keys: Sequence[str]) -> dict:
        found = {}
        entries, expiries = self._cache, self._expire_info
        now = time.time()
        with self._lock:
            for key, made in zip(keys, made_keys, strict=True):
                expiry = expiries.get(made, -1)  # (Django's ``_has_expired``, -1: not there)
                if expiry is not None and expiry <= now:
                    if expiry != -1:
                        self._delete(made)
                    continue
                found[key] = entries[made]
                entries.move_to_end(made, last=False)
        # (Only what was encoded, or a tuple, is decoded: a generation is an int, kept as is.)
        decode = self._decode
        return {
            key: decode(stored) if type(stored) in _DECODED else stored
            for key, stored in found.items()
        }

    def _made_keys(self, keys: Sequence[str], version: int | None) -> list[str]:
        """``_made_key`` of each of ``keys``: with Django's key function, the prefix and version
        joined once; and Django's warnings for keys memcached would refuse, looked for in all of
        them at once and given for each such key."""
        version = self.version if version is None else version
        if self.key_func is not default_key_func:
            return [self._made_key(key, version) for key in keys]
        head = f"{self.key_prefix}:{version}:"
        made = [f"{head}{key}" for key in keys]
        if made and (
            max(map(len, made)) > MEMCACHE_MAX_KEY_LENGTH
            or _MEMCACHED_REFUSES.search("".join(made))
        ):
            for key in made:
                self.validate_key(key)
        return made

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> None:
        key = self.make_and_validate_key(key, version=version)
        stored = self._encode(value)
        with self._lock:
            self._set(key, stored, timeout)

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        with self._lock:
            if self._has_expired(key):
                self._delete(key)
                raise ValueError(f"Key '{key}' not found")
            new_value = self._decode(self._cache[key]) + delta
            stored = self._encode(new_value)
            self._cache[key] = stored
            self._cache.move_to_end(key, last=False)
            self._usage.add(key, _ENTRY_OVERHEAD + sys.getsizeof(key) + _value_size(stored))
        return new_value


#: How many pages may note that they show one object (``store_page``): beyond, every page goes.
MAX_PAGES_PER_OBJECT = 1000
#: How many of the latest changes in place a page computed meanwhile is checked against.
RECENT = 256


class InstrumentedLocMemCache(InstrumentedCacheMixin, _LocMemStore):
    """Django's local-memory cache, counted. One process owns it, so its figures are the truth.

    Bounded by ``MAX_ENTRIES`` and ``MAX_BYTES``; when full, the least recently used entries go
    first, and every entry that goes is counted as an eviction. Request rates are kept beside it
    (``rates``), not in it: filling the cache must not evict a client's history. No copies of
    entries: they are in this process already.
    """

    stats_scope = "process"
    process_local = True

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(name, params)
        self._name = name
        self.state = state_for(
            "locmem", name, self.key_prefix, lambda: CacheState(rates=RateStore())
        )

    def _values(self, keys: tuple[str, ...], peek: str | None) -> dict[str, Any]:
        return self.values_of(keys, peek)

    def _advance(self, steps: Sequence[Any], now: int) -> list[int]:
        """``generations.advance``: one process owns this cache, so its lock makes each step
        atomic (the store's own methods, below the counting)."""

        def get(key: str) -> Any:
            return _LocMemStore.get(self, key)

        def put(key: str, value: Any) -> None:
            _LocMemStore.set(self, key, value, timeout=None)

        listings = self.state.listings

        def pages(namespace: str, objects: Sequence[str]) -> list[str]:
            # The notes live as long as the entries, in this process (when they must go first,
            # the layout goes with them: ``_store_page``).
            shown = listings.get(namespace, {})
            return [page for name in objects for page in shown.pop(name, ())]

        recent = self.state.recent

        def changed(namespace: str, moved: tuple[int, Any], objects: Sequence[str]) -> None:
            latest = recent.setdefault(namespace, deque(maxlen=RECENT))
            latest.appendleft((moved, frozenset(objects)))

        with self.state.generation_lock:
            return [apply_step(step, now, get, put, pages, changed) for step in steps]

    def _store_page(self, entry: PageEntry, pending: Pending) -> bool:
        self._set_each(pending)
        key, value, timeout, unless_changed, page, shows, release = entry
        namespace = namespace_of(key)
        listings = self.state.listings
        with self.state.generation_lock:
            if release is not None:
                _LocMemStore.delete(self, release)
            since = unless_changed[1]
            current = _LocMemStore.get(self, unless_changed[0])
            if current != since and not self._unchanged(namespace, current, since, shows):
                return False
            shown = listings.setdefault(namespace, {})
            for name in shows:
                # (A dictionary of page keys, not a set: one of text only the garbage collector
                # stops tracking, and every object shown on a page has one.)
                pages = shown.setdefault(name, {})
                if len(pages) >= MAX_PAGES_PER_OBJECT and page not in pages:
                    # Clients choose their query strings, so how many pages show an object is
                    # theirs: beyond the bound, every page goes (the layout moves on).
                    del listings[namespace]
                    layout = generation_key(layout_scope(namespace))
                    current = _LocMemStore.get(self, layout)
                    moved = max((current if type(current) is int else 0) + 1, now_us())
                    _LocMemStore.set(self, layout, moved, timeout=None)
                    return False
                pages[page] = None
            _LocMemStore.set(self, key, value, timeout)
        return True

    def _unchanged(self, namespace: str, current: Any, since: int, shows: Sequence[str]) -> bool:
        """Whether no change in place taken in since the collections' generation was ``since``
        (it is ``current`` now) changed one of ``shows``: each move of it since accounted for by
        a change noted in the latest, newest first (as the Redis script checks)."""
        at = current
        for (to, before), objects in self.state.recent.get(namespace, ()):
            if to != at or not objects.isdisjoint(shows):
                return False  # a move no change in place noted, or one of the page's rows
            at = before
            if at == since:
                return True
        return False

    def _cull(self) -> None:
        before = len(self._cache)
        super()._cull()
        self.recorder.record_evictions(before - len(self._cache))

    def _evicted(self, count: int) -> None:
        self.recorder.record_evictions(count)

    def _internal_prefix(self) -> str:
        return self.make_key("", version=self.version)

    def logical_keys(self, pattern: str = "*") -> Iterator[str]:
        """This service's logical keys that match ``pattern``, in Redis's glob dialect (``glob``:
        the same keys as on Redis, where ``SCAN ... MATCH`` decides)."""
        tokens = glob.parse(pattern)
        prefix = self._internal_prefix()
        # Every request's lookup waits for the lock: held for copies only (C code, however
        # many keys), the walk done outside it.
        with self._lock:
            keys, expiry = list(self._cache), self._expire_info.copy()
        now = time.time()
        for key in keys:
            if not key.startswith(prefix):
                continue
            expires = expiry.get(key, -1)
            if expires is not None and expires <= now:  # (as ``_has_expired`` decides)
                continue
            logical = key[len(prefix) :]
            if glob.match(tokens, logical) and not internal_key(logical, pattern):
                yield logical

    def delete_logical(self, pattern: str, *, dry_run: bool = False) -> int:
        keys = list(self.logical_keys(pattern))
        if not dry_run and keys:
            super().delete_many(keys)
        return len(keys)

    def gauges(self) -> dict[str, Any]:
        """The entries of this process's cache and the bytes they hold (as the byte bound
        counts them), and no copies."""
        with self._lock:
            entries, held = len(self._cache), self._usage.total
        return {"entries": entries, "bytes": held, "copies": self.hot.usage()}

    def server_info(self) -> dict[str, Any]:
        with self._lock:
            entries = len(self._cache)
        return {
            "backend": "locmem",
            "location": self._name,
            "entries": entries,
            "max_entries": self._max_entries,
            **self.usage(),
            "evictions": self.recorder.evictions,
        }
