"""The embedded cache is bounded in bytes: least recently used out first, large values never in.

Django's local-memory cache is bounded in entries only; one client asking for large pages under
new query strings filled each entry with hundreds of kilobytes. The byte count is checked
against the sizes of what the cache holds after every kind of change.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from performance.cache import locmem
from tests.factories import LocationFactory, WorkstationFactory

from .support import LIST, LOCMEM, get, unique

KB = 1024
BODY = b"x" * (50 * KB)


def bounded_config(**options: int) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": LOCMEM,
            "LOCATION": unique("bytes"),
            "TIMEOUT": 300,
            "KEY_PREFIX": unique("b"),
            "OPTIONS": {"MAX_ENTRIES": 10_000, **options},
        }
    }


@pytest.fixture
def bounded(settings) -> Iterator[Any]:
    settings.CACHES = bounded_config(MAX_BYTES=400 * KB, MAX_ENTRY_BYTES=100 * KB)
    cache = caches["default"]
    yield cache
    cache.clear()


def held(cache: Any) -> int:
    """What the entries hold, counted from scratch the way the backend counts."""
    with cache._lock:
        return sum(
            locmem._ENTRY_OVERHEAD + sys.getsizeof(key) + locmem._value_size(value)
            for key, value in cache._cache.items()
        )


def test_bytes_are_bounded_least_recently_used_out_first(bounded):
    for n in range(20):
        bounded.set(f"pages:{n}", (BODY, f'"etag-{n}"', "application/json"))
        bounded.get("pages:0")  # the first stays the most recently used
    usage = bounded.usage()
    assert usage["bytes"] == held(bounded) <= 400 * KB
    present = [n for n in range(20) if bounded.get(f"pages:{n}") is not None]
    assert present[0] == 0
    assert present[1:] == list(range(20 - len(present) + 1, 20))  # the newest
    assert 5 <= len(present) <= 8
    assert bounded.server_info()["evictions"] == 20 - len(present)


def test_a_value_over_the_entry_limit_is_not_cached(bounded):
    bounded.set("pages:big", "small before")
    bounded.set("pages:big", b"y" * (150 * KB))
    assert bounded.get("pages:big", "absent") == "absent"  # nor is the old value left
    assert bounded.add("pages:other", [b"z" * (150 * KB)]) is False
    assert bounded.usage()["refused_entries"] == 2
    assert bounded.usage()["bytes"] == held(bounded) == 0


def test_every_change_keeps_the_count(bounded):
    bounded.set_many({f"pages:{n}": BODY[: n * KB] for n in range(1, 8)})
    bounded.delete("pages:3")
    bounded.set("pages:n", 1)
    bounded.incr("pages:n", 10**30)  # an int that grows
    bounded.add("pages:1", "not added")
    bounded.touch("pages:2", 1000)
    bounded.set("pages:4", {"a": "pickled"})
    assert bounded.usage()["bytes"] == held(bounded) > 0
    bounded.clear()
    assert bounded.usage()["bytes"] == held(bounded) == 0


def test_culling_by_entries_keeps_the_count(settings):
    settings.CACHES = bounded_config(MAX_ENTRIES=9, MAX_BYTES=10 * 1024 * KB)
    cache = caches["default"]
    for n in range(30):
        cache.set(f"pages:{n}", BODY[: n * 100])
    assert len(cache._cache) <= 9
    assert cache.usage()["bytes"] == held(cache)


def test_the_generations_outlive_a_flood_of_entries(bounded):
    """A generation is read on every request, so it is never the least recently used."""
    bounded.set("_gen:pages", 12345, timeout=None)
    for n in range(100):
        bounded.get("_gen:pages")
        bounded.set(f"pages:{n}", BODY)
    assert bounded.get("_gen:pages") == 12345


@pytest.mark.django_db
def test_a_page_over_the_entry_limit_is_served_and_not_cached(settings, reader_client):
    settings.CACHES = bounded_config(MAX_BYTES=10 * 1024 * KB, MAX_ENTRY_BYTES=8 * KB)
    location = LocationFactory()
    WorkstationFactory.create_batch(30, location=location)
    first = get(reader_client, f"{LIST}?page_size=30")
    second = get(reader_client, f"{LIST}?page_size=30")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first["X-Cache"] == second["X-Cache"] == "MISS"
    assert first.content == second.content
    small = [get(reader_client, f"{LIST}?page_size=1")["X-Cache"] for _ in range(2)]
    assert small == ["MISS", "HIT"]
    assert caches["default"].usage()["refused_entries"] >= 2


@pytest.mark.django_db
def test_the_console_shows_the_bytes_held_and_the_bounds(settings, staff):
    from django.test import Client

    settings.CACHES = bounded_config(MAX_BYTES=400 * KB, MAX_ENTRY_BYTES=100 * KB)
    cache = caches["default"]
    cache.set("pages:1", BODY)
    cache.set("pages:big", BODY * 3)
    browser = Client()
    browser.force_login(staff)
    page = browser.get("/admin/performance/cache/").content.decode()
    assert "Bytes held" in page
    assert "of 400.0\xa0KB" in page
    assert "Too large to cache" in page
    assert "(over 100.0\xa0KB)" in page


class _WatchedLock:
    """The cache's lock, counting the Python functions called while it is held."""

    def __init__(self, lock: Any) -> None:
        self.lock, self.held, self.calls = lock, False, 0

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if self.held and event == "call":
            self.calls += 1

    def __enter__(self) -> None:
        self.lock.acquire()
        self.held = True

    def __exit__(self, *exc: object) -> None:
        self.held = False
        self.lock.release()


def test_walking_the_keys_holds_up_no_request(settings, monkeypatch):
    """The console counts the keys of each namespace by walking every key of the cache; every
    request's lookup waits for the cache's lock meanwhile. The walk holds it for a copy of the
    keys and their expiry times only (C code, no Python call per key): at 100,000 keys, 48 ms
    of checks under the lock were 6 ms of copying."""
    settings.CACHES = bounded_config()
    cache = caches["default"]
    live = {f"workstations:{n}": n for n in range(500)}
    cache.set_many(live)
    cache.set("workstations:gone", 1, timeout=-1)  # (expired: not counted)
    watched = _WatchedLock(cache._lock)
    monkeypatch.setattr(cache, "_lock", watched)
    previous = sys.getprofile()
    sys.setprofile(watched._profile)
    try:
        keys = sorted(cache.logical_keys("workstations:*"))
    finally:
        sys.setprofile(previous)
        cache.clear()

    assert keys == sorted(live)
    assert watched.calls < 5, f"{watched.calls} Python calls while the lock was held"
