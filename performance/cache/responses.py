"""Cached API responses: one read path, each decision made once, the way DRF makes it.

DRF views cache through ``CachedResponseMixin`` (docs/design.md, "A cached GET"):

1. **Early, for warm hits.** Before DRF's dispatch, ``read_early`` asks DRF's own objects what
   ``APIView.initial`` would ask them, in its order, with what they read set up as DRF sets it
   (``action``, ``format_kwarg``, the accepted renderer, ``user``): the content
   negotiator (which renderer and media type; remembered, since it depends on nothing but the
   view's renderers and negotiator and the request's format and ``Accept``), the view's first
   authenticator (its own parsing of the ``Authorization`` header), the permission objects, the
   throttles, and a view's check of its query string (``refuses_query``). The token lookup,
   the generations and the throttles' counters come from the cache, the rates in the same
   round trip as the generations (``rates``). Anything a step cannot
   settle without SQL or a renderer — or a refusal the object raises itself — ends the early
   read, and DRF's dispatch answers. A detail route whose permissions decide per object
   (``has_object_permission``) is never answered from the cache: DRF asks them of the object.
2. **What the early read settled is not asked again.** The view keeps its authenticators and
   throttles for the whole request (``get_authenticators``, ``get_throttles``): a throttle that
   counted the request, or refused it, answers the same when DRF asks; the generation read
   before any query and the entry looked up are handed to ``cached_response``.
3. **DRF's path** (``cached_response``): after ``initial()``, a cacheable request reads the
   namespace's generation first, then the entry under ``keys.response_key``; a miss takes a short
   lock with ``cache.add`` so one caller computes while the others poll for its result, and the
   body is rendered once and stored with a jittered TTL.

A hit sends the stored bytes and ETag as they are (``X-Cache: HIT``); conditional requests go
through Django's ``get_conditional_response`` (weak comparison, lists, ``*``). Only successful
responses rendered by a ``JSONRenderer`` are cached (``cacheable_renderer``).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.cache import get_conditional_response, patch_vary_headers
from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from performance.turns import waiting

from . import tokens
from .api import backend, default_timeout, jittered
from .backends import InstrumentedCacheMixin, PageEntry
from .generations import (
    ABOUT_ALL,
    ABOUT_OBJECT,
    ABOUT_PAGE,
    Seed,
    accept_seed,
    generation_of,
    generation_scopes,
    get_generation,
    proposed_generation,
    went_back,
)
from .keys import (
    AUTH_NAMESPACE,
    PURGE_NAMESPACE,
    collection_scope,
    generation_key,
    lock_key,
    object_fields,
    origin,
    page_digest,
    page_scope,
    response_key,
)
from .rates import RateCheck, Verdict

CACHE_CONTROL = "private, no-cache"
VARY = ("Accept", "Authorization", "Cookie")
_VARY_VALUE = ", ".join(VARY)
_SAFE = frozenset({"GET", "HEAD"})
_AUTH_GENERATION = generation_key(AUTH_NAMESPACE)
_PURGE_GENERATION = generation_key(PURGE_NAMESPACE)
#: Bytes a copy costs besides its strings: the objects that hold them.
_COPY_OVERHEAD = 1024
#: Negotiations remembered, in all (clients choose their Accept headers).
_MAX_NEGOTIATIONS = 4096
_negotiations: dict[tuple, tuple[type, str] | None] = {}
_headers_by_route: dict[tuple, tuple[tuple[str, str], ...]] = {}
#: What ``_scopes`` worked out, per view, route and query (clients choose their queries).
_scopes_by_request: dict[tuple, tuple[list[str], str | None, list[str]]] = {}
_generation_names: dict[str, dict[str, str]] = {}


def representation_etag(body: bytes) -> str:
    """The strong ETag of a representation: a hash of its bytes. Cached reads send it, and
    conditional writes compare ``If-Match`` with it, so both must make it here."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _counted(checks: Sequence[RateCheck | None] | None) -> list[RateCheck]:
    """The checks that count something (a throttle may count nothing for this request)."""
    return [check for check in checks if check is not None] if checks else []


def cacheable_renderer(renderer: BaseRenderer | type[BaseRenderer] | None) -> bool:
    """Whether a response rendered by ``renderer`` may be cached: JSON, never the browsable API."""
    kind = renderer if isinstance(renderer, type) else type(renderer)
    return renderer is not None and issubclass(kind, JSONRenderer)


@dataclass
class EarlyRead:
    """What the early read of this request found, for DRF's path if it answers instead."""

    #: The keys of the generations read, before anything was computed, and what was found
    #: (those present): DRF's path does not read them again (``cache_generations_read``).
    keys: Sequence[str]
    found: dict[str, Any]
    #: The namespace's, with its object's or collections' where it has them (``generation_of``);
    #: ``None`` when one was missing.
    generation: int | str | None = None
    key: str | None = None
    #: ``None``: not found under ``key`` (no need to look again).
    entry: Sequence | None = None
    #: Whether the lookup of ``key`` took its stampede lock (``None``: it did not try): held
    #: until DRF's path computes the response and releases it, or gives it back (``dispatch``).
    locked: bool | None = None


@dataclass(frozen=True, eq=False, slots=True)
class Settled:
    """What the early read settled for a request it answered from the cache (``read_early``):
    a request seen before — the same view, method, path, raw query, ``Accept``, token, scheme,
    host and client address — is answered again after its one read, without asking DRF's
    objects again, while that read finds what this one found.

    Everything the early read decides depends on those and on who the token is: negotiation,
    the permission objects (asked of the same user, as DRF asks them: of the request and the
    user), the throttles' checks, the view's check of its query, the generations to read and
    the response's key. Who the token is cannot change without its ``auth`` generation, which
    the read reads; the generations it read, unchanged, make the same key, whose entry never
    changes. A setting changed forgets all of it (``setting_changed``).

    A process keeps thousands of them for as long as it runs, so each is made of as few
    objects as the garbage collector looks at as it can be: its slots, tuples and dictionaries
    of plain values (which the collector stops tracking), and the user the process remembers
    for the token, shared, not a copy of its own (a full collection, which holds every thread of
    the process, takes as long as the objects it looks at)."""

    keys: tuple[str, ...]
    #: The generations found (those present) that decide the answer: the same again, or the
    #: request is read anew.
    found: dict[str, Any]
    #: One of ``keys`` read for a miss only (``None``: none): a list page's collections'
    #: generation, which a page computed is stored against, and every change bumps. The
    #: page's own key is made of the others: a change to an object it does not show leaves
    #: its answer as it was.
    stored_against: str | None
    #: The checks the throttles made (key, limit, duration), and each throttle's clock, asked
    #: again for each request.
    checks: tuple[tuple[str, int, float], ...]
    clocks: tuple[Callable[[], float], ...]
    rates_if: tuple[str, Any]
    #: The token's user as this process remembers it (``TokenMemo.remembered``): each request
    #: answered gets a copy of its own (``tokens.fresh``).
    user: Any
    #: The entry's key, and its copy's signature where this process keeps copies (Redis).
    key: str
    signature: tuple | None
    #: When this process forgets the token's user (seconds since the epoch).
    until: float


@dataclass(slots=True)
class SettledHit:
    """Set on a warm hit answered for a request settled before (``settled_entry``): what a
    replay of the whole answer needs to confirm it again (``performance.replay``)."""

    settled_as: tuple
    settled: Settled
    generation_names: dict[str, str]
    namespace: str
    #: The ETag and body of the entry that answered: a replay sends that entry's bytes only.
    etag: str
    body: bytes


#: Where a replay that could not answer leaves its read for the request's view
#: (``CachedResponseMixin._answer_settled``): the request settled as, and what was read.
SETTLED_READ = "performance.settled_read"

#: Requests settled, at most, per cache in each process (clients choose their queries).
_MAX_SETTLED = 4096


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
    #: Actions whose warm hits may be answered before DRF's dispatch.
    cache_fast_actions: frozenset[str] = frozenset({"list", "retrieve"})
    #: Replaced in tests.
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    monotonic: Callable[[], float] = staticmethod(time.monotonic)

    # The view instance serves one request: what it settled early lives here.
    _early: EarlyRead | None = None
    #: The renderer class and media type the early read negotiated (``_negotiated``).
    _negotiation: tuple[type, str] | None = None
    _authenticators: list | None = None
    _throttles: list | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = self.read_early(request, *args, **kwargs)
        if response is not None:
            return response
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            early = self._early
            if early is not None and early.locked and early.key is not None:
                # Taken by the early lookup, and DRF's path answered without computing the
                # response (a refusal, an error): given back, for the next request to compute.
                backend().delete(lock_key(early.key))

    # DRF's hooks: the same instances for the whole request ------------------------------------

    def get_authenticators(self) -> list:
        if self._authenticators is None:
            self._authenticators = super().get_authenticators()
        return self._authenticators

    def get_throttles(self) -> list:
        if self._throttles is None:
            self._throttles = super().get_throttles()
        return self._throttles

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        """DRF's answer, which the early read already had (``_negotiated``: the same view,
        renderers, negotiator, format and ``Accept``), is not worked out again."""
        if self._negotiation is None:
            return super().perform_content_negotiation(request, force)
        renderer_class, media_type = self._negotiation
        return renderer_class(), media_type

    # The early read -----------------------------------------------------------------------

    def read_early(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | None:
        """A warm hit answered before DRF's dispatch, exactly as DRF would answer it; ``None``
        when DRF's dispatch must answer (anything the cache cannot settle without SQL)."""
        if request.method not in _SAFE or not self.cache_namespace:
            return None
        action_map = getattr(self, "action_map", None) or {}
        if action_map.get("get") not in self.cache_fast_actions or self.versioning_class:
            return None  # (a versioning scheme may refuse the request: DRF asks it)
        cache = backend()
        if not isinstance(cache, InstrumentedCacheMixin):
            return None  # a cache of Django's own: DRF's path, through its plain API
        settled_as = self._settled_as(request)
        response, pre_read = self._answer_settled(request, cache, settled_as)
        if response is not None:
            return response
        # What DRF's initialize_request and initial() set before asking anything.
        self.action = action_map.get(request.method.lower())
        self.format_kwarg = self.get_format_suffix(**kwargs)
        permissions = self.get_permissions()
        if self._asks_object_permissions(permissions):
            return None
        negotiated = self._negotiated(request)
        if negotiated is None:
            return None
        self._negotiation = negotiated
        authenticators = self.get_authenticators()
        authenticator = authenticators[0] if authenticators else None
        if getattr(authenticator, "token_of", None) is None:
            return None
        drf_request = Request(
            request,
            authenticators=authenticators,
            parser_context={"view": self, "args": args, "kwargs": kwargs},
        )
        renderer_class, media_type = negotiated
        drf_request.accepted_renderer = renderer_class()
        drf_request.accepted_media_type = media_type
        drf_request.version, drf_request.versioning_scheme = None, None
        self.request = drf_request
        try:
            token = authenticator.token_of(drf_request)
        except APIException:
            return None  # DRF refuses the header with its own answer
        if token is None:
            return None  # another authenticator's business (a session)

        throttles = self.get_throttles()
        namespace_generation = generation_key(self.cache_namespace)
        keys = [_AUTH_GENERATION, namespace_generation]
        copies = cache.state.copies
        if copies is not None and not copies.enabled:
            copies = None
        if copies is not None:
            keys.append(_PURGE_GENERATION)
        _, page, scoped = self._scopes(request, media_type)
        keys.extend(scoped)
        stored_against = None
        if page is not None:
            # What a page computed on a miss is stored unless changed (``store_page``).
            stored_against = generation_key(collection_scope(self.cache_namespace))
            keys.append(stored_against)

        # Who the token was when this process last saw it: the throttles' counters travel with
        # the generations, counted only if the auth generation still is the one it was seen
        # under (then nothing about the token can have changed).
        seen = cache.state.tokens.latest(token) if pre_read is None else pre_read[4]
        checks: list[RateCheck | None] | None = None
        if seen is not None:
            checks = self._asked(drf_request, seen[1], permissions, throttles)
            if checks is None:
                return None
        rates_if = (_AUTH_GENERATION, seen[0]) if seen is not None else None
        if pre_read is not None and pre_read[:2] == (tuple(keys), rates_if):
            # Read already for this request as it was settled before (``_answer_settled``),
            # its rates counted: not read, nor counted, twice.
            values, verdicts = pre_read[2:4]
        else:
            values, verdicts = cache.read(keys, rates=_counted(checks), rates_if=rates_if)
        if went_back(values, self._generation_names(), cache.state.highest):
            # The cache went back in time (a failover, a restore): DRF's path reads the
            # generations again, which replaces them, before anything is served.
            if verdicts is not None:
                self._settle_throttles(throttles, checks, verdicts)
            return None
        # Read before anything is computed: DRF's path need not read them again.
        self._early = early = EarlyRead(keys, values)
        auth_generation = values.get(_AUTH_GENERATION)
        user = None
        confirmed = seen is not None and seen[0] == auth_generation
        if confirmed:
            # Confirmed, and the rates counted with the generations: settled at once, so that
            # DRF's path, whatever sends the request there now, counts nothing again.
            user = seen[1]
            if verdicts is None:
                counted = _counted(checks)
                verdicts = cache.rate_hits(counted) if counted else []
            authenticator.settle(token, user=user)
            passed = self._settle_throttles(throttles, checks, verdicts)
        generation = values.get(namespace_generation)
        parts = [values.get(key) for key in scoped] if scoped else ()
        if not isinstance(generation, int) or not all(isinstance(part, int) for part in parts):
            return None  # missing (or not a generation): DRF's path seeds it
        if not isinstance(auth_generation, int):
            return None  # DRF's path seeds it
        if parts:
            generation = ".".join([str(generation), *(str(part) for part in parts)])
        early.generation = generation
        if user is None:
            user = tokens.lookup(cache, token, auth_generation)
            if user is None:
                # Not cached: the authenticator asks the database, under this generation.
                authenticator.settle(token, generation=auth_generation)
                return None
            checks = self._asked(drf_request, user, permissions, throttles)
            if checks is None:
                return None
            counted = _counted(checks)
            authenticator.settle(token, user=user)
            passed = self._settle_throttles(
                throttles, checks, cache.rate_hits(counted) if counted else []
            )
        if not passed:
            return None  # DRF's path answers 429 from the settled throttles
        if self.refuses_query(request):
            return None  # DRF's path answers the 400, before any key is made for this query

        user_id = user.pk if self.cache_per_user else None
        signature = copied = None
        if copies is not None:
            epoch = values.get(_PURGE_GENERATION)
            if epoch is None:  # never purged yet, or cleared: seed it once (the cache answers)
                epoch = get_generation(PURGE_NAMESPACE, read=None)
            # The request as it came (its raw query string: no parsing, no hashing) under the
            # generations just read has the same answer as before.
            query = request.META.get("QUERY_STRING", "")
            signature = (
                self.cache_namespace,
                generation,
                request.path,
                query,
                *origin(request),
                media_type,
                user_id,
            )
            copied = copies.get(signature, epoch)
        if copied is not None:
            key, entry = copied
        else:
            key = response_key(
                self.cache_namespace, generation, request, media_type=media_type, user_id=user_id
            )
            entry, locked, _ = self._look_up(cache, key, lock_key(key), early)
            early.key, early.entry = key, entry
            if entry is None:
                # A miss: DRF's path computes it, under the lock taken here if it was free,
                # with what the computation reads first read here too (``cache_read_ahead``).
                early.locked = locked
                return None
            if signature is not None:
                size = _COPY_OVERHEAD + sum(len(str(part)) for part in signature) + len(key)
                size += len(entry[0]) + len(entry[1]) + len(entry[2])
                # (a tuple of plain values, which the garbage collector stops looking at)
                copies.put(signature, (key, tuple(entry)), epoch, size, expires_at=entry[3])
        remembered = cache.state.tokens.remembered(token) if confirmed else None
        if remembered is not None and remembered[0] == auth_generation:
            # Everything above decided again for the same request reads what was read here.
            known = cache.state.settled
            if len(known) >= _MAX_SETTLED:
                known.clear()
            made = [(t, c) for t, c in zip(throttles, checks or (), strict=False) if c is not None]
            asked = [check for _, check in made]
            settled = known[settled_as] = Settled(
                keys=tuple(keys),
                found=dict(_deciding(values, stored_against)),
                stored_against=stored_against,
                checks=tuple((c.key, c.limit, c.duration) for c in asked),
                clocks=tuple(throttle.timer for throttle, _ in made),
                rates_if=rates_if,
                user=remembered[1],
                key=key,
                signature=signature,
                until=remembered[2],
            )
            response = self._early_response(drf_request, entry, cache)
            response.settled_hit = SettledHit(
                settled_as,
                settled,
                self._generation_names(),
                self.cache_namespace,
                entry[1],
                entry[0],
            )
            return response
        return self._early_response(drf_request, entry, cache)

    def _settled_as(self, request: HttpRequest) -> tuple:
        """What a request is settled under (``Settled``): everything of it the early read's
        decisions read, but the cache's answers."""
        meta = request.META
        return (
            type(self),
            request.method,
            request.path,
            meta.get("QUERY_STRING", ""),
            meta.get("HTTP_ACCEPT"),
            meta.get("HTTP_AUTHORIZATION"),
            *origin(request),
            # (what a throttle identifies a client by: ``get_ident``)
            meta.get("REMOTE_ADDR"),
            meta.get("HTTP_X_FORWARDED_FOR"),
        )

    def _answer_settled(
        self, request: HttpRequest, cache: Any, settled_as: tuple
    ) -> tuple[HttpResponse | None, tuple | None]:
        """The warm hit for a request settled before (``Settled``), after its one read
        (``settled_entry``). Otherwise ``None``, and what was read (keys, the condition of the
        rates, the values, the verdicts, and who the token was), which the early read takes as
        its own read: read here, or already by the replay of the request's last answer
        (``performance.replay``), which found it could not answer."""
        meta = request.META
        if SETTLED_READ in meta:
            tried_as, read = meta.pop(SETTLED_READ)
            if tried_as == settled_as:
                return None, read
        settled = cache.state.settled.get(settled_as)
        if settled is None:
            return None, None
        generation_names = self._generation_names()
        entry, read = settled_entry(cache, settled_as, settled, generation_names)
        if entry is None:
            return None, read
        # Who asked, for what follows the view (the request's log line): as DRF sets it.
        request.user = read[4][1]
        response = self._early_response(request, entry, cache)
        response.settled_hit = SettledHit(
            settled_as, settled, generation_names, self.cache_namespace, entry[1], entry[0]
        )
        return response, read

    def cache_generations_read(self) -> dict[str, Any] | None:
        """The generations this request read before DRF's dispatch (key -> value, ``None``:
        found missing), for what the view caches while it answers (a list's count:
        ``remember``'s ``known``); ``None`` when it read none."""
        early = self._early
        if early is None:
            return None
        return {key: early.found.get(key) for key in early.keys}

    def cache_read_ahead(self) -> Sequence[str]:
        """The cache keys this request's computation reads first (``remember``'s keys, made
        from the generations read: ``cache_generations_read``), read with the lookup of its
        response when that misses, in the same round trip; their values reach the computation
        through ``cache_generations_read``. Asked only on a miss where the cache is in this
        process. None by default."""
        return ()

    def cache_object_id(self) -> str | None:
        """The object this request's response is about, as the database notes it (its primary
        key as text), or ``None`` for a response about many (a list, a count). In a namespace
        keyed by object, a response about one object is keyed by that object's generation, and
        the others by the collections': a write to one object leaves the other objects'
        responses cached (docs/design.md, "Invariants", 6).

        By default, the object a detail route's URL names by primary key, as the primary key
        field reads it (``"007"`` is object 7); a route that looks objects up by another field,
        or a value the field refuses, counts as a collection, which every change invalidates.
        """
        lookup = getattr(self, "lookup_url_kwarg", None) or getattr(self, "lookup_field", None)
        value = self.kwargs.get(lookup) if lookup else None
        if value is None:
            return None
        queryset = getattr(self, "queryset", None)
        model = queryset.model if queryset is not None else self.get_queryset().model
        if getattr(self, "lookup_field", "pk") not in ("pk", model._meta.pk.name):
            return None
        try:
            return str(model._meta.pk.to_python(value))
        except ValidationError:
            return None

    def cache_about(self) -> str:
        """What this request's response is about, which decides the generations it is keyed by
        in a namespace keyed by object (``generations.generation_scopes``): ``ABOUT_OBJECT``
        when it names one object (``cache_object_id``), else ``ABOUT_ALL``. A list whose pages
        say which objects they show (``cache_shows``) answers ``ABOUT_PAGE``; a count of the
        objects the lists hold, ``ABOUT_LAYOUT``."""
        return ABOUT_OBJECT if self.cache_object_id() is not None else ABOUT_ALL

    #: The objects the page just computed shows (their primary keys), set by a view whose
    #: responses are ``ABOUT_PAGE``: a change of one of them invalidates the page.
    cache_shows: Sequence[Any] | None = None

    def _scopes(
        self, request: Any, media_type: str
    ) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
        """The generations this request's response is keyed by, after the namespace's; for a
        list page keyed by its own, that one; and their keys. Remembered per view, route and
        query as they came (what ``cache_about`` and ``cache_object_id`` answer depends on
        nothing else), so a warm hit works them out once: as tuples of text, which the garbage
        collector stops looking at (thousands are remembered for as long as the process runs)."""
        memo = (
            type(self),
            getattr(self, "action", None),
            request.path,
            request.META.get("QUERY_STRING", ""),
            media_type,
            *origin(request),
        )
        known = _scopes_by_request.get(memo)
        if known is not None:
            return known
        namespace = self.cache_namespace
        about = self.cache_about()
        page = None
        if about == ABOUT_OBJECT:
            scopes = generation_scopes(namespace, about, self.cache_object_id())
        elif about == ABOUT_PAGE and not self.cache_per_user:  # (the page's hash needs no user)
            page = page_scope(namespace, page_digest(request))
            scopes = generation_scopes(namespace, about, page)
            page = page if page in scopes else None
        else:
            scopes = generation_scopes(namespace, about if about != ABOUT_PAGE else ABOUT_ALL)
        known = (tuple(scopes), page, tuple(generation_key(scope) for scope in scopes))
        if len(_scopes_by_request) >= _MAX_NEGOTIATIONS:
            _scopes_by_request.clear()
        _scopes_by_request[memo] = known
        return known

    def refuses_query(self, request: HttpRequest) -> bool:
        """Whether the view's ``initial()`` refuses this request's query string once the
        throttles let it through; a view that checks its query says so here, and the early read
        asks at that same point (docs/design.md, "A cached GET")."""
        return False

    def _generation_names(self) -> dict[str, str]:
        """The generation keys a warm read reads, and their namespaces."""
        names = _generation_names.get(self.cache_namespace)
        if names is None:
            names = _generation_names[self.cache_namespace] = {
                _AUTH_GENERATION: AUTH_NAMESPACE,
                generation_key(self.cache_namespace): self.cache_namespace,
                _PURGE_GENERATION: PURGE_NAMESPACE,
            }
        return names

    def _negotiated(self, request: HttpRequest) -> tuple[type, str] | None:
        """The renderer and media type DRF's content negotiation picks for ``request``, when its
        responses are cached; ``None`` otherwise (or when DRF refuses the request). Remembered:
        they depend on nothing but the view's renderers and negotiator and the request's format
        and ``Accept``."""
        query = request.META.get("QUERY_STRING", "")
        # Without "format" (even percent-encoded) in the raw query, there is no format parameter.
        fmt = request.GET.get("format") if ("format" in query or "%" in query) else None
        memo = (
            type(self),
            tuple(self.renderer_classes),
            self.content_negotiation_class,
            self.format_kwarg,
            fmt,
            request.META.get("HTTP_ACCEPT"),
        )
        try:
            return _negotiations[memo]
        except KeyError:
            pass
        try:
            renderer, media_type = self.perform_content_negotiation(Request(request))
        except (APIException, Http404):
            negotiated = None
        else:
            negotiated = (type(renderer), media_type) if cacheable_renderer(renderer) else None
        if len(_negotiations) < _MAX_NEGOTIATIONS:
            _negotiations[memo] = negotiated
        return negotiated

    def _asked(
        self, request: Request, user: Any, permissions: Sequence, throttles: Sequence
    ) -> list[RateCheck | None] | None:
        """With ``user`` as the request's: the permission objects asked, then what each throttle
        would count; ``None`` when DRF's path must answer (refused, or a throttle that cannot
        say before it is asked)."""
        # request.auth, if an object asks for it, DRF makes as it does: by authenticating.
        request.user = user
        try:
            for permission in permissions:
                if not permission.has_permission(request, self):
                    return None
            return self._rate_checks(request, throttles)
        except (APIException, Http404, PermissionDenied):
            return None  # a refusal raised by the object itself: DRF's handler answers it

    def _asks_object_permissions(self, permissions: Sequence | None = None) -> bool:
        """A detail route whose permission objects decide per object (``has_object_permission``):
        DRF asks them of the object it loads, so a cached body may not answer for them."""
        lookup = getattr(self, "lookup_url_kwarg", None) or getattr(self, "lookup_field", None)
        if lookup is None or lookup not in self.kwargs:
            return False
        return any(
            type(permission).has_object_permission is not BasePermission.has_object_permission
            for permission in (self.get_permissions() if permissions is None else permissions)
        )

    def _rate_checks(self, request: Request, throttles: Sequence) -> list[RateCheck | None] | None:
        """What each throttle would count (``None`` for one that counts nothing here); ``None``
        when a throttle cannot say before it is asked (not one of the cache's)."""
        checks = []
        for throttle in throttles:
            rate_check = getattr(throttle, "rate_check", None)
            if rate_check is None:
                return None
            checks.append(rate_check(request, self))
        return checks

    @staticmethod
    def _settle_throttles(
        throttles: Sequence, checks: Sequence[RateCheck | None], verdicts: Sequence[Verdict]
    ) -> bool:
        """Give each throttle its verdict; True when every one let the request through."""
        answers = iter(verdicts)
        passed = True
        for throttle, check in zip(throttles, checks, strict=True):
            verdict = next(answers) if check is not None else None
            throttle.settle(check, verdict)
            passed = passed and (verdict is None or verdict.allowed)
        return passed

    def _early_response(self, request: Request, entry: Sequence, cache: Any) -> HttpResponse:
        response = self._replay(request, entry, "HIT", cache)
        # What DRF's finalize_response adds to every response of this view.
        for name, value in self._default_headers():
            response[name] = value
        return response

    def _default_headers(self) -> tuple[tuple[str, str], ...]:
        """DRF's ``default_response_headers`` but ``Vary`` (``_decorate`` sets it), computed
        once per view class and route: they depend on nothing else."""
        memo = (type(self), tuple((getattr(self, "action_map", None) or {}).items()))
        headers = _headers_by_route.get(memo)
        if headers is None:
            headers = tuple(
                (name, value)
                for name, value in self.default_response_headers.items()
                if name != "Vary"
            )
            _headers_by_route[memo] = headers
        return headers

    # DRF's path -------------------------------------------------------------------------------

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        parent = super().list
        return self.cached_response(request, lambda: parent(request, *args, **kwargs))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        parent = super().retrieve
        return self.cached_response(request, lambda: parent(request, *args, **kwargs))

    def cached_response(self, request: Request, compute: Callable[[], Response]) -> Any:
        if (
            request.method not in _SAFE
            or not self.cache_namespace
            or not cacheable_renderer(getattr(request, "accepted_renderer", None))
            or self._asks_object_permissions()
        ):
            return compute()
        cache = backend()
        namespace = self.cache_namespace
        early = self._early
        # The generations are read before the query (docs/design.md, "Invariants", 2): by the
        # early read when there was one, which left to read only those it did not find.
        scopes, page, _ = self._scopes(request, request.accepted_media_type)
        known = self.cache_generations_read()
        seed = None
        if early is not None and early.generation is not None:
            generation = early.generation
        elif (proposed := self._proposed(cache, namespace, scopes, page, known)) is not None:
            # A page nobody asked for yet (in any media type): its generation is seeded with
            # its lookup, in one round trip, unless another request seeded it first.
            generation, seed = proposed
        else:
            generation = generation_of(namespace, scopes, known=known)
        # A page is stored only if no change was taken in while it was computed (``store_page``):
        # the collections' generation, read before the query.
        collections = (
            generation_of(collection_scope(namespace), known=known) if page is not None else None
        )
        user_id = request.user.pk if self.cache_per_user else None
        media_type = request.accepted_media_type
        key = response_key(namespace, generation, request, media_type=media_type, user_id=user_id)
        lock = lock_key(key)
        locked: bool | None = None
        if early is not None and early.key == key:
            entry = early.entry  # looked up already
            locked, early.locked = early.locked, None  # (released below, or by the store)
        else:
            entry, locked, seeded = self._look_up(cache, key, lock, early, seed)
            if seed is not None and seeded is True:
                accept_seed(seed, page)
            elif seed is not None:
                # Another request seeded it first (or the cache did not answer): its value.
                known = {**(known or {}), seed.key: seeded}
                generation = generation_of(namespace, scopes, known=known)
                key = response_key(
                    namespace, generation, request, media_type=media_type, user_id=user_id
                )
                lock = lock_key(key)
                entry, locked, _ = self._look_up(cache, key, lock, early)
        if entry is not None:
            return self._replay(request, entry, "HIT", cache)
        if locked is None:
            locked = cache.add(lock, 1, self.lock_timeout)
        if not locked:
            entry = self._wait_for(cache, key, lock)
            if entry is not None:
                return self._replay(request, entry, "HIT", cache)
        # What the response remembers on the way (its list's ids, its rows) is stored with it.
        deferring = getattr(cache, "writes_deferred", contextlib.nullcontext)
        try:
            with deferring():
                response = compute()
                if not isinstance(response, Response) or not 200 <= response.status_code < 300:
                    return response
                response = self.finalize_response(request, response)
                response.render()
                body = bytes(response.content)
                etag = representation_etag(body)
                content_type = response["Content-Type"]
                timeout = self.cache_timeout
                ttl = jittered(timeout if timeout is not None else default_timeout())
                # The entry says when it expires, so that no copy of it outlives it (``hot``).
                expires_at = None if ttl is None else time.time() + ttl
                entry = (body, etag, content_type, expires_at)
                if page is None or not hasattr(cache, "store_page"):
                    if hasattr(cache, "store"):  # (the lock released in the same round trip)
                        cache.store(key, entry, ttl, release=lock if locked else None)
                        locked = False  # (a store that did not reach the cache: by itself)
                    else:
                        # (A cache of Django's own bumps the layout for any change.)
                        cache.set(key, entry, ttl)
                elif self.cache_shows is not None:
                    collections_key = generation_key(collection_scope(namespace))
                    cache.store_page(
                        PageEntry(
                            key,
                            entry,
                            ttl,
                            unless_changed=(collections_key, collections),
                            page=generation_key(page),
                            shows=object_fields(self.cache_shows),
                            release=lock if locked else None,
                        )
                    )
                    # Released by the store, stored or not; if the store did not reach the cache
                    # (an open breaker), the lock ends with its timeout, as it would on a crash.
                    locked = False
                # (A page that cannot say which objects it shows is not stored.)
        finally:
            if locked:
                cache.delete(lock)
        answer = _precondition(request, etag)
        self._count(cache, hit=False)
        return _decorated(response if answer is None else answer, etag, "MISS")

    def _look_up(
        self, cache: Any, key: str, lock: str, early: EarlyRead | None, seed: Seed | None = None
    ) -> tuple[Sequence | None, bool | None, Any]:
        """The entry under ``key`` and, when there is none, whether its lock was taken
        (``None``: not tried), in one round trip with the keys read ahead, which join what the
        early read found (``cache_read_ahead``) — after ``seed`` is stored, if it is given:
        then also whether it was (``True``), or what its key holds (``Lookup.seeded``)."""
        if not hasattr(cache, "lookup"):  # a cache of Django's own
            return stored_entry(_peek(cache, key)), None, None
        found = cache.lookup(key, lock, self.lock_timeout, self.cache_read_ahead, seed)
        if seed is not None and found.seeded is not True:
            return None, None, found.seeded
        if early is not None and found.ahead:
            early.found.update(found.ahead)
            early.keys = [*early.keys, *found.ahead]
        if found.value is not None:
            return stored_entry(found.value), None, found.seeded
        return None, found.locked, found.seeded

    @staticmethod
    def _proposed(
        cache: Any, namespace: str, scopes: Sequence[str], page: str | None, known: Any
    ) -> tuple[int | str, Seed] | None:
        """For a page whose generation alone the early read found missing, on a cache that
        seeds with its lookup: the generation once a proposed seed is stored, and the seed
        (``generations.proposed_generation``)."""
        if page is None or not known or not hasattr(cache, "lookup"):
            return None
        if known.get(generation_key(page), 0) is not None:  # (read and found, or not read)
            return None
        return proposed_generation(namespace, scopes, known, page)

    def _wait_for(self, cache: Any, key: str, lock: str) -> Any:
        """Poll for the lock holder's result; stop early once the lock is gone.

        ``has_key`` counts no hit or miss, so waiting does not distort the statistics, and on an
        unreachable cache it answers False at once: the waiter computes instead of waiting.
        """
        deadline = self.monotonic() + self.stampede_wait
        while True:
            if cache.has_key(key):
                return stored_entry(_peek(cache, key))
            if not cache.has_key(lock):
                # The holder finished without storing (an error response) or gave up; or the
                # lock was never taken because the cache refused it (an outage): never sleep then.
                return stored_entry(_peek(cache, key))
            if self.monotonic() >= deadline:
                return None
            with waiting():  # (the thread computing it may be of this process)
                self.sleep(self.stampede_poll)

    def _count(self, cache: Any, *, hit: bool) -> None:
        """Count this request's response: one hit or one miss of the namespace, as the client
        sees it in ``X-Cache`` (docs/design.md, "Invariants", 7)."""
        count = getattr(cache, "count_response", None)
        if count is not None:
            count(self.cache_namespace, hit=hit)

    def _replay(self, request: Any, entry: Sequence, outcome: str, cache: Any) -> HttpResponse:
        self._count(cache, hit=True)
        body, etag, content_type, _ = entry
        answer = _precondition(request, etag)
        if answer is None:
            answer = HttpResponse(body, content_type=content_type)
        return _decorated(answer, etag, outcome)


def _peek(cache: Any, key: str) -> Any:
    """The value under ``key``, counted as a call but neither a hit nor a miss (the response
    is counted once, by what it was: ``_count``); a cache of Django's own has no ``peek``."""
    peek = getattr(cache, "peek", None)
    return peek(key) if peek is not None else cache.get(key)


def stored_entry(value: Any) -> Sequence | None:
    """``value`` if it is a response as ``cached_response`` stores it — body bytes, ETag,
    content type, when it expires (seconds since the epoch, ``None`` for never) — else
    ``None``: what another program wrote under the key is a miss.

    The serializer gives plain data back, not the tuple that was stored: a list from Redis and
    locmem alike (``locmem``), whose four parts unpack the same.
    """
    if (
        type(value) in (list, tuple)
        and len(value) == 4
        and type(value[0]) is bytes
        and type(value[1]) is str
        and type(value[2]) is str
        and (value[3] is None or type(value[3]) is float)
    ):
        return value
    return None


def settled_entry(
    cache: Any, settled_as: tuple, settled: Settled, generation_names: dict[str, str]
) -> tuple[Sequence | None, tuple | None]:
    """The entry that answers a request settled before (``Settled``) as ``settled_as``, after
    its one read: the same generations found, the throttles passed (counted by the read), the
    entry there. Otherwise ``None``; and what was read, unless nothing was (the token's user
    forgotten)."""
    known = cache.state.settled
    if time.time() >= settled.until:
        known.pop(settled_as, None)  # (the token's user forgotten: looked up again)
        return None, None
    rates = [
        RateCheck(key, limit, per, clock())
        for (key, limit, per), clock in zip(settled.checks, settled.clocks, strict=True)
    ]
    # Without copies (``hot``), the entry is read with the generations that name it.
    peek = settled.key if settled.signature is None else None
    values, verdicts = cache.read(settled.keys, rates=rates, rates_if=settled.rates_if, peek=peek)
    stored = values.pop(peek, None) if peek is not None else None
    # (with who the token was when the request was settled: the early read confirms it by the
    # same read)
    seen = (settled.rates_if[1], tokens.fresh(settled.user))
    read = (settled.keys, settled.rates_if, values, verdicts, seen)
    if _deciding(values, settled.stored_against) != settled.found:
        known.pop(settled_as, None)  # something changed: decided again
        return None, read
    if went_back(values, generation_names, cache.state.highest):
        return None, read
    if verdicts is not None and not all(verdict.allowed for verdict in verdicts):
        return None, read  # DRF's path answers 429, from the verdicts counted here
    if settled.signature is not None:
        epoch = values.get(_PURGE_GENERATION)
        copied = cache.state.copies.get(settled.signature, epoch)
        entry = None if copied is None else copied[1]
    else:
        entry = stored_entry(stored)
    return entry, read


def _deciding(values: dict[str, Any], stored_against: str | None) -> dict[str, Any]:
    """The generations of ``values`` that decide a settled request's answer (``Settled``)."""
    if stored_against is None or stored_against not in values:
        return values
    return {key: value for key, value in values.items() if key != stored_against}


def _precondition(request: Any, etag: str) -> HttpResponse | None:
    """The 304 (or 412) Django's conditional request handling answers for a representation
    with ``etag``, or ``None`` when the request asks for the representation itself.

    Django's function decides; what it decided is remembered. A cached representation has an
    ETag and no Last-Modified, so the answer depends on nothing but the method, the four
    conditional headers and the ETag: a client revalidating the same page again gets a 304
    without its headers being parsed again.
    """
    meta = request.META
    conditions = (
        meta.get("HTTP_IF_NONE_MATCH"),
        meta.get("HTTP_IF_MATCH"),
        meta.get("HTTP_IF_MODIFIED_SINCE"),
        meta.get("HTTP_IF_UNMODIFIED_SINCE"),
    )
    if conditions == _UNCONDITIONAL:
        return None  # what Django's function answers too, without parsing anything
    memo = (request.method, etag, conditions)
    status = _preconditions.get(memo, _UNDECIDED)
    if status == 304:
        return HttpResponseNotModified()  # what Django's function makes of a 304 for a GET
    if status is None:
        return None
    answer = get_conditional_response(request, etag=etag)
    if status is _UNDECIDED:
        if len(_preconditions) >= _MAX_PRECONDITIONS:
            _preconditions.clear()
        _preconditions[memo] = None if answer is None else answer.status_code
    return answer


_UNCONDITIONAL = (None, None, None, None)
_UNDECIDED = object()
#: Decisions remembered (clients choose their conditional headers); a 412 is not short-cut, so
#: that Django logs it as it does every refused precondition.
_MAX_PRECONDITIONS = 4096
_preconditions: dict[tuple, int | None] = {}


def _decorated(response: HttpResponse, etag: str, outcome: str) -> HttpResponse:
    """``response`` with the headers of a cached representation (a 304 keeps them too)."""
    response["ETag"] = etag
    response["X-Cache"] = outcome
    response["Cache-Control"] = CACHE_CONTROL
    if response.has_header("Vary"):
        patch_vary_headers(response, VARY)
    else:
        response["Vary"] = _VARY_VALUE
    return response
