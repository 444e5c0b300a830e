"""Request throttles: DRF's, counted by the cache layer in one atomic step, plus two for logging in.

Four differences from ``rest_framework.throttling``:

- The sliding window is counted by the cache (``cache.rates``): one atomic operation per request
  for all of a view's throttles, instead of DRF's read and write that race each other. The cache's
  early read of a warm hit counts it in the same round trip as the generations
  (``rate_check`` / ``settle``), so warm hits are throttled like every other request.
- Rates are read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` when the throttle is made
  (once per request), not copied onto the class at import, so a deployment's environment and a
  test's ``settings`` fixture both take effect.
- Whatever identifies the client (its address, the username it tries) is hashed with a keyed
  HMAC before it becomes part of a cache key: raw client input never reaches a key, and the keys
  an operator sees do not reveal who tried to log in.
- An unreachable cache lets the request through: throttling fails open rather than failing it.

The client address comes from DRF's ``get_ident``, which honours ``REST_FRAMEWORK["NUM_PROXIES"]``:
with 0 (development) ``X-Forwarded-For`` is ignored, so a client cannot pick its own identity.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.crypto import salted_hmac
from rest_framework import throttling
from rest_framework.settings import api_settings

from . import cache as perf_cache
from .cache.keys import rate_key
from .cache.rates import RateCheck, Verdict

if TYPE_CHECKING:  # rest_framework.views imports this module (DEFAULT_THROTTLE_CLASSES)
    from rest_framework.request import Request
    from rest_framework.views import APIView

_HMAC_SALT = "performance.throttling"


def hashed(value: object) -> str:
    """A keyed, fixed-length stand-in for a client-supplied value."""
    return salted_hmac(_HMAC_SALT, str(value), algorithm="sha256").hexdigest()[:32]


class RateThrottleMixin:
    """Rates counted by the cache, settings read at request time, hashed identities, fail-open,
    a whole Retry-After."""

    check: RateCheck | None = None
    verdict: Verdict | None = None
    _settled = False

    def get_rate(self) -> str | None:
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError as exc:
            raise ImproperlyConfigured(
                f"No throttle rate set for the {self.scope!r} scope."
            ) from exc

    def get_ident(self, request: Request) -> str:
        return hashed(super().get_ident(request))

    def rate_check(self, request: Request, view: APIView) -> RateCheck | None:
        """What this request would count against (``None``: nothing, it passes)."""
        if self.rate is None:
            return None
        key = self.get_cache_key(request, view)
        if key is None:
            return None
        self.now = self.timer()
        return RateCheck(key, self.num_requests, self.duration, self.now)

    def settle(self, check: RateCheck | None, verdict: Verdict | None) -> None:
        """The cache's answer for this request, counted already: ``allow_request`` returns it."""
        self.check, self.verdict, self._settled = check, verdict, True

    def allow_request(self, request: Request, view: APIView) -> bool:
        if not self._settled:
            check = self.rate_check(request, view)
            self.settle(check, perf_cache.rate_hits([check])[0] if check is not None else None)
        return self.verdict is None or self.verdict.allowed

    def wait(self) -> float:
        seconds = self.verdict.wait(self.check) if self.verdict and self.check else 1
        return max(1, math.ceil(seconds))


class AnonRateThrottle(RateThrottleMixin, throttling.AnonRateThrottle):
    """Anonymous requests, per client address (``anon`` rate)."""

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return rate_key(self.scope, self.get_ident(request))


class UserRateThrottle(RateThrottleMixin, throttling.UserRateThrottle):
    """Authenticated requests, per user (``user`` rate); anonymous ones per address."""

    def get_cache_key(self, request: Request, view: APIView) -> str:
        if request.user and request.user.is_authenticated:
            return rate_key(self.scope, str(request.user.pk))
        return rate_key(self.scope, self.get_ident(request))


class ScopedRateThrottle(RateThrottleMixin, throttling.ScopedRateThrottle):
    """Per user (or address) and per the view's ``throttle_scope`` (the staff cache actions)."""

    def rate_check(self, request: Request, view: APIView) -> RateCheck | None:
        # As DRF's allow_request: the scope, and so the rate, are the view's.
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return None
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().rate_check(request, view)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        if request.user and request.user.is_authenticated:
            return rate_key(self.scope, str(request.user.pk))
        return rate_key(self.scope, self.get_ident(request))


class LoginAddressThrottle(RateThrottleMixin, throttling.SimpleRateThrottle):
    """Attempts to obtain a token, per client address, failed or not (``login_address`` rate)."""

    scope = "login_address"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return rate_key(self.scope, self.get_ident(request))


class LoginUsernameThrottle(RateThrottleMixin, throttling.SimpleRateThrottle):
    """Attempts to obtain a token, per username tried, whatever the address (``login_username``
    rate): spreading guesses for one account over many addresses does not help.

    The username is normalised the way Django normalises usernames, then case-folded, so that
    "Alice" and "alice" share one budget. Runs after ``LoginAddressThrottle``: reading the body
    may fail (malformed JSON), and the attempt has been counted against the address by then.
    """

    scope = "login_username"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        data = request.data
        username = data.get("username") if isinstance(data, Mapping) else None
        if not isinstance(username, str) or not username.strip():
            return None  # the serializer refuses it without checking any password
        normalised = unicodedata.normalize("NFKC", username).strip().casefold()
        return rate_key(self.scope, hashed(normalised))


def login_wait(request: HttpRequest) -> int | None:
    """Count a login form's attempt against the token endpoint's budgets (per address and per
    username tried); the seconds to wait when one is spent, otherwise ``None``.

    Every throttle counts the attempt, as DRF's ``check_throttles`` does.
    """
    from rest_framework.exceptions import APIException
    from rest_framework.parsers import FormParser, MultiPartParser
    from rest_framework.request import Request

    wrapped = Request(request, parsers=[FormParser(), MultiPartParser()])
    waits = []
    for throttle in (LoginAddressThrottle(), LoginUsernameThrottle()):
        try:
            allowed = throttle.allow_request(wrapped, None)
        except APIException:
            # A body the form cannot have sent (JSON, malformed multipart): no username to
            # count. The address has counted the attempt; the form will refuse it.
            continue
        if not allowed:
            waits.append(throttle.wait())
    return max(waits) if waits else None


def throttled_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` (the admin's login) with its POSTs throttled like ``POST /api/auth/token/``: a
    password guessed through the admin spends the same budget as one guessed through the API."""

    @functools.wraps(view)
    def login(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            wait = login_wait(request)
            if wait is not None:
                response = render(
                    request,
                    "admin/login_throttled.html",
                    {"title": "Too many login attempts", "wait": wait},
                    status=429,
                )
                response["Retry-After"] = str(wait)
                return response
        return view(request, *args, **kwargs)

    return login
