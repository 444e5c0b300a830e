"""No invalidation missed in an outage survives it (``performance.cache.sync``): the database
counts every change (``changes``), and what the cache has not taken in is applied by the sweep,
by a process before it reads again, or by ``cache_replay``.

In-process, with the Django test client, against a private ``redis-server`` (the ones that pause
it) or none at all (locmem). The writes commit for real (``transactional_db``): the versions
live in the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
import redis as redis_py
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from performance.cache import state, sync
from performance.cache.generations import generation_key
from tests.factories import WorkstationFactory
from workstations import services

from .servers import RedisServer, wait_for
from .support import JSON, LIST, REDIS, locmem_config, unique

SOCKET_TIMEOUT = 0.1
RESET_TIMEOUT = 0.3


@pytest.fixture
def redis_cache(settings, private_redis: RedisServer) -> Iterator[RedisServer]:
    """The production configuration on the private server, with a fresh breaker."""
    prefix = unique("wsinv-sync")
    settings.CACHES = {
        "default": {
            "BACKEND": REDIS,
            "LOCATION": private_redis.url,
            "TIMEOUT": 300,
            "KEY_PREFIX": prefix,
            "OPTIONS": {
                "CLIENT_CLASS": "performance.cache.redis.InventoryRedisClient",
                "SOCKET_CONNECT_TIMEOUT": SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": SOCKET_TIMEOUT,
            },
        }
    }
    settings.CACHE_BREAKER_FAIL_MAX = 3
    settings.CACHE_BREAKER_RESET_TIMEOUT = RESET_TIMEOUT
    state.reset_all()
    yield private_redis
    if private_redis.stopped:
        private_redis.resume()
    state.reset_all()


@pytest.fixture
def client(transactional_db, staff) -> APIClient:
    api = APIClient()
    api.force_authenticate(user=staff)
    return api


def _list(client: APIClient) -> tuple[str | None, list[str]]:
    response = client.get(LIST, **JSON)
    assert response.status_code == 200, response.content
    return response.get("X-Cache"), [row["notes"] for row in response.json()["results"]]


def _patch(client: APIClient, pk: int, notes: str) -> None:
    response = client.patch(f"/api/workstations/{pk}/", {"notes": notes}, format="json")
    assert (response.status_code, response.json()["notes"]) == (200, notes)


def _guard() -> Any:
    from performance.cache import backend

    return backend().guard


def _behind() -> set[str]:
    return set(sync.behind())


def _missed_bump(steps: list) -> dict:
    """A bump that could not reach the cache."""
    return dict.fromkeys(step.namespace for step in steps)


def _replay_command() -> str:
    out = StringIO()
    call_command("cache_replay", stdout=out)
    return out.getvalue()


@pytest.mark.redis
def test_a_bump_that_misses_the_cache_is_replayed(
    redis_cache, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    workstation = WorkstationFactory(notes="old")
    assert _list(client) == ("MISS", ["old"])
    assert _list(client) == ("HIT", ["old"])

    with monkeypatch.context() as patch:
        patch.setattr(sync, "advance_after_write", _missed_bump)  # unreachable
        _patch(client, workstation.pk, "new")
    # This process knows it missed the bump and reads nothing from the cache until replayed;
    # another process does not know: the old list is what it finds under the live generation.
    assert _guard().needs_replay
    _guard().needs_replay = False
    assert {"workstations", "locations"} <= _behind()
    assert _list(client) == ("HIT", ["old"])

    assert "Namespaces that were behind: locations, workstations." in _replay_command()
    assert _behind() == set()
    assert _list(client) == ("MISS", ["new"])


@pytest.mark.redis
def test_the_process_that_missed_a_bump_replays_before_reading(
    redis_cache, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    workstation = WorkstationFactory(notes="old")
    _list(client)
    with monkeypatch.context() as patch:
        patch.setattr(sync, "advance_after_write", _missed_bump)
        _patch(client, workstation.pk, "new")
    assert _guard().needs_replay
    assert _list(client) == ("MISS", ["new"])
    assert _behind() == set()
    assert not _guard().needs_replay


@pytest.mark.redis
def test_a_worker_killed_between_commit_and_bump_is_swept(
    redis_cache, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    workstation = WorkstationFactory(notes="old")
    _list(client)
    with monkeypatch.context() as patch:
        # As if the process died once the write had committed, before its on_commit bump.
        patch.setattr(sync, "after_commit", lambda names: {})
        _patch(client, workstation.pk, "new")
    assert {"workstations", "locations"} <= _behind()
    assert _list(client) == ("HIT", ["old"])  # the stale entry the sweeper must remove

    sweeper = sync.Sweeper(interval=0.05)
    sweeper.start()
    try:
        assert wait_for(lambda: not _behind(), timeout=5)
    finally:
        sweeper.stop()
        sweeper.join(timeout=5)
    assert not sweeper.is_alive()
    assert _list(client) == ("MISS", ["new"])


@pytest.mark.redis
def test_an_opened_breaker_reads_nothing_until_the_missed_bumps_are_replayed(
    redis_cache: RedisServer, client
) -> None:
    workstation = WorkstationFactory(notes="old")
    _list(client)
    assert _list(client) == ("HIT", ["old"])
    raw = redis_cache.client()
    generation = raw.get(f"{_prefix()}:1:{generation_key('workstations')}")
    assert generation is not None

    redis_cache.pause()
    try:
        # Reads time out, then the breaker opens; every answer comes from the database.
        assert wait_for(lambda: _list(client) == ("MISS", ["old"]) and not _guard().closed, 10)
        assert _guard().needs_replay
        # Written while the breaker is open: the bump fails at once; the database has counted
        # the change, which the cache has not taken in.
        _patch(client, workstation.pk, "new")
    finally:
        redis_cache.resume()

    # The cache is back and still holds the old list under the old, live generation.
    assert raw.get(f"{_prefix()}:1:{generation_key('workstations')}") == generation
    seen = []
    assert wait_for(lambda: seen.append(_list(client)) or seen[-1] == ("HIT", ["new"]), 10), (
        seen[-3:],
        _guard().state(),
    )
    assert all(notes == ["new"] for _, notes in seen), seen
    assert ("MISS", ["new"]) in seen  # the first answer from the cache was recomputed
    assert _behind() == set()
    assert not _guard().needs_replay
    raw.close()


def _prefix() -> str:
    from performance.cache import backend

    return backend().key_prefix


@pytest.mark.parametrize("kind", ["locmem", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_write_costs_one_query_for_its_versions_and_leaves_nothing_behind(
    kind, request, settings, transactional_db
) -> None:
    """The database counts the change itself (triggers); after commit, one query reads the
    versions the bump records — and the cache then has nothing left to take in."""
    if kind == "redis":
        request.getfixturevalue("redis_cache")
    else:
        settings.CACHES = locmem_config()
    workstation = WorkstationFactory(notes="old")
    assert sync.sync()
    with CaptureQueriesContext(connection) as queries:
        services.workstation_update(workstation=workstation, data={"notes": "new"})
    versions = [q for q in queries.captured_queries if "namespaceversion" in q["sql"].lower()]
    assert len(versions) == 1
    assert versions[0]["sql"].lstrip().upper().startswith("SELECT")
    assert _behind() == set()


def test_redis_errors_that_mean_an_outage_are_outages() -> None:
    from performance.cache.redis import is_outage

    assert is_outage(redis_py.exceptions.OutOfMemoryError("command not allowed"))
    assert is_outage(redis_py.exceptions.ReadOnlyError("You can't write against a replica."))
    assert not is_outage(redis_py.exceptions.ResponseError("WRONGTYPE Operation against a key"))


@pytest.mark.redis
def test_a_full_redis_that_refuses_the_bump_serves_no_process_the_old_body(
    redis_cache, client
) -> None:
    """maxmemory with noeviction: writes (the bump) are refused, reads still work. Another
    process, whose breaker saw nothing, must not keep serving the body stored before."""
    from django.core.cache import caches

    workstation = WorkstationFactory(notes="old")
    assert _list(client) == ("MISS", ["old"])
    assert _list(client) == ("HIT", ["old"])
    redis_cache.fill_to_maxmemory()
    try:
        with redis_cache.client() as admin:
            # Well under what is used: every write is refused from now on, not just some.
            admin.config_set("maxmemory", "1mb")
        _patch(client, workstation.pk, "new")
        # Another process: a fresh backend and breaker that never saw the refused bump.
        state.reset_all()
        caches["default"] = caches.create_connection("default")
        assert _guard().state()["state"] == "closed"
        outcome, notes = _list(client)
        assert notes == ["new"], outcome
    finally:
        redis_cache.raise_maxmemory()


@pytest.mark.redis
def test_an_increment_a_full_redis_refuses_is_not_redone_as_a_read_and_a_write(
    redis_cache,
) -> None:
    """django-redis retries a refused INCRBY script as TTL, GET and SET. Against a full Redis
    that races every other process: a generation deleted between its GET and SET made a write
    answer 500. A refused increment fails open at once, and never reads the key back."""
    from django.core.cache import caches

    cache = caches["default"]
    key = generation_key("workstations")
    cache.set(key, 41, timeout=None)
    assert cache.incr(key) == 42
    redis_cache.fill_to_maxmemory()
    try:
        with redis_cache.client() as admin:
            admin.config_set("maxmemory", "1mb")
            admin.config_resetstat()
            assert cache.incr(key) is None  # refused: fails open, like every refused write
            assert cache.decr(key) is None
            calls = {
                name.removeprefix("cmdstat_"): stat["calls"]
                for name, stat in admin.info("commandstats").items()
            }
        assert not {"get", "ttl", "set"} & set(calls), calls
        assert cache.get(key) == 42
        assert _guard().state()["failures"] == 0  # Redis answered: no outage
    finally:
        redis_cache.raise_maxmemory()


@pytest.mark.redis
def test_increments_beyond_64_bits_still_work_on_redis(redis_cache) -> None:
    from django.core.cache import caches

    cache = caches["default"]
    cache.set("counter:big", 2**63 - 1)
    assert cache.incr("counter:big") == 2**63
    assert cache.decr("counter:big", 2) == 2**63 - 2
    with pytest.raises(ValueError, match="not found"):
        cache.incr("counter:missing")


@pytest.mark.parametrize("kind", ["locmem", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_generation_overwritten_by_hand_heals_and_no_write_fails_for_it(
    kind, request, settings, client
) -> None:
    """Something that is not a number under a generation key (an operator's mistake, another
    program) neither fails a read nor turns a committed write into a 500: it is replaced."""
    from django.core.cache import caches

    if kind == "redis":
        request.getfixturevalue("redis_cache")
    else:
        settings.CACHES = locmem_config()
    workstation = WorkstationFactory(notes="old")
    assert _list(client) == ("MISS", ["old"])
    key = generation_key("workstations")
    caches["default"].set(key, "not a number", timeout=None)
    assert _list(client) == ("MISS", ["old"])  # a new generation
    assert _list(client) == ("HIT", ["old"])
    caches["default"].set(key, "not a number", timeout=None)
    _patch(client, workstation.pk, "new")  # answers 200: the write has committed
    assert _list(client) == ("MISS", ["new"])
    assert _list(client) == ("HIT", ["new"])


# A Redis that goes back in time ------------------------------------------------------------


def _snapshot(server: RedisServer) -> dict[bytes, tuple[bytes, int]]:
    """Every key as Redis would restore it from a snapshot taken now."""
    with server.client() as raw:
        return {key: (raw.dump(key), raw.pttl(key)) for key in raw.scan_iter(count=1000)}


def _restore(server: RedisServer, keys: dict[bytes, tuple[bytes, int]]) -> None:
    with server.client() as raw:
        for key, (dumped, ttl) in keys.items():
            raw.restore(key, max(ttl, 0), dumped, replace=True)


@pytest.mark.redis
def test_a_redis_restarted_from_an_older_snapshot_serves_nothing_older_than_the_last_write(
    redis_cache: RedisServer, client
) -> None:
    """The server comes back holding an older generation, with the entry stored under it: a
    process that never saw the newer generation (another worker) must not serve that entry.
    Its next connection asks who the server is, sees a new one, refuses that call (the database
    answers) and re-seeds every generation before it reads from the cache again."""
    from performance.cache import generations

    workstation = WorkstationFactory(notes="old")
    assert _list(client) == ("MISS", ["old"])
    assert _list(client) == ("HIT", ["old"])
    older = _snapshot(redis_cache)

    _patch(client, workstation.pk, "new")
    assert _list(client) == ("MISS", ["new"])

    redis_cache.kill()
    redis_cache.restart()
    _restore(redis_cache, older)
    # Another worker: it never read the generation the write made.
    from performance.cache import backend

    generations.highest(backend()).clear()

    served = [_list(client) for _ in range(3)]

    assert [notes for _, notes in served] == [["new"]] * 3, served
    assert served[-1][0] == "HIT"  # and the cache serves again, under a new generation
    assert not _guard().needs_replay


@pytest.mark.redis
def test_a_restart_met_after_an_outage_does_not_open_the_breaker(
    redis_cache: RedisServer, client
) -> None:
    """A restart is an outage while the server is down, then a new server that answers: the
    connection that finds it new refuses its call (the database answers) to re-seed, and that
    refusal is not one more failure. Otherwise a process that failed a couple of calls while
    the server restarted (its sweep, one request) opened its breaker on meeting the new server
    and served from the database for a whole reset timeout, its writes bumping nothing."""
    from performance.cache import backend

    WorkstationFactory(notes="old")
    assert _list(client) == ("MISS", ["old"])
    guard = _guard()
    redis_cache.kill()
    while guard.breaker.fail_counter < guard.breaker.fail_max - 1:
        assert backend().get("anything") is None  # fails open, and counts
    assert guard.closed
    redis_cache.restart()

    served = [_list(client) for _ in range(3)]

    assert guard.closed, guard.state()
    assert [notes for _, notes in served] == [["old"]] * 3, served
    assert [cache for cache, _ in served][1:] == ["HIT", "HIT"], served  # the cache serves again


@pytest.mark.redis
def test_a_sweep_while_the_server_is_down_is_one_failure(redis_cache: RedisServer, client) -> None:
    """The sweep asks who the server is first; when nothing answers, it stops there: one
    failure towards the breaker per sweep, not one per step (three at once opened it, so a
    blip that met one sweep kept the process from the cache for a whole reset timeout)."""
    WorkstationFactory(notes="old")
    assert _list(client) == ("MISS", ["old"])
    guard = _guard()
    redis_cache.kill()

    assert sync.sync() is False

    assert (guard.closed, guard.breaker.fail_counter) == (True, 1), guard.state()
    redis_cache.restart()
    # The next sweep meets the new server, re-seeds and goes through, all in one.
    assert sync.sync() is True
    assert (guard.closed, guard.needs_replay) == (True, False)
    assert [_list(client) for _ in range(2)] == [("MISS", ["old"]), ("HIT", ["old"])]


@pytest.mark.redis
def test_the_warm_read_kept_connection_meets_a_restarted_server_at_the_fence(
    redis_cache: RedisServer, transactional_db
) -> None:
    """Each thread keeps a connection for its warm reads (``redis._Held``). When the server
    restarts under it, the next read connects again, and that new connection meets the fence:
    the read fails open (the database answers) and the process re-seeds, with no failure
    towards the breaker; the read after it is served by the new server."""
    from performance.cache import backend

    cache = backend()
    cache.set("ahead", 1)
    assert cache.read(("ahead",)) == ({"ahead": 1}, None)
    redis_cache.kill()
    redis_cache.restart()

    assert cache.read(("ahead",)) == ({}, None)  # refused at the fence: fails open

    assert (cache.state.reseed, _guard().breaker.fail_counter) == (True, 0), _guard().state()
    cache.set("ahead", 2)  # (replays first: re-seeds, and reads the database's versions)
    assert cache.read(("ahead",)) == ({"ahead": 2}, None)
