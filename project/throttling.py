"""Request throttles: DRF's, made safe to key on what clients send, plus two for logging in.

Three differences from ``rest_framework.throttling``:

- Rates are read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` when the throttle is made
  (once per request), not copied onto the class at import, so a deployment's environment and a
  test's ``settings`` fixture both take effect.
- Whatever identifies the client (its address, the username it tries) is hashed with a keyed
  HMAC before it becomes part of a cache key: raw client input never reaches a key, and the keys
  an operator sees do not reveal who tried to log in.
- The history read from the cache is trusted only when it is a list of timestamps. An unreachable
  cache answers a miss (the instrumented backends' policy), anything else is treated as no
  history: throttling fails open rather than failing the request.

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

from performance import cache as perf_cache

if TYPE_CHECKING:  # rest_framework.views imports this module (DEFAULT_THROTTLE_CLASSES)
    from rest_framework.request import Request
    from rest_framework.views import APIView

_HMAC_SALT = "project.throttling"


def hashed(value: object) -> str:
    """A keyed, fixed-length stand-in for a client-supplied value."""
    return salted_hmac(_HMAC_SALT, str(value), algorithm="sha256").hexdigest()[:32]


def _is_history(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(stamp, int | float) and not isinstance(stamp, bool) and math.isfinite(stamp)
        for stamp in value
    )


class _History:
    """The cache as DRF's throttles use it (``get`` and ``set``), answering only sound histories."""

    def get(self, key: str, default: Any = None) -> Any:
        value = perf_cache.backend().get(key, default)
        return value if _is_history(value) else []

    def set(self, key: str, value: Any, timeout: int | None = None) -> None:
        perf_cache.backend().set(key, value, timeout)


class RateThrottleMixin:
    """Settings read at request time, hashed identities, fail-open history, a whole Retry-After."""

    cache = _History()
    cache_format = "throttle:%(scope)s:%(ident)s"

    def get_rate(self) -> str | None:
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError as exc:
            raise ImproperlyConfigured(
                f"No throttle rate set for the {self.scope!r} scope."
            ) from exc

    def get_ident(self, request: Request) -> str:
        return hashed(super().get_ident(request))

    def wait(self) -> float:
        # DRF answers None when the history already exceeds the rate (a rate lowered while the
        # history was kept); Retry-After must still be there, and a whole number of seconds.
        seconds = super().wait()
        if seconds is None:
            seconds = self.duration - (self.now - self.history[-1]) if self.history else 1
        return max(1, math.ceil(seconds))


class AnonRateThrottle(RateThrottleMixin, throttling.AnonRateThrottle):
    """Anonymous requests, per client address (``anon`` rate)."""


class UserRateThrottle(RateThrottleMixin, throttling.UserRateThrottle):
    """Authenticated requests, per user (``user`` rate)."""


class ScopedRateThrottle(RateThrottleMixin, throttling.ScopedRateThrottle):
    """Per user (or address) and per the view's ``throttle_scope`` (the staff cache actions)."""


class LoginAddressThrottle(RateThrottleMixin, throttling.SimpleRateThrottle):
    """Attempts to obtain a token, per client address, failed or not (``login_address`` rate)."""

    scope = "login_address"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


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
        return self.cache_format % {"scope": self.scope, "ident": hashed(normalised)}


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
