"""Generation-keyed caching of rendered API responses, with ETags and stampede protection.

Used by DRF views through ``CachedResponseMixin``. The flow of a cacheable GET:

1. DRF has already authenticated, checked permissions and throttled (``initial()`` ran), so the
   cache never answers someone who may not ask. (A warm hit of a token-authenticated JSON GET
   may be served earlier by ``fastpath``, which makes the same authentication and permission
   decision from the cache; such hits are not counted by DRF's throttles.)
2. The namespace's generation is read *first*; the key is ``namespace:generation:hash(inputs)``
   where the inputs are everything that changes the bytes: path, normalised query string,
   renderer, scheme and host (pagination links are absolute), and the user where the view says
   its output depends on the user.
3. A hit sends the stored bytes and ETag as they are (``X-Cache: HIT``), or ``304`` when
   ``If-None-Match`` matches.
4. A miss takes a short lock with ``cache.add`` so one caller computes while the others poll
   briefly for its result; the body is rendered once and stored with a jittered TTL.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpResponse, HttpResponseNotModified
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from . import fastpath
from .api import backend, default_timeout, digest, jittered
from .generations import get_generation

CACHE_CONTROL = "private, no-cache"
VARY = ("Accept", "Authorization", "Cookie")
_VARY_VALUE = ", ".join(VARY)
_FAST_HEADERS: dict[tuple, tuple[tuple[str, str], ...]] = {}


class CachedResponseMixin:
    """Caches successful JSON responses of ``list`` and ``retrieve`` (and of any action that
    calls ``cached_response``) under the view's ``cache_namespace``."""

    cache_namespace: str = ""
    #: Set when the response body depends on who asks (beyond whether they may ask).
    cache_per_user: bool = False
    cache_timeout: int | None = None
    #: How long a request that lost the race for the lock waits for the winner's result.
    stampede_wait: float = 2.0
    stampede_poll: float = 0.01
    lock_timeout: int = 10
    #: Actions whose warm hits may be served before DRF's dispatch (``fastpath``).
    cache_fast_actions: frozenset[str] = frozenset({"list", "retrieve"})
    #: Replaced in tests.
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    monotonic: Callable[[], float] = staticmethod(time.monotonic)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        action_map = getattr(self, "action_map", None) or {}
        response = fastpath.serve(self, request, action_map.get("get"))
        if response is not None:
            # What DRF's finalize_response adds to every response of this view.
            self.args, self.kwargs, self.request = args, kwargs, request
            for name, value in self._fast_headers(action_map):
                response[name] = value
            return response
        return super().dispatch(request, *args, **kwargs)

    def _fast_headers(self, action_map: dict[str, str]) -> tuple[tuple[str, str], ...]:
        """DRF's ``default_response_headers`` but ``Vary`` (``_decorate`` sets it), computed
        once per view class and route: they depend on nothing else."""
        key = (type(self), tuple(action_map.items()))
        headers = _FAST_HEADERS.get(key)
        if headers is None:
            headers = tuple(
                (name, value)
                for name, value in self.default_response_headers.items()
                if name != "Vary"
            )
            _FAST_HEADERS[key] = headers
        return headers

    def replay_entry(self, request: Any, entry: tuple, outcome: str) -> HttpResponse:
        return self._replay(request, entry, outcome)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        parent = super().list
        return self.cached_response(request, lambda: parent(request, *args, **kwargs))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        parent = super().retrieve
        return self.cached_response(request, lambda: parent(request, *args, **kwargs))

    # ---------------------------------------------------------------------------------------

    def is_cacheable_request(self, request: Request) -> bool:
        return (
            request.method in ("GET", "HEAD")
            and bool(self.cache_namespace)
            and isinstance(getattr(request, "accepted_renderer", None), JSONRenderer)
        )

    def cache_key_inputs(self, request: Request) -> tuple:
        # Parameters sorted by name, but every parameter kept (``format`` too: pagination links
        # repeat the query string) and repeated values in their order (filters read the last).
        query = sorted(request.query_params.lists())
        user = request.user.pk if self.cache_per_user else None
        return (
            request.path,
            query,
            request.accepted_media_type,
            request.scheme,
            request.get_host(),
            user,
        )

    def cached_response(self, request: Request, compute: Callable[[], Response]) -> Any:
        if not self.is_cacheable_request(request):
            return compute()
        cache = backend()
        namespace = self.cache_namespace
        probe = fastpath.probe_of(request)
        if probe is not None and probe.namespace == namespace:
            generation = probe.generation  # read by the fast path, before any query
        else:
            generation = get_generation(namespace)  # before the query: see the docstring
        hashed = digest(*self.cache_key_inputs(request))
        key = f"{namespace}:{generation}:{hashed}"

        # An entry the fast path already looked up (and counted) is not looked up again.
        entry = probe.entry if probe is not None and probe.entry_key == key else cache.get(key)
        if entry is not None:
            return self._replay(request, entry, "HIT")

        lock_key = f"_lock:{namespace}:{generation}:{hashed}"
        locked = cache.add(lock_key, 1, self.lock_timeout)
        if not locked:
            entry = self._wait_for(cache, key, lock_key)
            if entry is not None:
                return self._replay(request, entry, "HIT")
        try:
            response = compute()
            if not isinstance(response, Response) or not 200 <= response.status_code < 300:
                return response
            response = self.finalize_response(request, response)
            response.render()
            body = bytes(response.content)
            etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
            content_type = response["Content-Type"]
            timeout = self.cache_timeout if self.cache_timeout is not None else default_timeout()
            cache.set(key, (body, etag, content_type), jittered(timeout))
        finally:
            if locked:
                cache.delete(lock_key)
        self._decorate(response, etag, "MISS")
        if self._not_modified(request, etag):
            return self._not_modified_response(etag, "MISS")
        return response

    def _wait_for(self, cache: Any, key: str, lock_key: str) -> Any:
        """Poll for the lock holder's result; stop early once the lock is gone.

        ``has_key`` counts no hit or miss, so waiting does not distort the statistics, and on an
        unreachable cache it answers False at once: the waiter computes instead of waiting.
        """
        deadline = self.monotonic() + self.stampede_wait
        while True:
            if cache.has_key(key):
                return cache.get(key)
            if not cache.has_key(lock_key):
                # The holder finished without storing (an error response) or gave up; or the
                # lock was never taken because the cache refused it (an outage): never sleep then.
                return cache.get(key)
            if self.monotonic() >= deadline:
                return None
            self.sleep(self.stampede_poll)

    def _replay(self, request: Request, entry: tuple, outcome: str) -> HttpResponse:
        body, etag, content_type = entry
        if self._not_modified(request, etag):
            return self._not_modified_response(etag, outcome)
        response = HttpResponse(body, content_type=content_type)
        self._decorate(response, etag, outcome)
        return response

    @staticmethod
    def _not_modified(request: Request, etag: str) -> bool:
        header = request.META.get("HTTP_IF_NONE_MATCH")
        if not header:
            return False
        tags = parse_etags(header)
        return "*" in tags or etag in tags or etag in (t.removeprefix("W/") for t in tags)

    def _not_modified_response(self, etag: str, outcome: str) -> HttpResponse:
        response = HttpResponseNotModified()
        self._decorate(response, etag, outcome)
        return response

    @staticmethod
    def _decorate(response: HttpResponse, etag: str, outcome: str) -> None:
        response["ETag"] = etag
        response["X-Cache"] = outcome
        response["Cache-Control"] = CACHE_CONTROL
        if response.has_header("Vary"):
            patch_vary_headers(response, VARY)
        else:
            response["Vary"] = _VARY_VALUE
