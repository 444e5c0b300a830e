"""Token authentication whose lookups are cached, so a warm read runs no SQL at all.

The token → (user, token) pair is cached under the ``auth`` namespace's generation, keyed by a
hash of the token (never the token itself). Any change that could alter who a token is or what
they may do — a token created or deleted, a user saved or deleted, group or permission
membership changed — bumps that generation (``performance.signals``), so revoking a token,
deactivating a user or changing their rights takes effect on the very next request.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from typing import Any, NamedTuple

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from . import cache

AUTH_NAMESPACE = "auth"


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def auth_key(generation: int, key: str) -> str:
    return f"{AUTH_NAMESPACE}:{generation}:{token_digest(key)}"


class AuthEntry(NamedTuple):
    """What the cache keeps for a token: enough for the fast path to decide without building a
    model instance, and the pickled user for DRF's path."""

    user_id: int
    is_active: bool
    user_pickle: bytes

    @classmethod
    def of(cls, user: Any) -> AuthEntry:
        # Without its related-object cache: the user was loaded through its token, whose
        # reverse relation would otherwise carry the token itself into the cache.
        clean = copy.copy(user)
        clean._state = copy.copy(user._state)
        clean._state.fields_cache = {}
        return cls(user.pk, user.is_active, pickle.dumps(clean, pickle.HIGHEST_PROTOCOL))

    def user(self) -> Any:
        return pickle.loads(self.user_pickle)


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's ``TokenAuthentication``, with the database lookup cached."""

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        from .cache.fastpath import probe_of

        self._probe = probe_of(request)
        try:
            return super().authenticate(request)
        finally:
            self._probe = None

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        backend = cache.backend()
        probe = getattr(self, "_probe", None)
        if probe is not None and probe.token == key:
            # The fast path already looked this token up (and counted it): reuse what it found.
            entry_key, entry = probe.auth_key, probe.user
        else:
            entry_key = auth_key(cache.get_generation(AUTH_NAMESPACE), key)
            entry = backend.get(entry_key)
        if entry is None:
            user, token = super().authenticate_credentials(key)
            # Only the user is stored (the key names it by hash): the token never sits in the
            # cache. Only active users get this far; a deactivation bumps the generation.
            backend.set(entry_key, AuthEntry.of(user), cache.api.jittered(backend.default_timeout))
            return user, token
        if not entry.is_active:  # pragma: no cover - a deactivation invalidates the entry
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        user = entry.user()
        return user, self.get_model()(key=key, user=user)
