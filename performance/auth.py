"""Token authentication whose lookups are cached, so a warm read runs no SQL at all.

Who a token is lives in the cache under the ``auth`` generation (``cache.tokens``). Any change
that could alter who a token is or what they may do — a token created or deleted, a user saved
or deleted, group or permission membership changed — bumps that generation
(``performance.signals``), so revoking a token, deactivating a user or changing their rights
takes effect on the very next request.

The cache's early read (``cache.responses``) uses this class's own parsing of the header
(``token_of``), then hands back what it found (``settle``), so DRF's path, if it follows for the
same request, neither parses nor looks up again.
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


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's ``TokenAuthentication``, with the database lookup cached."""

    _settled: tuple[str, Any] | None = None

    def token_of(self, request: Any) -> str | None:
        """The token the request carries, read exactly as DRF reads it (``None`` without one);
        raises ``AuthenticationFailed`` for a header DRF refuses."""
        found = _parser(self.keyword).authenticate(request)
        return None if found is None else found[1]

    def settle(self, request: Any, user: Any, key: str) -> None:
        """What the cache found for ``key`` in this request: ``authenticate`` answers it."""
        self._settled = (key, user)

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        if self._settled is not None and self.token_of(request) == self._settled[0]:
            key, user = self._settled
            return user, self.get_model()(key=key, user=user)
        return super().authenticate(request)

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        backend = cache.backend()
        generation = cache.get_generation(AUTH_NAMESPACE)
        user = tokens.lookup(backend, key, generation)
        if user is None:
            user, token = super().authenticate_credentials(key)
            # Only the user is stored (the key names it by hash): the token never sits in the
            # cache. Only active users get this far; a deactivation bumps the generation.
            tokens.remember(
                backend, key, generation, user, cache.api.jittered(backend.default_timeout)
            )
            return user, token
        if not user.is_active:  # pragma: no cover - a deactivation invalidates the entry
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, self.get_model()(key=key, user=user)
