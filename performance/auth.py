"""Token authentication whose lookups are cached, so a warm read runs no SQL at all.

Who a token is lives in the cache under the ``auth`` generation (``cache.tokens``). Any change
that could alter who a token is or what they may do — a token created or deleted, a user saved
or deleted, group or permission membership changed — bumps that generation
(``performance.signals``), so revoking a token, deactivating a user or changing their rights
takes effect on the very next request.

The header is ``Authorization: Bearer <token>`` (RFC 6750: what generic HTTP clients and clients
generated from the OpenAPI schema send) or DRF's ``Authorization: Token <token>``; any other
scheme is refused with a 401 that names the one to use, rather than read as "no credentials".

The cache's early read (``cache.responses``) uses this class's own parsing of the header
(``token_of``), then hands back what it found (``settle``): who the token is, or that the cache
does not know under the generation it read. DRF's path (``authenticate``) reads the header
through the same ``token_of``, so a request is read one way whichever path answers it, and
neither parses nor looks up again what the early read settled.
"""

from __future__ import annotations

import functools
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

from . import cache
from .cache import tokens
from .cache.keys import AUTH_NAMESPACE

__all__ = ["AUTH_NAMESPACE", "KEYWORDS", "CachedTokenAuthentication"]

#: The schemes a token is accepted under, the documented one first.
KEYWORDS = ("Bearer", "Token")
UNKNOWN_SCHEME = (
    "Unsupported authorization scheme: send 'Authorization: Bearer <token>' "
    "(or 'Authorization: Token <token>')."
)


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


def _read(request: Any, keywords: tuple[str, ...]) -> str | None:
    """The token of the request's ``Authorization`` header: ``None`` without a header, DRF's own
    reading (and errors) under a known scheme, ``AuthenticationFailed`` under any other."""
    parts = get_authorization_header(request).split()
    if not parts:
        return None
    scheme = parts[0].lower()
    for keyword in keywords:
        if scheme == keyword.lower().encode():
            found = _parser(keyword).authenticate(request)
            return None if found is None else found[1]
    # Read as "no credentials" by DRF, which then answers "Authentication credentials were not
    # provided" to a client that sent them under another name (Basic, JWT...).
    raise exceptions.AuthenticationFailed(UNKNOWN_SCHEME)


#: The reading of an ``Authorization`` header depends on nothing but the header and the
#: keywords: each reading is remembered (bounded, since clients choose their headers), a header
#: refused as ``_REFUSED``, so that it is read again and the same error raised.
_MAX_READINGS = 4096
_readings: dict[tuple[tuple[str, ...], Any], Any] = {}
_REFUSED = object()


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's ``TokenAuthentication`` under the ``Bearer`` scheme too, with the database lookup
    cached."""

    keywords: tuple[str, ...] = KEYWORDS
    #: What the early read found for this request: (token, user or None, generation or None).
    _settled: tuple[str, Any, int | None] | None = None

    def token_of(self, request: Any) -> str | None:
        """The token the request carries, read as DRF reads it under each of ``keywords``
        (``None`` without one); raises ``AuthenticationFailed`` for a header it refuses."""
        memo = (self.keywords, request.META.get("HTTP_AUTHORIZATION"))
        token = _readings.get(memo, _REFUSED)
        if token is _REFUSED:
            try:
                token = _read(request, self.keywords)
            except exceptions.AuthenticationFailed:
                _remember(memo, _REFUSED)
                raise
            _remember(memo, token)
        return token

    def authenticate_header(self, request: Any) -> str:
        """The challenge of a 401: the documented scheme."""
        return self.keywords[0]

    def settle(self, key: str, *, user: Any = None, generation: int | None = None) -> None:
        """What the cache knows of ``key`` in this request: the user it names, or nothing
        under ``generation`` (the lookup missed)."""
        self._settled = (key, user, generation)

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        key = self.token_of(request)
        if key is None:
            return None
        settled = self._settled
        if settled is not None and settled[1] is not None and key == settled[0]:
            return settled[1], self._token(key, settled[1])
        return self.authenticate_credentials(key)

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
