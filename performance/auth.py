"""Token authentication whose lookups are cached, so a warm read runs no SQL at all.

Who a token is lives in the cache under the ``auth`` generation (``cache.tokens``). Any change
that could alter who a token is or what they may do — a token created or deleted, a user saved
or deleted, group or permission membership changed — bumps that generation
(``performance.signals``), so revoking a token, deactivating a user or changing their rights
takes effect on the very next request.

The cache's early read (``cache.responses``) uses this class's own parsing of the header
(``token_of``), then hands back what it found (``settle``): who the token is, or that the cache
does not know under the generation it read. DRF's path, if it follows for the same request,
neither parses nor looks up again.
"""

from __future__ import annotations

import functools
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from . import cache
from .cache import tokens
from .cache.keys import AUTH_NAMESPACE

__all__ = ["AUTH_NAMESPACE", "CachedTokenAuthentication"]


class _TokenOf(TokenAuthentication):
    """DRF's ``TokenAuthentication.authenticate`` stopped before the lookup: its parsing of the
    header, errors included, answering the token itself."""

    def authenticate_credentials(self, key: str) -> tuple[None, str]:
        return None, key


@functools.cache
def _parser(keyword: str) -> _TokenOf:
    parser = _TokenOf()
    parser.keyword = keyword
    return parser


#: DRF's reading of an ``Authorization`` header depends on nothing but the header and the
#: keyword: each reading is remembered (bounded, since clients choose their headers), a header
#: DRF refuses as ``_REFUSED``, so that it is read again and DRF raises its own error.
_MAX_READINGS = 4096
_readings: dict[tuple[str, Any], Any] = {}
_REFUSED = object()


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's ``TokenAuthentication``, with the database lookup cached."""

    #: What the early read found for this request: (token, user or None, generation or None).
    _settled: tuple[str, Any, int | None] | None = None

    def token_of(self, request: Any) -> str | None:
        """The token the request carries, read exactly as DRF reads it (``None`` without one);
        raises ``AuthenticationFailed`` for a header DRF refuses."""
        memo = (self.keyword, request.META.get("HTTP_AUTHORIZATION"))
        token = _readings.get(memo, _REFUSED)
        if token is _REFUSED:
            try:
                found = _parser(self.keyword).authenticate(request)
            except exceptions.AuthenticationFailed:
                _remember(memo, _REFUSED)
                raise
            token = None if found is None else found[1]
            _remember(memo, token)
        return token

    def settle(self, key: str, *, user: Any = None, generation: int | None = None) -> None:
        """What the cache knows of ``key`` in this request: the user it names, or nothing
        under ``generation`` (the lookup missed)."""
        self._settled = (key, user, generation)

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        settled = self._settled
        if settled is not None and settled[1] is not None and self.token_of(request) == settled[0]:
            return settled[1], self._token(settled[0], settled[1])
        return super().authenticate(request)

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        backend = cache.backend()
        settled = self._settled
        if settled is not None and settled[0] == key and settled[2] is not None:
            generation, user = settled[2], None  # the early read looked, and missed
        else:
            generation = cache.get_generation(AUTH_NAMESPACE)
            user = tokens.lookup(backend, key, generation)
        if user is not None:
            return user, self._token(key, user)
        user, token = super().authenticate_credentials(key)
        # What authorisation needs of the user is stored, as plain data (``tokens.TokenEntry``;
        # the key names it by hash): neither the token nor the password hash sits in the
        # cache. Only active users get this far; a deactivation bumps the generation.
        tokens.remember(backend, key, generation, user, cache.api.jittered(backend.default_timeout))
        return user, token

    def _token(self, key: str, user: Any) -> Any:
        """The token object of ``key``, its user attached one way only: the user is shared by
        nobody else's request, but a reverse cache would carry the raw key along with it."""
        model = self.get_model()
        token = model(key=key, user_id=user.pk)
        model._meta.get_field("user").set_cached_value(token, user)
        return token


def _remember(memo: tuple[str, Any], reading: Any) -> None:
    if len(_readings) >= _MAX_READINGS:
        _readings.clear()
    _readings[memo] = reading
