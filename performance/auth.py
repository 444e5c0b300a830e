"""Token authentication whose lookups are cached, so a warm read runs no SQL at all.

The token → (user, token) pair is cached under the ``auth`` namespace's generation, keyed by a
hash of the token (never the token itself). Any change that could alter who a token is or what
they may do — a token created or deleted, a user saved or deleted, group or permission
membership changed — bumps that generation (``performance.signals``), so revoking a token,
deactivating a user or changing their rights takes effect on the very next request.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from . import cache

AUTH_NAMESPACE = "auth"


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def auth_key(generation: int, key: str) -> str:
    return f"{AUTH_NAMESPACE}:{generation}:{token_digest(key)}"


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's ``TokenAuthentication``, with the database lookup cached."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        backend = cache.backend()
        entry_key = auth_key(cache.get_generation(AUTH_NAMESPACE), key)
        user = backend.get(entry_key)
        if user is None:
            user, token = super().authenticate_credentials(key)
            # Only the user is stored (the key names it by hash): the token never sits in the
            # cache. Only active users get this far; a deactivation bumps the generation.
            backend.set(entry_key, user, cache.api.jittered(backend.default_timeout))
            return user, token
        if not user.is_active:  # pragma: no cover - a deactivation invalidates the entry
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, self.get_model()(key=key, user=user)
