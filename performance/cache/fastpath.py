"""Serve a warm hit before DRF's machinery: one or two cache round trips, no SQL, no rendering.

Most reads of the API are repeated GETs by token-authenticated clients. For those, the full DRF
dispatch (request wrapping, content negotiation, an authentication lookup, permission classes)
costs more than the cached bytes themselves. This fast path does the same checks, in the same
order of trust, from the cache:

1. one ``get_many``: the ``auth`` generation, the view's namespace generation and the purge
   epoch (``hot``);
2. the cached token lookup (``performance.auth``) and the response entry, whose key is computed
   exactly as the DRF path computes it, in one more ``get_many`` — unless this process served
   the same request under the same generations and purge epoch before and kept a copy of both
   (``hot``).

The response is used only if the token maps to an active user and the view's read permission
needs nothing more than an authenticated user. Anything else — no token, another format or
media type, a per-user view, a cold entry, an unreachable cache — falls through to the normal
DRF path, which authenticates, checks permissions, throttles and computes as usual. Warm hits
served here are not counted by DRF's throttles: they cost the service one or two cache round
trips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import DjangoModelPermissions, IsAuthenticated

from .api import backend, digest
from .generations import generation_key, get_generation
from .hot import PURGE_NAMESPACE

#: Accept headers that DRF negotiates to the JSON renderer with media type application/json.
_JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})
_PREFIX = "Token "
_PURGE_KEY = generation_key(PURGE_NAMESPACE)
#: Bytes a copy costs besides its strings: the objects that hold them.
_COPY_OVERHEAD = 1024


def reads_need_only_authentication(view: Any) -> bool:
    """True when every permission class lets any authenticated, active user GET."""
    for permission in view.permission_classes:
        if permission is IsAuthenticated:
            continue
        if issubclass(permission, DjangoModelPermissions) and not permission.perms_map.get(
            "GET", ["?"]
        ):
            continue
        return False
    return True


def serve(view: Any, request: HttpRequest, action: str | None) -> HttpResponse | None:
    if request.method not in ("GET", "HEAD") or action not in view.cache_fast_actions:
        return None
    if view.cache_per_user or not view.cache_namespace:
        return None
    meta = request.META
    header = meta.get("HTTP_AUTHORIZATION", "")
    if not header.startswith(_PREFIX):
        return None
    token = header[len(_PREFIX) :].strip()
    if not token or " " in token:
        return None
    if meta.get("HTTP_ACCEPT", "*/*") not in _JSON_ACCEPTS:
        return None
    query = meta.get("QUERY_STRING", "")
    # Without "format" (even percent-encoded) in the raw query, there is no format parameter.
    if ("format" in query or "%" in query) and request.GET.get("format", "json") != "json":
        return None
    if not _permits(type(view)):
        return None

    from performance.auth import AUTH_NAMESPACE, auth_key

    cache = backend()
    namespace = view.cache_namespace
    gen_auth, gen_ns = generation_key(AUTH_NAMESPACE), generation_key(namespace)
    generations = cache.get_many([gen_auth, gen_ns, _PURGE_KEY])
    auth_generation, generation = generations.get(gen_auth), generations.get(gen_ns)
    if not isinstance(auth_generation, int) or not isinstance(generation, int):
        return None  # missing (or not a generation): DRF's path seeds them
    epoch = generations.get(_PURGE_KEY)
    if epoch is None:  # never purged yet, or cleared: seed it once (the cache answers)
        epoch = get_generation(PURGE_NAMESPACE)

    # This process's copy, found by the request as it came (its raw query string: no parsing,
    # no hashing) and the generations just read: the same request under the same generations
    # has the same answer. The token is in it as the cache knows it, hashed: never kept raw.
    hot = cache.hot if cache.hot.enabled else None
    host = request.get_host()
    user_key = auth_key(auth_generation, token)
    path, scheme = request.path, request.scheme
    signature = (namespace, generation, user_key, path, query, scheme, host)
    if hot is not None:
        copied = hot.get(signature, epoch)
        if copied is not None:
            user, entry_key, entry = copied
            cache.count_hot_hits((user_key, entry_key))
            request.auth_user_id = user.user_id
            return view.replay_entry(request, entry, "HIT")

    inputs = (path, sorted(request.GET.lists()), "application/json", scheme, host, None)
    entry_key = f"{namespace}:{generation}:{digest(*inputs)}"
    found = cache.get_many([user_key, entry_key])
    user, entry = found.get(user_key), found.get(entry_key)
    if user is None or entry is None or not user.is_active:  # user: an auth.AuthEntry
        # Fall through to DRF, handing over what was read so that it is neither read nor
        # counted twice: the generations (read before any query, as invariant 2 wants), the
        # token lookup and the entry, found or not.
        request._cache_probe = Probe(
            token=token,
            auth_key=user_key,
            user=user,
            namespace=namespace,
            generation=generation,
            entry_key=entry_key,
            entry=entry,
        )
        return None
    if hot is not None:
        # What the copy holds, its signature included (the query string is the client's).
        size = (
            _COPY_OVERHEAD
            + sum(len(part) for part in (path, query, host, user_key, entry_key))
            + sum(len(part) for part in entry)
            + len(user.user_pickle)
        )
        hot.put(signature, (user, entry_key, entry), epoch, size)
    request.auth_user_id = user.user_id  # for the request log (no model instance is built)
    return view.replay_entry(request, entry, "HIT")


@dataclass(frozen=True)
class Probe:
    """What the fast path read before falling through to DRF."""

    token: str
    auth_key: str
    user: Any
    namespace: str
    generation: int
    entry_key: str
    entry: Any


def probe_of(request: Any) -> Probe | None:
    """The fast path's findings for this request (a Django or a DRF request), if any."""
    raw = getattr(request, "_request", request)
    return getattr(raw, "_cache_probe", None)


_permits_by_view: dict[type, bool] = {}


def _permits(view_class: type) -> bool:
    try:
        return _permits_by_view[view_class]
    except KeyError:
        # Permission classes are class attributes: decide once per view class.
        allowed = reads_need_only_authentication(view_class)
        _permits_by_view[view_class] = allowed
        return allowed
