"""Generations never repeat, even when the generation key is evicted or the cache is cleared."""

from __future__ import annotations

import pytest

from performance import cache as perf_cache
from performance.cache import generations
from tests.factories import WorkstationFactory
from workstations.models import Workstation

from .support import LIST, get

T0 = 1_750_000_000.0  # seconds since the epoch


@pytest.fixture
def clock(monkeypatch):
    """The generations' clock, set by the test: ``clock.now`` seconds since the epoch."""

    class Clock:
        now = T0

    monkeypatch.setattr(generations, "clock", lambda: Clock.now)
    # A fresh process: nothing seen yet (the backend fixtures make the cache's state anew).
    monkeypatch.setattr(generations, "_highest_of_plain_caches", {})
    return Clock


def test_a_clock_that_steps_back_cannot_repeat_a_generation(cache_backend, clock):
    seen = [perf_cache.get_generation("things")]
    seen += [perf_cache.bump_generation("things") for _ in range(3)]
    cache_backend.clear()  # the generation key is gone...
    clock.now -= 60  # ...and the clock has stepped back (NTP, another host's skew)
    after = perf_cache.get_generation("things")
    assert after > max(seen)


def test_a_missing_generation_is_seeded_from_the_clock(cache_backend, clock):
    assert perf_cache.get_generation("things") == int(T0 * 1_000_000)
    clock.now += 5
    # Stored: the clock no longer matters until the key goes.
    assert perf_cache.get_generation("things") == int(T0 * 1_000_000)


def test_bump_moves_the_generation_forward(cache_backend, clock):
    first = perf_cache.get_generation("things")
    second = perf_cache.bump_generation("things")
    third = perf_cache.bump_generation("things")
    assert first < second < third
    assert perf_cache.get_generation("things") == third
    assert perf_cache.get_generation("other") == first  # namespaces are independent


def test_bumping_a_missing_generation_seeds_it_past_the_clock(cache_backend, clock):
    bumped = perf_cache.bump_generation("things")
    assert bumped >= int(T0 * 1_000_000)
    assert perf_cache.get_generation("things") == bumped


def server_clock_us(cache_backend) -> int:
    """The clock a bump reads: the Redis server's, or this process's (locmem)."""
    if cache_backend.process_local:
        return int(generations.clock() * 1_000_000)
    seconds, micros = cache_backend.client.redis().time()
    return seconds * 1_000_000 + micros


def test_a_counter_that_went_back_jumps_past_every_value_it_gave_out(cache_backend, clock):
    """A failover to a replica that missed writes, or a restore from an older snapshot, leaves
    an older counter behind: the next bump is at least the clock, never the old value + 1
    (which the lost counter had already handed out)."""
    handed_out = [perf_cache.bump_generation("things") for _ in range(3)]
    cache_backend.set(generations.generation_key("things"), handed_out[0], timeout=None)
    generations.highest(cache_backend).clear()  # another process, which never saw them
    clock.now += 0.001  # the failover took its time

    before = server_clock_us(cache_backend)
    bumped = perf_cache.bump_generation("things")

    assert bumped >= before
    assert bumped > max(handed_out)


def test_a_generation_read_below_what_this_process_saw_is_replaced(cache_backend, clock, caplog):
    """The same, seen by a process that had read the newer value: it replaces the generation
    before serving anything under it."""
    newest = perf_cache.bump_generation("things")
    cache_backend.set(generations.generation_key("things"), newest - 5, timeout=None)

    current = perf_cache.get_generation("things")

    assert current > newest
    assert perf_cache.get_generation("things") == current
    assert "went back" in caplog.text


@pytest.mark.parametrize("lose_it", ["delete", "clear"])
def test_generations_never_repeat_after_the_key_is_lost(cache_backend, clock, lose_it):
    seen = [perf_cache.get_generation("things")]
    for _ in range(3):
        clock.now += 0.000_001
        seen.append(perf_cache.bump_generation("things"))
        clock.now += 0.000_01
        if lose_it == "delete":
            cache_backend.delete(generations.generation_key("things"))
        else:
            perf_cache.clear()
        seen.append(perf_cache.get_generation("things"))
        seen.append(perf_cache.bump_generation("things"))
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)


@pytest.mark.django_db
@pytest.mark.parametrize("lose_it", ["delete", "clear"])
def test_no_old_entry_is_served_once_the_generation_is_lost(cache_backend, clock, api, lose_it):
    workstation = WorkstationFactory(notes="before")
    assert get(api).headers["X-Cache"] == "MISS"
    assert get(api).headers["X-Cache"] == "HIT"
    # A change the cache never heard of (as if its invalidation had been lost)...
    Workstation.objects.filter(pk=workstation.pk).update(notes="after")
    clock.now += 1
    # ...then the generation key goes: the old entry, still stored, must not come back.
    if lose_it == "delete":
        cache_backend.delete(generations.generation_key("workstations"))
    else:
        perf_cache.clear()
    response = get(api, LIST)
    assert response.headers["X-Cache"] == "MISS"
    assert response.json()["results"][0]["notes"] == "after"
