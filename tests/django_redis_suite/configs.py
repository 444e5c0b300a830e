"""Which of django-redis's test configurations run here, and the caches each one sets up.

Upstream runs its suite once per settings module (``tests/settings/sqlite*.py``), each with four
cache aliases: ``default`` (a ``LOCATION`` list: primary and replica, here the same database),
``doesnotexist`` (nothing listens there), ``sample`` (a comma-separated ``LOCATION``) and
``with_prefix``. They are reproduced here for both backends — django-redis's own, and this
service's — on a private Redis (see ``runner``), so that the only thing that differs between the
two runs is the backend.
"""

from __future__ import annotations

from typing import Any

STOCK = "django_redis.cache.RedisCache"
OURS = "performance.cache.redis.InstrumentedRedisCache"
BACKENDS = {"stock": STOCK, "ours": OURS}

#: The Redis database the suite uses. Tests on the shared server use 15, the benchmarks 14.
DB = 13
#: Our backend refuses to run without a key prefix (it scopes clear and patterns).
OUR_PREFIX = "django-redis-suite"

#: Upstream's settings modules run here, with the OPTIONS each one adds to its client's.
RUN: dict[str, dict[str, Any]] = {
    "sqlite": {},
    "sqlite_gzip": {"COMPRESSOR": "django_redis.compressors.gzip.GzipCompressor"},
    "sqlite_json": {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
    "sqlite_msgpack": {"SERIALIZER": "django_redis.serializers.msgpack.MSGPackSerializer"},
}

#: Upstream's settings modules not run here, and why.
NOT_RUN: dict[str, str] = {
    "sqlite_herd": "HerdClient: refused by this service's backend at start (its own stampede "
    "lock replaces herd's stale-value trick; tests/performance/test_redis_deployments.py)",
    "sqlite_sharding": "ShardClient: refused by this service's backend at start (generations "
    "and their entries must live on one primary; tests/performance/test_redis_deployments.py)",
    "sqlite_zlib": "the same path through the backend as sqlite_gzip (a compressor class of "
    "django-redis's own); left out to keep the run short",
    "sqlite_lz4": "needs the lz4 package, which the service does not install",
    "sqlite_zstd": "needs the pyzstd package, which the service does not install",
    "sqlite_usock": "needs a Redis listening on a unix socket; the transport is redis-py's and "
    "nothing of the backend depends on it",
    "sqlite_sentinel": "needs a Sentinel at upstream's fixed address; Sentinel is tested with a "
    "private one in tests/performance/test_redis_deployments.py",
    "sqlite_sentinel_opts": "needs a Sentinel at upstream's fixed address (as sqlite_sentinel)",
}


def caches(config: str, backend: str, url: str, dead_url: str) -> dict[str, Any]:
    """Upstream's four aliases of ``config`` on ``backend``; ``url`` is
    ``redis://host:port?db=N``, ``dead_url`` a port nothing listens on."""
    options = {"CLIENT_CLASS": "django_redis.client.DefaultClient", **RUN[config]}

    def alias(location: Any, prefix: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "BACKEND": BACKENDS[backend],
            "LOCATION": location,
            "OPTIONS": dict(options),
        }
        if prefix is None and backend == "ours":
            prefix = OUR_PREFIX
        if prefix is not None:
            params["KEY_PREFIX"] = prefix
        return params

    return {
        "default": alias([url, url]),
        "doesnotexist": alias(dead_url),
        "sample": alias(f"{url},{url}"),
        "with_prefix": alias(url, "test-prefix"),
    }
