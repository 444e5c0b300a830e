"""Statistics tell the truth: hits by sentinel, per namespace, per key, across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.cache import caches

from performance import cache as perf_cache

from .support import locmem_config, namespace_stats

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value", [None, 0, [], False])
def test_a_cached_falsy_value_is_a_hit(cache_backend, value):
    cache_backend.set("tally:falsy", value)
    cache_backend.get("tally:falsy")
    cache_backend.get("tally:falsy", "default")
    assert namespace_stats("tally")["hits"] == 2
    assert namespace_stats("tally")["misses"] == 0


def test_a_missing_key_is_a_miss(cache_backend):
    cache_backend.get("tally:absent")
    cache_backend.get("tally:absent", 0)
    assert namespace_stats("tally")["hits"] == 0
    assert namespace_stats("tally")["misses"] == 2


def test_counts_are_per_namespace(cache_backend):
    cache_backend.set("alpha:1", 1)
    cache_backend.get("alpha:1")
    cache_backend.get("beta:1")
    cache_backend.set("nocolon", 1)
    cache_backend.get("nocolon")
    figures = perf_cache.stats(include_keys=False)["namespaces"]
    assert (figures["alpha"]["hits"], figures["alpha"]["misses"], figures["alpha"]["sets"]) == (
        1,
        0,
        1,
    )
    assert (figures["beta"]["hits"], figures["beta"]["misses"], figures["beta"]["sets"]) == (
        0,
        1,
        0,
    )
    assert (figures["default"]["hits"], figures["default"]["sets"]) == (1, 1)


def test_get_many_counts_each_key_once(cache_backend):
    cache_backend.set_many({"tally:a": 0, "tally:b": None})
    found = cache_backend.get_many(["tally:a", "tally:b", "tally:c", "other:d"])
    assert found == {"tally:a": 0, "tally:b": None}
    figures = namespace_stats("tally")
    assert (figures["hits"], figures["misses"], figures["sets"]) == (2, 1, 2)
    assert namespace_stats("other")["misses"] == 1


def test_sets_and_deletes_are_counted(cache_backend):
    cache_backend.set("tally:a", 1)
    cache_backend.set("tally:b", 2)
    cache_backend.add("tally:b", 3)  # not added: not a set
    cache_backend.add("tally:c", 3)
    cache_backend.delete("tally:a")
    cache_backend.delete("tally:never")  # nothing deleted: not a delete
    cache_backend.delete_many(["tally:b", "tally:c"])
    figures = namespace_stats("tally")
    assert (figures["sets"], figures["deletes"]) == (3, 3)


def test_time_is_recorded(cache_backend):
    assert namespace_stats("tally")["time_us"] == 0
    for n in range(50):
        cache_backend.set(f"tally:{n}", "x" * 1000)
        cache_backend.get(f"tally:{n}")
    assert namespace_stats("tally")["time_us"] > 0


def test_reset_stats_zeroes_every_figure(cache_backend):
    cache_backend.set("tally:a", 1)
    cache_backend.get("tally:a")
    cache_backend.get("tally:b")
    assert namespace_stats("tally")["hits"] == 1
    perf_cache.reset_stats()
    assert namespace_stats("tally") == {
        "hits": 0,
        "misses": 0,
        "sets": 0,
        "deletes": 0,
        "time_us": 0,
    }
    assert perf_cache.stats(include_keys=False)["totals"]["hits"] == 0
    cache_backend.get("tally:a")
    assert namespace_stats("tally")["hits"] == 1


def test_stats_count_live_keys_per_namespace(cache_backend):
    cache_backend.set_many({"tally:a": 1, "tally:b": 2, "other:c": 3})
    namespaces = perf_cache.stats()["namespaces"]
    assert (namespaces["tally"]["keys"], namespaces["other"]["keys"]) == (2, 1)


# Locmem: bounded, least recently used first ---------------------------------------------------


def test_locmem_evicts_least_recently_used_and_counts_it(settings):
    settings.CACHES = locmem_config(max_entries=10)
    cache = caches["default"]
    for n in range(10):
        cache.set(f"tally:{n}", n)
    assert cache.get("tally:0") == 0  # read: now the most recently used
    cache.set("tally:new", "x")  # over the limit: the oldest third goes

    assert cache.get("tally:0") == 0
    assert cache.get("tally:new") == "x"
    assert cache.get("tally:1") is None  # the oldest entry nobody read
    stats = perf_cache.stats(include_keys=False)
    assert stats["evictions"] == 3
    assert stats["server"]["entries"] == 8
    cache.clear()


# Redis: one set of figures for the whole fleet ------------------------------------------------

COUNTING_PROCESS = textwrap.dedent(
    """
    import django
    django.setup()
    from django.core.cache import caches
    cache = caches["default"]
    for _ in range({hits}):
        cache.get("tally:present")
    for _ in range({misses}):
        cache.get("tally:absent")
    cache.flush_stats()
    """
)


@pytest.mark.redis
def test_redis_counters_add_up_across_processes(redis_cache, redis_url, redis_prefix):
    redis_cache.set("tally:present", 0)
    redis_cache.get("tally:present")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": redis_prefix,
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", COUNTING_PROCESS.format(hits=hits, misses=2)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for hits in (40, 25)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()

    figures = namespace_stats("tally")
    assert figures["hits"] == 1 + 40 + 25
    assert figures["misses"] == 2 + 2
    assert figures["sets"] == 1
    assert perf_cache.stats(include_keys=False)["scope"] == "fleet"

    perf_cache.reset_stats()
    assert namespace_stats("tally")["hits"] == 0


# The response cache's hit rate, apart from the bookkeeping ----------------------------------


@pytest.fixture
def inventory(db):
    from tests.factories import LocationFactory, WorkstationFactory

    location = LocationFactory(name="Lab")
    return [WorkstationFactory(hostname=f"ws-{n}", location=location) for n in range(3)]


def test_responses_count_what_the_client_saw_and_bookkeeping_apart(
    cache_backend, reader_client, inventory
):
    """Known traffic: each cacheable response counts once, as its X-Cache says; token lookups,
    generations and throttles are bookkeeping and never enter the response hit rate."""
    from .support import LIST, LOCATIONS, get

    seen = {"HIT": 0, "MISS": 0, None: 0}
    detail = f"{LIST}{inventory[0].pk}/"
    script = [LIST, LIST, LIST, f"{LIST}?status=staged", detail, detail, LOCATIONS, LOCATIONS]
    script += [f"{LIST}999999/", f"{LIST}999999/"]  # 404s: not cacheable, not counted
    etag = None
    for path in script:
        response = get(reader_client, path)
        seen[response.headers.get("X-Cache")] += 1
        etag = etag or response.headers.get("ETag")
    revalidated = get(reader_client, LIST, HTTP_IF_NONE_MATCH=etag)  # a 304 from the cache
    assert (revalidated.status_code, revalidated.headers["X-Cache"]) == (304, "HIT")
    seen["HIT"] += 1

    figures = perf_cache.stats(include_keys=False)

    assert seen == {"HIT": 5, "MISS": 4, None: 2}
    assert figures["responses"]["hits"] == seen["HIT"]
    assert figures["responses"]["misses"] == seen["MISS"]
    assert figures["responses"]["hit_rate"] == round(5 / 9, 4)
    assert figures["responses"]["namespaces"] == ["locations", "workstations"]
    kinds = {ns: row["kind"] for ns, row in figures["namespaces"].items()}
    assert kinds["workstations"] == kinds["locations"] == "responses"
    assert kinds["auth"] == "bookkeeping"
    assert kinds["_gen"] == "internal"
    responses = ("workstations", "locations")
    bookkeeping = [row for ns, row in figures["namespaces"].items() if ns not in responses]
    assert figures["bookkeeping"]["hits"] == sum(row["hits"] for row in bookkeeping) > 0
    assert "hit_rate" not in figures["totals"]  # responses and lookups are not rated together


def test_the_history_counts_http_requests_and_responses_per_minute(
    cache_backend, reader_client, anon_client, inventory
):
    from .support import LIST, get

    for _ in range(3):
        get(reader_client, LIST)
    get(anon_client, LIST)  # a 401: a request, not a cacheable response
    reader_client.post(LIST, {}, format="json")  # a 403

    history = perf_cache.stats(include_keys=False)["history"]

    assert sum(row["requests"] for row in history) == 5
    assert sum(row["hits"] for row in history) == 2
    assert sum(row["misses"] for row in history) == 1


def test_lifetime_counters_never_go_back(cache_backend):
    recorder = cache_backend.recorder
    cache_backend.set("tally:a", 1)
    cache_backend.get("tally:a")
    cache_backend.get("tally:b")
    before = recorder.lifetime()["tally"]

    perf_cache.reset_stats()
    cache_backend.get("tally:a")

    after = recorder.lifetime()["tally"]
    assert (before["hits"], before["misses"]) == (1, 1)
    assert (after["hits"], after["misses"], after["sets"]) == (2, 1, 1)
    assert namespace_stats("tally")["hits"] == 1  # the console's figures were reset
