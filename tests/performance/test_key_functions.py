"""Clear, patterns and key counts follow the cache's own KEY_FUNCTION, as django-redis's
``delete_pattern`` does (``make_pattern``): never a key layout assumed by hand."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from performance import cache as perf_cache

from .support import redis_config


def hashed_key(key: str, key_prefix: str, version: int | str) -> str:
    """A key function of another shape than Django's ``prefix:version:key``."""
    return f"{key_prefix}#{version}#{key}"


def hashed_reverse(key: str) -> str:
    return key.split("#", 2)[2]


@pytest.mark.redis
@pytest.mark.parametrize("reverse", [True, False], ids=["with-reverse", "without-reverse"])
def test_clear_and_patterns_follow_a_custom_key_function(
    settings, redis_url, redis_prefix, redis_client, reverse
):
    config = redis_config(redis_url, redis_prefix)["default"]
    config["KEY_FUNCTION"] = f"{__name__}.hashed_key"
    if reverse:  # without one, the logical key is read where the key function puts it
        config["REVERSE_KEY_FUNCTION"] = f"{__name__}.hashed_reverse"
    settings.CACHES = {"default": config}
    cache = caches["default"]
    for key in ("things:1:a", "things:1:b", "other:1:c", "_gen:things", "throttle:user:7"):
        cache.set(key, 1)
    cache.set("things:1:z", 1, version=2)
    neighbour = hashed_key("things:1:a", f"{redis_prefix}-neighbour", 1)
    redis_client.set(neighbour, b"another application's")

    assert sorted(cache.logical_keys("things:*")) == ["things:1:a", "things:1:b"]
    assert perf_cache.invalidate_pattern("things:*", dry_run=True) == 2
    assert perf_cache.invalidate_pattern("things:*") == 2
    assert redis_client.exists(hashed_key("things:1:a", redis_prefix, 1)) == 0
    assert cache.get("other:1:c") == 1

    perf_cache.clear()  # every version, but the clients' request rates
    left = {key.decode() for key in redis_client.scan_iter(match=f"{redis_prefix}#*")}
    statistics = {key for key in left if key.startswith(f"{redis_prefix}#stats")}
    assert left - statistics == {hashed_key("throttle:user:7", redis_prefix, 1)}
    assert redis_client.get(neighbour) == b"another application's"
