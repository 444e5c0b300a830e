"""Every logical key the cache layer reads or writes, made in one place.

A logical key is ``namespace:rest``; the backend adds the key prefix and version. Namespaces
that start with ``_`` are the cache layer's own bookkeeping (generations, locks, memos): a
pattern reaches them only when it names them. See docs/design.md, "Keys".
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

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


def namespaces_of(keys: Iterable[str]) -> list[str]:
    """``namespace_of`` of each of ``keys``, in one pass (a cold page reads a hundred)."""
    names = []
    for key in keys:
        head, sep, _ = str(key).partition(":")
        names.append(head if sep and head else "default")
    return names


def digest(*parts: Any) -> str:
    """A stable hash of client-controlled inputs: they never reach a key raw."""
    return hashlib.sha256(pickle.dumps(parts, protocol=4)).hexdigest()[:40]


def generation_key(namespace: str) -> str:
    return f"{GENERATION_NAMESPACE}:{namespace}"


def collection_scope(namespace: str) -> str:
    """The generation of the namespace's collections (lists, counts, every response not about
    one object), bumped by any change: read with the namespace's own by such responses."""
    return f"{namespace}:all"


def layout_scope(namespace: str) -> str:
    """The generation of what the namespace's lists hold and in which order, and their counts:
    bumped by changes that may move an object in, out of or within a list (an insert, a delete,
    a change of a field the lists filter, search or order by; ``changes.ObjectChange.moved``),
    not by a change of what a row shows only."""
    return f"{namespace}:layout"


def page_scope(namespace: str, hashed: str) -> str:
    """The generation of one list page (``hashed``: ``page_digest``): bumped when an object
    the page shows changes in place (``listing_key``)."""
    return f"{namespace}:page:{hashed}"


def page_digest(request: KeyedRequest) -> str:
    """The hash of what decides which rows a list page shows: its path and query. Not the
    media type, the host or the scheme, which change how the page is written, not what it
    shows: the responses of one page in several media types share its generation, and the
    objects it shows note it once."""
    return digest("page", request.path, sorted(request.GET.lists()))


def is_page_scope(scope: str) -> bool:
    """Whether ``scope`` is one list page's (``page_scope``)."""
    return ":page:" in scope


def listings_key(namespace: str) -> str:
    """Which pages show each object of the namespace: the objects whose pages are noted (on
    Redis a hash, each object's pages in a set under this key + ":" + ``object_field``), the
    generation keys of the pages (``page_scope``) stored with it on their rows, bumped when the
    object changes in place. If a note goes (evicted, expired), a change cannot tell which
    pages show its object, and bumps the layout instead, which ends them all."""
    return f"_pages:{namespace}"


def recent_key(namespace: str) -> str:
    """The namespace's latest changes in place, newest first: each the collections' generation
    it moved to and the objects it changed (``store_page``: a page computed meanwhile is kept
    if none of them is on it)."""
    return f"_recent:{namespace}"


def object_field(object_id: Any) -> str:
    """An object's name in the namespace's keys (its primary key, or a hash of it)."""
    return _object_part(object_id)


def object_fields(object_ids: Iterable[Any]) -> list[str]:
    """``object_field`` of each of ``object_ids`` (a page names fifty): a whole number's text
    is its name as it is."""
    return [str(i) if type(i) is int and i >= 0 else _object_part(i) for i in object_ids]


def object_scope(namespace: str, object_id: Any) -> str:
    """The generation of one object's responses (its detail, its history), bumped by changes
    that touched it (``changes.ObjectChange``): read with the namespace's own by them. The
    object's key as the database notes it (its primary key as text), hashed unless it is a
    number (keys never hold client input raw)."""
    return f"{namespace}:obj:{_object_part(object_id)}"


def _object_part(object_id: Any) -> str:
    text = str(object_id)
    return text if text.isascii() and text.isdigit() else digest(text)


def applied_key(namespace: str) -> str:
    """The database version (``changes``) the namespace's generation last took in: kept beside
    the generation, so a cache that loses one (a failover, a restore) loses the other too."""
    return f"{GENERATION_NAMESPACE}:{namespace}:applied"


def response_key(
    namespace: str,
    generation: int | str,
    request: KeyedRequest,
    *,
    media_type: str,
    user_id: Any = None,
) -> str:
    """The key of a cached response: its namespace, the generation read before the query (with
    its object's or its collections', ``generations.generation_of``), and a hash of everything
    that changes the bytes.

    The query's parameters are sorted by name, but every one is kept (``format`` too: pagination
    links repeat the query string) and repeated values stay in their order (filters read the
    last). Scheme and host are in because pagination links are absolute; the negotiated media
    type because ``; indent=4`` changes the bytes; the user only where the view says its output
    depends on who asks. Every path that reads or writes a response calls this function.
    """
    hashed = request_digest(request, media_type=media_type, user_id=user_id)
    return f"{namespace}:{generation}:{hashed}"


def request_digest(request: KeyedRequest, *, media_type: str, user_id: Any = None) -> str:
    """The hash of everything in a request that changes a response's bytes (``response_key``)."""
    path = request.path
    scheme, host = origin(request)
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
    return hashed


#: Requests whose hash ``response_key`` remembers (their query strings are the clients').
_MAX_HASHES = 4096
_hashes: dict[tuple, str] = {}


def origin(request: KeyedRequest) -> tuple[str, str]:
    """The request's scheme and host, as ``request.scheme`` and ``request.get_host()`` give
    them (a host the settings do not allow raises ``DisallowedHost``, as it does there).

    Django works them out from a few headers and settings on every call; the answer for the
    same headers is remembered, and forgotten when a setting changes (``setting_changed``).
    """
    meta = request.META
    proxy_ssl = _proxy_ssl[0]
    if proxy_ssl is None:
        proxy_ssl = _proxy_ssl_header()
    raw = (
        meta.get("HTTP_HOST"),
        meta.get("HTTP_X_FORWARDED_HOST"),
        meta.get("HTTP_X_FORWARDED_PORT"),
        meta.get("SERVER_NAME"),
        meta.get("SERVER_PORT"),
        meta.get("wsgi.url_scheme"),
        meta.get(proxy_ssl) if proxy_ssl else None,
    )
    known = _origins.get(raw)
    if known is None:
        known = (request.scheme, request.get_host())
        if len(_origins) >= _MAX_HASHES:
            _origins.clear()
        _origins[raw] = known
    return known


def _proxy_ssl_header() -> str:
    """The header ``SECURE_PROXY_SSL_HEADER`` names ("" for none), read once per setting."""
    setting = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    header = _proxy_ssl[0] = setting[0] if setting else ""
    return header


_origins: dict[tuple, tuple[str, str]] = {}
#: The name of the header of ``SECURE_PROXY_SSL_HEADER``, once read (``None``: not yet).
_proxy_ssl: list[str | None] = [None]


@receiver(setting_changed)
def _forget_origins(**kwargs: Any) -> None:
    """The hosts allowed, the proxy headers trusted: what ``origin`` remembers depends on them."""
    _origins.clear()
    _proxy_ssl[0] = None


def lock_key(key: str) -> str:
    """The stampede lock of the entry under ``key``."""
    return f"_lock:{key}"


def value_key(namespace: str, generation: int | str, parts: tuple, *, internal: bool) -> str:
    """The key of a value cached by ``remember`` / ``cached``: internal values (the layer's own,
    such as list counts) go under ``_memo``, counted apart from the namespace's responses."""
    hashed = digest(*parts)
    if internal:
        return f"_memo:{namespace}:{generation}:{hashed}"
    return f"{namespace}:{generation}:v:{hashed}"


def object_value_keys(
    namespace: str, generation: int | str, parts: tuple, object_ids: Sequence[Any]
) -> tuple[list[str], list[str]]:
    """For one value per object (``api.remember_objects``): each object's scope
    (``object_scope``) and the key of its value, internal as ``value_key``; the hash of
    ``parts`` made once, and each object named once, as in its generation's key."""
    hashed = digest(*parts)
    named = object_fields(object_ids)
    return (
        [f"{namespace}:obj:{name}" for name in named],
        [f"_memo:{namespace}:{generation}:{hashed}:{name}" for name in named],
    )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:40]


def token_key(generation: int, token: str) -> str:
    """Who ``token`` is, under the ``auth`` generation: keyed by a hash, never the token."""
    return f"{AUTH_NAMESPACE}:{generation}:{token_digest(token)}"


def rate_key(scope: str, ident: str) -> str:
    """The request history of one client (``ident``, already hashed) for one throttle scope."""
    return f"{RATE_NAMESPACE}:{scope}:{ident}"
