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
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
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
    #: The clock (DRF's), here so that a test sets one time for the throttles and the lockout.
    timer = time.time

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


# The login lockout ---------------------------------------------------------------------------
#
# After django-axes's lockout by the combination of username and address: failures are counted
# per (username, address), and that pair is locked when they reach the ``login_failures`` rate.
# Failures from other addresses never lock a user out of an address it has not failed from,
# nor of one it has logged in from (a *known* address, remembered ``LOGIN_KNOWN_ADDRESS_DAYS``).
# Guesses at one account spread over many addresses are still bounded: failures are counted per
# username too (``login_username``), and once those are spent an unknown address that has
# failed for that username is refused, so each address gets one guess a window.
#
# Before an attempt the windows are read without counting (``RateCheck.peek``); after it a
# failure is counted, a success remembers the address. Nothing is stored for an attempt the
# address budget refused, nor for a peek, so a flood of new usernames stores nothing once its
# address is refused. All of it goes through the cache layer's rates: kept apart from the LRU
# of responses (on locmem), counted in its statistics, and failing open with it.


def _rate(scope: str) -> tuple[int, float]:
    """``(limit, seconds)`` of a throttle scope's rate, read at request time."""
    try:
        rate = api_settings.DEFAULT_THROTTLE_RATES[scope]
    except KeyError as exc:
        raise ImproperlyConfigured(f"No throttle rate set for the {scope!r} scope.") from exc
    return throttling.SimpleRateThrottle.parse_rate(None, rate)


def normalised_username(username: object) -> str | None:
    """The username as Django compares it, case-folded ("Alice" and "alice" are one account
    here); ``None`` when there is none to count."""
    if not isinstance(username, str) or not username.strip():
        return None
    return unicodedata.normalize("NFKC", username).strip().casefold()


class LoginAttempt:
    """One attempt to log in as a username from an address: may it be tried, and what it gives.

    ``refusal()`` peeks at the windows (one round trip, nothing counted); ``record()`` counts
    a failure against the pair and the username, or remembers a success's address as known.
    """

    @staticmethod
    def timer() -> float:
        """The throttles' clock (``RateThrottleMixin.timer``), whatever sets it."""
        return RateThrottleMixin.timer()

    def __init__(self, username: str, address: str) -> None:
        self.username = username
        self.address = address
        self.pair_key = rate_key("login_failures", hashed((username, address)))
        self.username_key = rate_key("login_username", hashed(username))
        self.known_key = rate_key("login_known", hashed((username, address)))
        self.known_seconds = settings.LOGIN_KNOWN_ADDRESS_DAYS * 86_400

    def refusal(self) -> int | None:
        """Seconds to wait when the attempt is refused, otherwise ``None``."""
        now = self.timer()
        pair_limit, pair_seconds = _rate("login_failures")
        user_limit, user_seconds = _rate("login_username")
        pair, user, known = perf_cache.rate_hits(
            [
                RateCheck.peek(self.pair_key, pair_seconds, now),
                RateCheck.peek(self.username_key, user_seconds, now),
                RateCheck.peek(self.known_key, self.known_seconds, now),
            ]
        )
        if pair.count >= pair_limit:
            return _remaining(pair, pair_seconds, now)
        if pair.count and not known.count and user.count >= user_limit:
            return _remaining(user, user_seconds, now)
        return None

    def record(self, *, succeeded: bool) -> None:
        now = self.timer()
        if succeeded:
            perf_cache.rate_hits([RateCheck(self.known_key, 1, self.known_seconds, now)])
            return
        pair_limit, pair_seconds = _rate("login_failures")
        user_limit, user_seconds = _rate("login_username")
        # Counted up to their limit (a window full is a lock already): a refused count stores
        # nothing more.
        perf_cache.rate_hits(
            [
                RateCheck(self.pair_key, pair_limit, pair_seconds, now),
                RateCheck(self.username_key, user_limit, user_seconds, now),
            ]
        )


def address_of(request: Request) -> str:
    """The client's address as the throttles key it (DRF's ``get_ident``, hashed)."""
    return hashed(throttling.BaseThrottle().get_ident(request))


def _remaining(verdict: Verdict, seconds: float, now: float) -> int:
    """Whole seconds until the oldest request of a full window leaves it (at least 1)."""
    remaining = seconds - (now - verdict.oldest) if verdict.oldest is not None else seconds
    return max(1, math.ceil(remaining))


class LoginLockoutThrottle(throttling.BaseThrottle):
    """The lockout, asked the way DRF asks a throttle (after the address budget): the attempt's
    windows are peeked at, nothing counted; ``record_login`` counts the outcome."""

    _wait: int | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        data = request.data  # a malformed body is DRF's 400, counted against the address
        username = normalised_username(data.get("username") if isinstance(data, Mapping) else None)
        if username is None:
            return True  # the serializer refuses it without checking any password
        attempt = LoginAttempt(username, address_of(request))
        self._wait = attempt.refusal()
        if self._wait is None:
            # For ``record_login``, which sees the Django request once the view has answered.
            request._request.login_attempt = attempt
            request._request.login_password_given = _password_given(data)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


def _password_given(data: Any) -> bool:
    password = data.get("password") if isinstance(data, Mapping) else None
    return isinstance(password, str) and password != ""


def record_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` (``POST /api/auth/token/``) with the outcome of each attempt the lockout let
    through counted: 200 is a success, a 400 for a username and password a failure."""

    @functools.wraps(view)
    def login(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        attempt: LoginAttempt | None = getattr(request, "login_attempt", None)
        if attempt is not None:
            if response.status_code == 200:
                attempt.record(succeeded=True)
            elif response.status_code == 400 and getattr(request, "login_password_given", False):
                attempt.record(succeeded=False)
        return response

    return login


def login_refusal(request: HttpRequest) -> tuple[int | None, LoginAttempt | None]:
    """The admin form's attempt, as ``POST /api/auth/token/`` sees one: counted against the
    address budget, then asked of the lockout. The seconds to wait when refused, and the
    attempt to record when it goes ahead (``None`` for a body without a username)."""
    from rest_framework.exceptions import APIException
    from rest_framework.parsers import FormParser, MultiPartParser
    from rest_framework.request import Request

    wrapped = Request(request, parsers=[FormParser(), MultiPartParser()])
    throttle = LoginAddressThrottle()
    if not throttle.allow_request(wrapped, None):
        return throttle.wait(), None
    try:
        data = wrapped.data
    except APIException:
        # A body the form cannot have sent (JSON, malformed multipart): no username to count.
        # The address has counted the attempt; the form will refuse it.
        return None, None
    username = normalised_username(data.get("username"))
    if username is None or not _password_given(data):
        return None, None
    attempt = LoginAttempt(username, address_of(wrapped))
    return attempt.refusal(), attempt


def throttled_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` (the admin's login) with its POSTs throttled and locked out like
    ``POST /api/auth/token/``: a password guessed through the admin spends the same budgets,
    and the same lockout applies, as one guessed through the API."""

    @functools.wraps(view)
    def login(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        wait, attempt = login_refusal(request)
        if wait is not None:
            response = render(
                request,
                "admin/login_throttled.html",
                {"title": "Too many login attempts", "wait": wait},
                status=429,
            )
            response["Retry-After"] = str(wait)
            return response
        response = view(request, *args, **kwargs)
        if attempt is not None:
            user = getattr(request, "user", None)
            succeeded = bool(user is not None and user.is_authenticated)
            attempt.record(succeeded=succeeded and response.status_code == 302)
        return response

    return login
