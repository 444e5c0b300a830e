"""Who a token is, cached under the ``auth`` generation, so that a warm read runs no SQL.

The entry is keyed by a hash of the token (never the token) and holds the user without its
related objects. Anything that could change who a token is or what they may do bumps the
``auth`` generation (``performance.signals``), which makes every entry unreachable at once.

Each process also keeps the users it decoded (``TokenMemo``), by token and generation: decoding
a user costs more than the rest of a warm hit, and an entry never changes under its key. A memo
is trusted only under the generation just read from the cache, and never beyond the expiry of
the entry it came from (docs/design.md, "Copies in process memory").
"""

from __future__ import annotations

import copy
import pickle
import threading
import time
from collections import OrderedDict
from typing import Any, NamedTuple

from django.db.models.base import ModelState

from .keys import token_digest, token_key


class TokenEntry(NamedTuple):
    """What the cache keeps for a token."""

    is_active: bool
    user_pickle: bytes
    #: Seconds since the epoch when the entry expires in the cache.
    expires_at: float

    @classmethod
    def of(cls, user: Any, timeout: float | None) -> TokenEntry:
        # Without its related-object cache: the user was loaded through its token, whose
        # reverse relation would otherwise carry the token itself into the cache.
        clean = copy.copy(user)
        clean._state = copy.copy(user._state)
        clean._state.fields_cache = {}
        expires = time.time() + timeout if timeout is not None else float("inf")
        return cls(user.is_active, pickle.dumps(clean, pickle.HIGHEST_PROTOCOL), expires)

    def user(self) -> Any:
        return pickle.loads(self.user_pickle)


class TokenMemo:
    """The users this process decoded, by token digest: the latest generation each was seen
    under, bounded in number (least recently stored first out). Each caller gets a copy of the
    user of its own (``fresh``): what one request sets on its user, no other request sees."""

    def __init__(self, max_tokens: int = 10_000) -> None:
        self.max_tokens = max_tokens
        self._items: OrderedDict[str, tuple[int, Any, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, generation: int) -> Any:
        """The user of ``token`` if it was decoded under ``generation`` and has not expired."""
        seen = self.latest(token)
        if seen is None or seen[0] != generation:
            return None
        return seen[1]

    def latest(self, token: str) -> tuple[int, Any] | None:
        """The generation the token was last seen under and its user (not yet confirmed: the
        generation may have moved on since)."""
        key = token_digest(token)
        item = self._items.get(key)
        if item is None:
            return None
        generation, user, expires_at = item
        if time.time() >= expires_at:
            self._discard(key)
            return None
        return generation, fresh(user)

    def put(self, token: str, generation: int, user: Any, expires_at: float) -> None:
        key = token_digest(token)
        with self._lock:
            known = self._items.get(key)
            if known is not None and known[0] > generation:
                return  # a slower request's older lookup: the newer one stays
            self._items[key] = (generation, user, expires_at)
            self._items.move_to_end(key)
            while len(self._items) > self.max_tokens:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def _discard(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


def fresh(user: Any) -> Any:
    """A copy of a remembered user for one request: the same field values, its own instance
    state (no related object cached on it)."""
    copy_ = object.__new__(type(user))
    copy_.__dict__.update(user.__dict__)
    state = copy_._state = ModelState()
    state.db, state.adding = user._state.db, user._state.adding
    return copy_


def lookup(cache: Any, token: str, generation: int) -> Any:
    """The active user ``token`` names under ``generation``, from this process's memo or from
    the cache; ``None`` when the cache does not know (the caller asks the database)."""
    memo = _memo_of(cache)
    key = token_key(generation, token)
    user = memo.get(token, generation) if memo is not None else None
    if user is not None:
        cache.count_local_hits((key,))
        return user
    entry = cache.get(key)
    if not isinstance(entry, TokenEntry) or not entry.is_active:
        return None
    user = entry.user()
    if memo is not None:
        memo.put(token, generation, user, entry.expires_at)
        return fresh(user)
    return user


def remember(cache: Any, token: str, generation: int, user: Any, timeout: float | None) -> None:
    """Store who ``token`` is (an active user) under ``generation``."""
    entry = TokenEntry.of(user, timeout)
    cache.set(token_key(generation, token), entry, timeout)
    memo = _memo_of(cache)
    if memo is not None:
        memo.put(token, generation, entry.user(), entry.expires_at)


def _memo_of(cache: Any) -> TokenMemo | None:
    """The process's memo of the cache (none for a backend of Django's own)."""
    state = getattr(cache, "state", None)
    return state.tokens if state is not None else None
