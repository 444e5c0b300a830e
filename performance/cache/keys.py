"""Every logical key the cache layer reads or writes, made in one place.

A logical key is ``namespace:rest``; the backend adds the key prefix and version. Namespaces
that start with ``_`` are the cache layer's own bookkeeping (generations, locks, memos): a
pattern reaches them only when it names them. See docs/design.md, "Keys".
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any, Protocol

#: Generation counters, one per namespace (``generations``).
GENERATION_NAMESPACE = "_gen"
#: The generation ``invalidate_pattern`` and ``clear`` bump: it ends every process's copies.
PURGE_NAMESPACE = "_purge"
#: Token lookups: who a token is (``tokens``).
AUTH_NAMESPACE = "auth"
#: Request rates counted by the throttles (``rates``).
RATE_NAMESPACE = "throttle"


class KeyedRequest(Protocol):
    """What a response's key is made of: a Django ``HttpRequest`` or a DRF ``Request``."""

    path: str
    GET: Any
    scheme: str

    def get_host(self) -> str: ...


def namespace_of(key: str) -> str:
    """The part of a logical key before its first ``:`` (``default`` when there is none)."""
    head, sep, _ = str(key).partition(":")
    return head if sep and head else "default"


def digest(*parts: Any) -> str:
    """A stable hash of client-controlled inputs: they never reach a key raw."""
    return hashlib.sha256(pickle.dumps(parts, protocol=4)).hexdigest()[:40]


def generation_key(namespace: str) -> str:
    return f"{GENERATION_NAMESPACE}:{namespace}"


def applied_key(namespace: str) -> str:
    """The database version (``changes``) the namespace's generation last took in: kept beside
    the generation, so a cache that loses one (a failover, a restore) loses the other too."""
    return f"{GENERATION_NAMESPACE}:{namespace}:applied"


def response_key(
    namespace: str,
    generation: int,
    request: KeyedRequest,
    *,
    media_type: str,
    user_id: Any = None,
) -> str:
    """The key of a cached response: its namespace, the generation read before the query, and
    a hash of everything that changes the bytes.

    The query's parameters are sorted by name, but every one is kept (``format`` too: pagination
    links repeat the query string) and repeated values stay in their order (filters read the
    last). Scheme and host are in because pagination links are absolute; the negotiated media
    type because ``; indent=4`` changes the bytes; the user only where the view says its output
    depends on who asks. Every path that reads or writes a response calls this function.
    """
    path, scheme, host = request.path, request.scheme, request.get_host()
    # The same request as it came (its raw query string) has the same hash: remembered, so a
    # warm hit neither parses the query nor hashes it again.
    raw = (path, request.META.get("QUERY_STRING", ""), media_type, scheme, host, user_id)
    hashed = _hashes.get(raw)
    if hashed is None:
        query = sorted(request.GET.lists())
        hashed = digest(path, query, media_type, scheme, host, user_id)
        if len(_hashes) >= _MAX_HASHES:
            _hashes.clear()
        _hashes[raw] = hashed
    return f"{namespace}:{generation}:{hashed}"


#: Requests whose hash ``response_key`` remembers (their query strings are the clients').
_MAX_HASHES = 4096
_hashes: dict[tuple, str] = {}


def lock_key(key: str) -> str:
    """The stampede lock of the entry under ``key``."""
    return f"_lock:{key}"


def value_key(namespace: str, generation: int, parts: tuple, *, internal: bool) -> str:
    """The key of a value cached by ``remember`` / ``cached``: internal values (the layer's own,
    such as list counts) go under ``_memo``, counted apart from the namespace's responses."""
    hashed = digest(*parts)
    if internal:
        return f"_memo:{namespace}:{generation}:{hashed}"
    return f"{namespace}:{generation}:v:{hashed}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:40]


def token_key(generation: int, token: str) -> str:
    """Who ``token`` is, under the ``auth`` generation: keyed by a hash, never the token."""
    return f"{AUTH_NAMESPACE}:{generation}:{token_digest(token)}"


def rate_key(scope: str, ident: str) -> str:
    """The request history of one client (``ident``, already hashed) for one throttle scope."""
    return f"{RATE_NAMESPACE}:{scope}:{ident}"
