"""Django's messages, kept where Django keeps them, with nothing made for a request that uses
none (``MESSAGE_STORAGE``)."""

from __future__ import annotations

from typing import Any

from django.contrib.messages.storage.base import BaseStorage
from django.contrib.messages.storage.fallback import FallbackStorage
from django.http import HttpRequest
from django.utils.functional import cached_property


class DeferredFallbackStorage(FallbackStorage):
    """Django's ``FallbackStorage`` (a signed cookie, then the session), whose two storages are
    made when a message is first read or added.

    ``MessageMiddleware`` gives every request a storage, and Django's makes both of its own at
    once: the cookie's signer, the session's. An API request, which neither reads nor adds a
    message, paid for them on every request, a warm hit included; its response then finds
    nothing used and nothing added, and stores nothing (``BaseStorage.update``)."""

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        BaseStorage.__init__(self, request, *args, **kwargs)
        self._arguments = (args, kwargs)
        self._used_storages: set[BaseStorage] = set()

    @cached_property
    def storages(self) -> list[BaseStorage]:  # type: ignore[override]
        args, kwargs = self._arguments
        return [kind(self.request, *args, **kwargs) for kind in self.storage_classes]
