"""The notes of which list pages show which object (``store_page``, docs/design.md, "List
pages") survive what Redis may do to them: a hash of names lost while the sets stay, a full
Redis that refuses a write halfway through the script. A note lost is a page served stale
after its object changes in place."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from performance.cache import state
from performance.cache.keys import generation_key, listings_key

from .support import COLLECTIONS, NAMESPACE, redis_config, store_page, unique


def _raw(cache):
    return cache.client.get_client(write=True)


def _pages_of(cache, object_field: str) -> set[bytes]:
    made = cache.make_key(listings_key(NAMESPACE))
    return _raw(cache).smembers(f"{made}:{object_field}")


def _named(cache, object_field: str) -> bool:
    return bool(_raw(cache).hexists(cache.make_key(listings_key(NAMESPACE)), object_field))


@pytest.mark.redis
def test_a_hash_of_names_lost_is_named_again_by_the_next_store(redis_cache):
    redis_cache.set(COLLECTIONS, 7, None)
    assert store_page(redis_cache, "p", ["41"])
    _raw(redis_cache).delete(redis_cache.make_key(listings_key(NAMESPACE)))  # evicted, say
    assert store_page(redis_cache, "q", ["42"])
    assert store_page(redis_cache, "p", ["41"])  # the same page again: its set holds it already
    assert _named(redis_cache, "41")


def test_a_full_redis_drops_no_page_noted_before(settings, private_redis):
    settings.CACHES = redis_config(private_redis.url, unique("wsinv-notes"))
    state.reset_all()
    cache = caches["default"]
    try:
        cache.set(COLLECTIONS, 7, None)
        assert store_page(cache, "p", ["41"])
        with private_redis.client() as admin:  # full: reads answered, every write refused
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", admin.info("memory")["used_memory"] // 2)
            try:
                assert not store_page(cache, "q", ["41"])  # refused: nothing stored
            finally:
                admin.config_set("maxmemory", 0)
        page = cache.make_key(generation_key(f"{NAMESPACE}:page:p")).encode()
        assert _pages_of(cache, "41") == {page}
        assert _named(cache, "41")
    finally:
        state.reset_all()
