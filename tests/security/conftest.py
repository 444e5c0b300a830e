"""Fixtures for the security tests: throttle rates through settings, a clock you can set."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from performance.throttling import RateThrottleMixin
from tests.conftest import require_service
from tests.performance.support import TEST_REDIS_URL, delete_prefixed, redis_config, unique

TOKEN_URL = "/api/auth/token/"
PASSWORD = "correct-horse-battery"  # tests/factories.py: UserFactory


class Clock:
    """Seconds since the epoch, moved by hand (a callable instance: it does not bind as a
    method when set on a throttle class, like DRF's own ``timer = time.time``)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The throttles' clock, fixed so that a test's requests fall in one window."""
    clock = Clock()
    monkeypatch.setattr(RateThrottleMixin, "timer", clock, raising=False)
    return clock


@pytest.fixture
def rates(settings, clock) -> Callable[..., None]:
    """Set throttle rates by scope. Our throttles read them at request time, so changing
    ``settings`` is enough (DRF's own copy them onto the class at import)."""

    def set_rates(**scopes: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                **scopes,
            },
        }

    return set_rates


@pytest.fixture
def on_redis(settings):
    """The production backend on the test Redis, under a prefix of its own."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", f"{TEST_REDIS_URL}: {exc}")
    prefix = unique("security")
    settings.CACHES = redis_config(TEST_REDIS_URL, prefix)
    yield client
    delete_prefixed(client, prefix)
    client.close()
