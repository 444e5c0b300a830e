"""The project's settings with a cache that asks for django-redis's sharding client, which the
service refuses (``test_redis_deployments``): start-up must fail, not the first request."""

from project.settings import *  # noqa: F403

CACHES = {
    "default": {
        "BACKEND": "performance.cache.redis.InstrumentedRedisCache",
        # Nothing listens there: the refusal must come before any connection is tried.
        "LOCATION": ["redis://127.0.0.1:9/0", "redis://127.0.0.1:9/1"],
        "KEY_PREFIX": "wsinv-sharded",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"},
    }
}
