"""Pattern invalidation: one glob dialect on both backends (Redis's), a namespace named in every
pattern, the cache layer's own keys only when named, the throttles' histories never."""

from __future__ import annotations

import pytest

from performance import cache as perf_cache
from performance.cache import glob

KEYS = {
    "workstations:1:aaa": 1,
    "workstations:1:abc": 2,
    "workstations:1:!x": 3,
    "workstations:1:~y": 4,
    "workstations:1:*star": 5,
    "workstations:2:zzz": 6,
    "locations:1:aaa": 7,
    "_lock:workstations:1:aaa": 8,
    "_memo:workstations:1:count": 9,
}


@pytest.fixture
def keys(cache_backend):
    cache_backend.set_many(KEYS)
    return KEYS


def matched(pattern: str) -> set[str]:
    return set(perf_cache.backend().logical_keys(pattern))


# One dialect: Redis's, on locmem as on Redis ------------------------------------------------


@pytest.mark.parametrize(
    "pattern, expected",
    [
        # Redis negates with '^'; '[!a]' is the class of '!' and 'a' (fnmatch: "not a").
        ("workstations:1:[!a]*", {"workstations:1:aaa", "workstations:1:abc", "workstations:1:!x"}),
        ("workstations:1:[^a!~*]*", set()),
        (
            "workstations:1:[^a]*",
            {"workstations:1:!x", "workstations:1:~y", "workstations:1:*star"},
        ),
        ("workstations:[2-9]:*", {"workstations:2:zzz"}),
        ("workstations:[9-2]:*", {"workstations:2:zzz"}),  # a range either way round
        ("workstations:1:a?c", {"workstations:1:abc"}),
        ("workstations:1:\\*star", {"workstations:1:*star"}),  # an escaped star is a star
        ("workstations:1:[\\*]*", {"workstations:1:*star"}),
        ("workstations:*a", {"workstations:1:aaa"}),
        ("workstations:1:a**c", {"workstations:1:abc"}),
    ],
)
def test_both_backends_match_the_same_keys_with_redis_glob(keys, pattern, expected):
    assert matched(pattern) == expected
    assert perf_cache.invalidate_pattern(pattern, dry_run=True) == len(expected)


def test_the_matcher_reads_patterns_as_redis_does():
    assert glob.matches("[!~]*", "!anything")
    assert not glob.matches("[!~]*", "workstations:1:aaa")
    assert glob.matches("[a-]]", "_")  # Redis: the range from "a" to "]", either way round
    assert glob.matches("a\\?", "a?") and not glob.matches("a\\?", "ab")
    assert glob.matches("*", "") and not glob.matches("?", "")
    # No exponential walk: a pattern with many stars against a long key that does not match.
    assert not glob.matches("*a" * 40 + "b", "a" * 200)


@pytest.mark.parametrize("pattern", ["workstations:[abc", "workstations:abc\\"])
def test_a_pattern_redis_would_misread_is_refused(pattern):
    with pytest.raises(perf_cache.InvalidPattern):
        perf_cache.validate_pattern(pattern)


# A namespace named in every pattern -----------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "*:*",
        "?*:*",
        "**:**",
        "[!~]*",
        "[^~]*",
        "[a-z]*",
        "*s:*",
        "work*:*",
        "workstation?:*",
        "workstations",
        "workstations*",
        "\\workstations:*",
        ":*",
        "[_]gen:*",
    ],
)
def test_a_pattern_that_does_not_name_its_namespace_is_refused(keys, pattern):
    with pytest.raises(perf_cache.InvalidPattern):
        perf_cache.invalidate_pattern(pattern)
    with pytest.raises(perf_cache.InvalidPattern):
        perf_cache.invalidate_pattern(pattern, dry_run=True)
    assert perf_cache.backend().get_many(list(keys)) == keys


def test_the_cache_layers_own_keys_are_reached_only_when_named(keys):
    assert matched("workstations:*") == {k for k in KEYS if k.startswith("workstations:")}
    assert perf_cache.invalidate_pattern("_lock:*", dry_run=True) == 1
    assert perf_cache.invalidate_pattern("_memo:workstations:*") == 1
    assert perf_cache.backend().get("_memo:workstations:1:count") is None


def test_the_throttles_histories_are_never_reached_by_a_pattern(keys):
    backend = perf_cache.backend()
    backend.set("throttle:login_username:abc", [1.0])
    for pattern in ("throttle:*", "throttle:login_username:*"):
        with pytest.raises(perf_cache.InvalidPattern, match="throttle"):
            perf_cache.invalidate_pattern(pattern)
    assert backend.get("throttle:login_username:abc") == [1.0]
