"""The instrumented backends keep Django's cache contract: counting never changes a result."""

from __future__ import annotations

import warnings

import pytest
from django.core.cache.backends.base import CacheKeyWarning


@pytest.mark.parametrize("value", [None, 0, [], False, "", 0.0])
def test_falsy_values_come_back_as_stored(cache_backend, value):
    cache_backend.set("things:falsy", value)
    assert cache_backend.get("things:falsy", "default") == value
    assert type(cache_backend.get("things:falsy", "default")) is type(value)
    assert cache_backend.get_many(["things:falsy"]) == {"things:falsy": value}


def test_get_returns_the_default_only_when_missing(cache_backend):
    assert cache_backend.get("things:absent") is None
    assert cache_backend.get("things:absent", "fallback") == "fallback"
    cache_backend.set("things:present", {"a": [1, 2]})
    assert cache_backend.get("things:present", "fallback") == {"a": [1, 2]}


def test_add_does_not_overwrite(cache_backend):
    assert cache_backend.add("things:k", "first") is True
    assert cache_backend.add("things:k", "second") is False
    assert cache_backend.get("things:k") == "first"


def test_get_or_set(cache_backend):
    calls = []

    def compute():
        calls.append(1)
        return "computed"

    assert cache_backend.get_or_set("things:k", compute) == "computed"
    assert cache_backend.get_or_set("things:k", compute) == "computed"
    assert calls == [1]
    cache_backend.set("things:zero", 0)
    assert cache_backend.get_or_set("things:zero", "other") == 0


def test_many_operations(cache_backend):
    # Django returns the keys that failed; django-redis returns None for "none failed".
    assert not cache_backend.set_many({"things:a": 1, "things:b": None, "other:c": [3]})
    assert cache_backend.get_many(["things:a", "things:b", "other:c", "things:missing"]) == {
        "things:a": 1,
        "things:b": None,
        "other:c": [3],
    }
    cache_backend.delete_many(["things:a", "other:c"])
    assert cache_backend.get_many(["things:a", "things:b", "other:c"]) == {"things:b": None}


def test_incr_and_decr(cache_backend):
    cache_backend.set("things:n", 10)
    assert cache_backend.incr("things:n") == 11
    assert cache_backend.incr("things:n", 5) == 16
    assert cache_backend.decr("things:n", 6) == 10
    assert cache_backend.get("things:n") == 10
    with pytest.raises(ValueError):
        cache_backend.incr("things:missing")
    with pytest.raises(ValueError):
        cache_backend.decr("things:missing")
    assert cache_backend.get("things:missing", "absent") == "absent"


def test_touch(cache_backend):
    assert cache_backend.touch("things:missing", 60) is False
    cache_backend.set("things:k", "v", timeout=60)
    assert cache_backend.touch("things:k", 600) is True
    assert cache_backend.get("things:k") == "v"
    # timeout=0 expires the key at once
    assert cache_backend.touch("things:k", 0) is True
    assert cache_backend.get("things:k", "gone") == "gone"


def test_versions_are_separate(cache_backend):
    cache_backend.set("things:k", "v1")
    cache_backend.set("things:k", "v2", version=2)
    assert cache_backend.get("things:k") == "v1"
    assert cache_backend.get("things:k", version=2) == "v2"
    cache_backend.delete("things:k", version=2)
    assert cache_backend.get("things:k", version=2) is None
    assert cache_backend.get("things:k") == "v1"


def test_has_key_and_delete(cache_backend):
    assert cache_backend.has_key("things:k") is False
    cache_backend.set("things:k", None)
    assert cache_backend.has_key("things:k") is True
    assert cache_backend.delete("things:k") is True
    assert cache_backend.delete("things:k") is False
    assert cache_backend.has_key("things:k") is False


def test_clear_removes_every_entry(cache_backend):
    cache_backend.set_many({"things:a": 1, "other:b": 2})
    cache_backend.set("things:v2", 3, version=2)
    cache_backend.clear()
    assert cache_backend.get_many(["things:a", "other:b"]) == {}
    assert cache_backend.get("things:v2", version=2) is None


def test_locmem_warns_about_keys_other_backends_reject(locmem_cache):
    with pytest.warns(CacheKeyWarning):
        locmem_cache.set("things:a key with spaces", 1)
    for _ in range(2):  # each time it is used, read or written
        with pytest.warns(CacheKeyWarning, match="characters"):
            locmem_cache.get("things:a key with spaces")
        with pytest.warns(CacheKeyWarning, match="characters"):
            locmem_cache.get_many(["things:fine", "things:tab\there"])
    with pytest.warns(CacheKeyWarning, match="longer than 250"):
        locmem_cache.add("things:" + "k" * 250, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        locmem_cache.set("things:fine", 1)
    assert locmem_cache.get("things:fine") == 1


def test_a_lookup_takes_the_lock_and_reads_ahead_only_on_a_miss(cache_backend):
    cache_backend.set("workstations:page", b"stored")
    cache_backend.set("workstations:ahead", [1, 2])
    found = cache_backend.lookup(
        "workstations:page", "_lock:page", 10, lambda: ["workstations:ahead"]
    )
    assert (found.value, found.locked, found.ahead) == (b"stored", False, {})
    assert not cache_backend.has_key("_lock:page")

    missed = cache_backend.lookup(
        "workstations:other", "_lock:other", 10, lambda: ["workstations:ahead", "workstations:no"]
    )
    assert (missed.value, missed.locked) == (None, True)
    assert missed.ahead == {"workstations:ahead": [1, 2], "workstations:no": None}
    again = cache_backend.lookup("workstations:other", "_lock:other", 10)
    assert (again.value, again.locked) == (None, False)  # another request holds the lock


def test_a_lookup_seeds_a_missing_generation_unless_another_was_there(cache_backend):
    from performance.cache.generations import Seed

    seeded = cache_backend.lookup(
        "workstations:a", "_lock:a", 10, seed=Seed("_gen:workstations:page:x", 41, 60)
    )
    assert (seeded.seeded, seeded.locked) == (True, True)
    assert cache_backend.get("_gen:workstations:page:x") == 41

    lost = cache_backend.lookup(
        "workstations:b", "_lock:b", 10, seed=Seed("_gen:workstations:page:x", 42, 60)
    )
    assert (lost.seeded, lost.locked, lost.value) == (41, False, None)
    assert not cache_backend.has_key("_lock:b")  # nothing else was done
