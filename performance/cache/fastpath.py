"""Serve a warm hit before DRF's machinery: two cache round trips, no SQL, no serialisation.

Most reads of the API are repeated GETs by token-authenticated clients. For those, the full DRF
dispatch (request wrapping, content negotiation, an authentication lookup, permission classes)
costs more than the cached bytes themselves. This fast path does the same checks, in the same
order of trust, from the cache:

1. one ``get_many``: the ``auth`` generation and the view's namespace generation;
2. one ``get_many``: the cached token lookup (``performance.auth``) and the response entry,
   whose key is computed exactly as the DRF path computes it.

The response is used only if the token maps to an active user and the view's read permission
needs nothing more than an authenticated user. Anything else — no token, another format or
media type, a per-user view, a cold entry, an unreachable cache — falls through to the normal
DRF path, which authenticates, checks permissions, throttles and computes as usual. Warm hits
served here are not counted by DRF's throttles: they cost the service two cache round trips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import DjangoModelPermissions, IsAuthenticated

from .api import backend, digest
from .generations import generation_key

#: Accept headers that DRF negotiates to the JSON renderer with media type application/json.
_JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})
_PREFIX = "Token "


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
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith(_PREFIX):
        return None
    token = header[len(_PREFIX) :].strip()
    if not token or " " in token:
        return None
    if request.META.get("HTTP_ACCEPT", "*/*") not in _JSON_ACCEPTS:
        return None
    if request.GET.get("format", "json") != "json":
        return None
    if not _permits(type(view)):
        return None

    from performance.auth import AUTH_NAMESPACE, auth_key

    cache = backend()
    namespace = view.cache_namespace
    gen_auth, gen_ns = generation_key(AUTH_NAMESPACE), generation_key(namespace)
    generations = cache.get_many([gen_auth, gen_ns])
    if gen_auth not in generations or gen_ns not in generations:
        return None
    inputs = (
        request.path,
        sorted(request.GET.lists()),
        "application/json",
        request.scheme,
        request.get_host(),
        None,
    )
    user_key = auth_key(int(generations[gen_auth]), token)
    entry_key = f"{namespace}:{int(generations[gen_ns])}:{digest(*inputs)}"
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
            generation=int(generations[gen_ns]),
            entry_key=entry_key,
            entry=entry,
        )
        return None
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
