"""Who a token is, cached under the ``auth`` generation, so that a warm read runs no SQL.

The entry is keyed by a hash of the token (never the token) and holds plain data only: what
authorisation reads of the user (its id, username, ``is_active``, ``is_staff``,
``is_superuser``), the permission sets Django's ``ModelBackend`` keeps on a user, and when the
entry expires. No password hash and no pickle: a Redis may be shared with other applications,
and a value that runs code when it is read would let whoever can write to it run code here
(docs/design.md, "Invariants", 4, and "Keys"). Anything that could change who a token is or
what they may do bumps the ``auth`` generation (``performance.signals``), which makes every
entry unreachable at once.

Each entry is signed with ``SECRET_KEY``, together with the key it is stored under: whoever can
write to the Redis can read a staff user's entry there and knows the key of any token (a plain
hash of it, their own or one made up); an entry that is not this service's, for this key, is a
miss and the token is looked up in the database.

The user is rebuilt as Django loads a row fetched with ``.only()`` (``Model.from_db``): loaded
from the database, its other fields deferred. Reading one of those (the password, for
``check_password`` or ``has_usable_password``) asks the database instead of answering wrong, and
``save()`` writes the stored fields only: the password it never held cannot be overwritten.

Each process also keeps the users it decoded (``TokenMemo``), by token and generation: decoding
a user costs more than the rest of a warm hit, and an entry never changes under its key. A memo
is trusted only under the generation just read from the cache, and never beyond the expiry of
the entry it came from (docs/design.md, "Copies in process memory").
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.base import ModelState
from django.utils.crypto import constant_time_compare, salted_hmac

from .keys import token_digest, token_key

#: What the entry holds besides the user's fields; a change of format makes old entries misses.
_FORMAT = 1
_ENTRY_KEYS = frozenset({"format", "fields", "permissions", "db", "expires_at", "signature"})
_SIGNING_SALT = "performance.cache.tokens.TokenEntry"
#: The attributes ``django.contrib.auth.backends.ModelBackend`` caches a user's permissions in:
#: present on the rebuilt user, ``has_perm`` asks no SQL.
PERMISSION_CACHES = ("_user_perm_cache", "_group_perm_cache", "_perm_cache")
#: Flags authorisation reads (DRF's ``IsAdminUser``, ``ModelBackend``), where the model has them.
_FLAGS = ("is_active", "is_staff", "is_superuser")
_SCALARS = (str, int, float, bool, type(None))


@functools.cache
def stored_fields(model: type) -> tuple[str, ...]:
    """The attribute names of ``model``'s fields a token entry holds, in the model's field order
    (the order ``Model.from_db`` takes values in): the primary key, the username, the flags."""
    wanted = {
        model._meta.pk.attname,
        model._meta.get_field(model.USERNAME_FIELD).attname,
        *_FLAGS,
    }
    return tuple(field.attname for field in model._meta.concrete_fields if field.attname in wanted)


@dataclass(frozen=True)
class TokenEntry:
    """What the cache keeps for a token: plain values only (see the module)."""

    #: The user's stored fields, by attribute name (``stored_fields``).
    fields: Mapping[str, Any]
    #: ``ModelBackend``'s permission caches found on the user (``PERMISSION_CACHES``).
    permissions: Mapping[str, frozenset[str]]
    #: The database alias the user was loaded from.
    db: str
    #: Seconds since the epoch when the entry expires in the cache (``None``: never).
    expires_at: float | None

    @classmethod
    def of(cls, user: Any, timeout: float | None) -> TokenEntry:
        """The entry of an active ``user`` just loaded from the database. Its permissions are
        loaded now, through the authentication backends (one query each for the user's own and
        its groups'), so that no warm hit needs them from the database."""
        user.get_all_permissions()  # each ModelBackend caches what it found on the user
        found = vars(user)
        return cls(
            fields={name: getattr(user, name) for name in stored_fields(type(user))},
            permissions={
                name: frozenset(found[name]) for name in PERMISSION_CACHES if name in found
            },
            db=user._state.db,
            expires_at=time.time() + timeout if timeout is not None else None,
        )

    @property
    def is_active(self) -> bool:
        return self.fields.get("is_active", True) is True

    @property
    def expiry(self) -> float:
        """``expires_at`` as a number (infinity for an entry that never expires)."""
        return math.inf if self.expires_at is None else self.expires_at

    def plain(self, key: str) -> dict[str, Any]:
        """The entry as the cache stores it under ``key``: dicts, lists, strings, numbers,
        booleans, signed for that key."""
        value = {
            "format": _FORMAT,
            "fields": dict(self.fields),
            "permissions": {name: sorted(perms) for name, perms in self.permissions.items()},
            "db": self.db,
            "expires_at": self.expires_at,
        }
        value["signature"] = _signature(key, value)
        return value

    @classmethod
    def from_plain(cls, value: Any, key: str) -> TokenEntry | None:
        """The entry ``plain`` stored under ``key``, or ``None`` for anything else: a value of
        another format, that another program wrote, or signed for another key, is a miss (the
        caller asks the database)."""
        if not isinstance(value, dict) or value.keys() != _ENTRY_KEYS:
            return None
        fields, permissions = value["fields"], value["permissions"]
        expires_at = value["expires_at"]
        if (
            value["format"] != _FORMAT
            or not isinstance(fields, dict)
            or fields.keys() != set(stored_fields(get_user_model()))
            or not all(isinstance(field, _SCALARS) for field in fields.values())
            or not isinstance(permissions, dict)
            or not permissions.keys() <= set(PERMISSION_CACHES)
            or not all(
                isinstance(perms, list) and all(isinstance(perm, str) for perm in perms)
                for perms in permissions.values()
            )
            or not isinstance(value["db"], str)
            or not (expires_at is None or type(expires_at) in (int, float))
            or not isinstance(value["signature"], str)
        ):
            return None
        unsigned = {name: item for name, item in value.items() if name != "signature"}
        if not constant_time_compare(value["signature"], _signature(key, unsigned)):
            return None
        return cls(
            fields=fields,
            permissions={name: frozenset(perms) for name, perms in permissions.items()},
            db=value["db"],
            expires_at=expires_at,
        )

    def user(self) -> Any:
        """The user, as loaded from the database with its other fields deferred, and with the
        permission sets ``ModelBackend`` would otherwise query (frozen: a request that changes
        them in place fails, rather than changing them for other requests)."""
        model = get_user_model()
        names = stored_fields(model)
        user = model.from_db(self.db, names, [self.fields[name] for name in names])
        for name, perms in self.permissions.items():
            setattr(user, name, perms)
        return user


def _signature(key: str, value: dict[str, Any]) -> str:
    """The HMAC (``SECRET_KEY``) of an entry's plain ``value`` and the ``key`` it is stored
    under, over a canonical JSON text of both (the value is plain data: JSON holds it)."""
    text = json.dumps([key, value], sort_keys=True, separators=(",", ":"))
    return salted_hmac(_SIGNING_SALT, text, algorithm="sha256").hexdigest()


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

    def remembered(self, token: str) -> tuple[int, Any, float] | None:
        """What this process remembers of ``token``: the generation, the user itself (not a
        copy: whoever keeps it hands out copies of it, ``fresh``) and when it is forgotten
        (seconds since the epoch); ``None`` when it remembers nothing."""
        return self._items.get(token_digest(token))

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
    """A copy of a remembered user for one request: the same field values and permission sets
    (frozen, so shared safely), its own instance state (no related object cached on it)."""
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
    entry = TokenEntry.from_plain(cache.get(key), key)
    if entry is None or not entry.is_active:
        return None
    user = entry.user()
    if memo is not None:
        memo.put(token, generation, user, entry.expiry)
        return fresh(user)
    return user


def remember(cache: Any, token: str, generation: int, user: Any, timeout: float | None) -> None:
    """Store who ``token`` is (an active ``user``, just loaded from the database) under
    ``generation``: the plain entry in the cache, the user rebuilt from it in the memo."""
    entry = TokenEntry.of(user, timeout)
    key = token_key(generation, token)
    cache.set(key, entry.plain(key), timeout)
    memo = _memo_of(cache)
    if memo is not None:
        memo.put(token, generation, entry.user(), entry.expiry)


def _memo_of(cache: Any) -> TokenMemo | None:
    """The process's memo of the cache (none for a backend of Django's own)."""
    state = getattr(cache, "state", None)
    return state.tokens if state is not None else None
