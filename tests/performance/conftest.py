"""Fixtures for the cache core: one suite, run against both instrumented backends.

``CACHES`` is switched through the ``settings`` fixture; Django's ``setting_changed`` receiver
(``django.test.signals.clear_cache_handlers``) closes the old backends and drops every thread's
instance, so ``caches["default"]`` is built afresh from the new settings in every thread. Each test
gets its own locmem LOCATION or its own Redis KEY_PREFIX, and its Redis keys are removed after.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from rest_framework.test import APIClient

from tests.conftest import require_service

from .servers import REDIS_SERVER, RedisServer
from .support import TEST_REDIS_URL, delete_prefixed, locmem_config, redis_config, unique


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis, checked once: skip loudly locally, fail under CI=true."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", f"{TEST_REDIS_URL}: {exc}")
    finally:
        client.close()
    return TEST_REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """Raw redis-py access to the test database, for what the cache API cannot show."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    prefix = unique("wsinv-test")
    yield prefix
    delete_prefixed(redis_client, prefix)


@pytest.fixture
def locmem_cache(settings) -> Iterator[Any]:
    settings.CACHES = locmem_config()
    cache = caches["default"]
    yield cache
    cache.clear()


@pytest.fixture
def redis_cache(settings, redis_url: str, redis_prefix: str) -> Any:
    settings.CACHES = redis_config(redis_url, redis_prefix)
    return caches["default"]


@pytest.fixture(params=["locmem", pytest.param("redis", marks=pytest.mark.redis)])
def cache_backend(request: pytest.FixtureRequest) -> Any:
    """The default cache, as each instrumented backend in turn."""
    return request.getfixturevalue(f"{request.param}_cache")


@pytest.fixture
def api(reader) -> APIClient:
    """A reader authenticated without a query (``force_authenticate``), so counts are the view's."""
    client = APIClient()
    client.force_authenticate(user=reader)
    return client


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the module's own, for what must not be done to the shared one (stop
    it, fill it, fail it over)."""
    if not REDIS_SERVER:
        require_service("redis-server", "the binary is not on PATH")
    server = RedisServer(Path(tmp_path_factory.mktemp("private-redis")))
    try:
        yield server
    finally:
        server.stop()
