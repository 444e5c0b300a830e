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
