"""System checks for the runtime shape (registered from ``PerformanceConfig.ready``)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from .cache.redis import unusable_cache


@register(Tags.caches)
def check_cache_shape(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    workers = os.environ.get("WEB_CONCURRENCY", "1").strip() or "1"
    if "LocMem" in backend and workers.isdigit() and int(workers) > 1:
        errors.append(
            Error(
                "The local-memory cache cannot serve several worker processes.",
                hint="Set REDIS_URL to share one cache, or run one worker (WEB_CONCURRENCY=1).",
                id="performance.E001",
            )
        )
    if "Redis" in backend and not settings.CACHES["default"].get("KEY_PREFIX"):
        errors.append(
            Error(
                "The Redis cache needs a KEY_PREFIX: clear and pattern invalidation are scoped "
                "to it, so that other applications' keys are never touched.",
                hint="Set CACHE_KEY_PREFIX.",
                id="performance.E002",
            )
        )
    return errors


@register(Tags.caches)
def check_cache_backend(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The default cache can be built from its settings: the Redis backend refuses, when it is
    built, a client the service cannot run on (docs/design.md, "Redis deployments"). Built here
    too, so that start-up fails rather than the first request."""
    problem = unusable_cache("default")
    if problem is None:
        return []
    return [
        Error(
            problem,
            hint="With this project's settings: REDIS_URL (one server, or the primary's URL "
            "then its replicas') or REDIS_SENTINELS with REDIS_SENTINEL_MASTER.",
            id="performance.E003",
        )
    ]
