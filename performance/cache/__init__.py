"""The one place that talks to Django's cache framework.

Everything else in the service calls these functions; ruff's banned-api rule keeps
``django.core.cache`` out of every other module.

- ``invalidate(*namespaces)`` / ``invalidate_on_commit(*namespaces)``: O(1) generation bumps.
- ``invalidate_pattern(pattern, dry_run=False)``: an operator's tool, a glob over this service's
  logical keys (SCAN-based on Redis, scoped to the key prefix).
- ``clear()``: remove this service's keys only.
- ``stats()`` / ``reset_stats()``: per-namespace figures (fleet-wide on Redis).
- ``warm()``: run the warmers that registered with ``register_namespace``.
- ``cached(namespace, ttl=...)``: cache a function's result under the namespace's generation;
  ``remember`` / ``remember_objects``: a value, or one per object, computed when not cached;
  ``remembered_key``: where ``remember`` keeps one, for a view to read it ahead.
- ``rate_hits(checks)``: count requests against the throttles' rates, atomically.
- ``responses.CachedResponseMixin``: the read path of DRF views (docs/design.md, "A cached GET").
"""

from __future__ import annotations

from . import changes, sync
from .api import (
    InvalidPattern,
    backend,
    cached,
    clear,
    count_request,
    invalidate,
    invalidate_on_commit,
    invalidate_pattern,
    rate_hits,
    reachable,
    remember,
    remember_objects,
    remembered_key,
    reset_stats,
    stats,
    validate_pattern,
    warm,
)
from .generations import (
    ABOUT_ALL,
    ABOUT_LAYOUT,
    ABOUT_OBJECT,
    ABOUT_PAGE,
    bump_generation,
    get_generation,
)
from .namespaces import (
    UnknownNamespace,
    namespaces,
    register_namespace,
    response_namespaces,
    validate_namespace,
)

__all__ = [
    "ABOUT_ALL",
    "ABOUT_LAYOUT",
    "ABOUT_OBJECT",
    "ABOUT_PAGE",
    "InvalidPattern",
    "UnknownNamespace",
    "backend",
    "bump_generation",
    "cached",
    "changes",
    "clear",
    "count_request",
    "get_generation",
    "invalidate",
    "invalidate_on_commit",
    "invalidate_pattern",
    "namespaces",
    "rate_hits",
    "reachable",
    "register_namespace",
    "remember",
    "remember_objects",
    "remembered_key",
    "reset_stats",
    "response_namespaces",
    "stats",
    "sync",
    "validate_namespace",
    "validate_pattern",
    "warm",
]
