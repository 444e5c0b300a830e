"""The notes of which list pages show which object (``store_page``, docs/design.md, "List
pages") survive what Redis may do to them: a hash of names lost while the sets stay, a full
Redis that refuses a write halfway through the script. A note lost is a page served stale
after its object changes in place."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from performance.cache import state
from performance.cache.backends import PageEntry
from performance.cache.keys import collection_scope, generation_key, listings_key

from .support import redis_config, unique

NAMESPACE = "workstations"
COLLECTIONS = generation_key(collection_scope(NAMESPACE))


def _store(cache, page: str, shows: list[str]) -> bool:
    return cache.store_page(
        PageEntry(
            f"{NAMESPACE}:1.2.3:{page}",
            [b"{}", '"etag"', "application/json", None],
            300,
            unless_changed=(COLLECTIONS, 7),
            page=generation_key(f"{NAMESPACE}:page:{page}"),
            shows=shows,
        )
    )


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
    assert _store(redis_cache, "p", ["41"])
    _raw(redis_cache).delete(redis_cache.make_key(listings_key(NAMESPACE)))  # evicted, say
    assert _store(redis_cache, "q", ["42"])
    assert _store(redis_cache, "p", ["41"])  # the same page again: its set holds it already
    assert _named(redis_cache, "41")


def test_a_full_redis_drops_no_page_noted_before(settings, private_redis):
    settings.CACHES = redis_config(private_redis.url, unique("wsinv-notes"))
    state.reset_all()
    cache = caches["default"]
    try:
        cache.set(COLLECTIONS, 7, None)
        assert _store(cache, "p", ["41"])
        with private_redis.client() as admin:  # full: reads answered, every write refused
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", admin.info("memory")["used_memory"] // 2)
            try:
                assert not _store(cache, "q", ["41"])  # refused: nothing stored
            finally:
                admin.config_set("maxmemory", 0)
        page = cache.make_key(generation_key(f"{NAMESPACE}:page:p")).encode()
        assert _pages_of(cache, "41") == {page}
        assert _named(cache, "41")
    finally:
        state.reset_all()
