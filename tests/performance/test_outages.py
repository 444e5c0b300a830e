"""A cache outage costs speed, never answers (docs/design.md, "Invariants", 4).

Two gunicorn servers share one SQLite file and a private ``redis-server``. Under a bounded mixed
load the Redis is taken away four ways — killed, SIGSTOPped, ``CLIENT PAUSE``d, filled to
``maxmemory`` with ``noeviction`` — and brought back. Every answer is checked against what was
written; the latency once the circuit breaker is open is bounded by a fraction of one socket
timeout; after recovery a write made during the outage is read back through the *other* server.

The figures of each run are printed (``-s``) and written to ``test-artifacts/outage-report.json``.
The process tests are marked ``redis``; the in-process tests at the end need no Redis at all
(they point the cache at a port where nothing listens).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from performance import cache as perf_cache
from performance.cache import breaker, state
from performance.cache.generations import bump_generation, get_generation
from performance.cache.responses import CachedResponseMixin
from tests.conftest import require_service
from tests.factories import WorkstationFactory

from .servers import (
    GUNICORN,
    REDIS_SERVER,
    ROOT,
    Gunicorn,
    Load,
    RedisServer,
    Register,
    Sample,
    breaker_opened,
    copy_database,
    free_port,
    migrated_site,
    p99,
    site_env,
    version,
    wait_for,
)
from .support import JSON, LIST, REDIS, unique

SOCKET_TIMEOUT = 0.25
RESET_TIMEOUT = 1.0
SWEEP_INTERVAL = 1.0
#: Once every breaker is open, the typical request no longer waits for Redis at all...
OPEN_P50_BOUND = 0.4 * SOCKET_TIMEOUT
#: ...and 99 % finish inside two socket timeouts, where a request without the breaker makes at
#: least four cache calls that each wait one. (Loose: CI machines are shared and loaded.)
OPEN_P99_BOUND = 2 * SOCKET_TIMEOUT
#: How long after recovery an old cached body may still be served, at most.
STALE_BOUND = SWEEP_INTERVAL + RESET_TIMEOUT
WORKSTATIONS = 6
HEALTHY_SECONDS = 1.0
OPEN_TIMEOUT = 15.0
AFTER_OPEN_SECONDS = 2.5
RECOVERED_SECONDS = 1.5

REPORT_PATH = ROOT / "test-artifacts" / "outage-report.json"
_report: dict[str, dict[str, Any]] = {}


# Outage kinds: (inject, recover, does the breaker open?) -------------------------------------


def _kill(redis: RedisServer) -> None:
    redis.kill()


def _restart(redis: RedisServer) -> None:
    redis.restart()


def _oom(redis: RedisServer) -> None:
    redis.fill_to_maxmemory("2mb")


OUTAGES: dict[str, tuple[Callable[[RedisServer], Any], Callable[[RedisServer], Any], bool]] = {
    "kill": (_kill, _restart, True),
    "sigstop": (RedisServer.pause, RedisServer.resume, True),
    "client-pause": (RedisServer.client_pause, RedisServer.client_unpause, True),
    # Reads keep working and writes fail at once: the breaker need not open, nothing may hang.
    "maxmemory": (_oom, RedisServer.raise_maxmemory, False),
}


# Fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A migrated SQLite template with a superuser token and a few workstations (once)."""
    if not REDIS_SERVER:
        require_service("redis-server", "the binary is not on PATH")
    if not GUNICORN.exists():
        require_service("gunicorn", f"{GUNICORN} is missing")
    return migrated_site(tmp_path_factory.mktemp("outage-site"), WORKSTATIONS)


@pytest.fixture(scope="module", autouse=True)
def _report_figures() -> Iterator[None]:
    yield
    if not _report:
        return
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(json.dumps(_report, indent=2, sort_keys=True) + "\n")
    print(
        f"\n\nCache outages (socket timeout {SOCKET_TIMEOUT * 1000:.0f} ms, breaker reset "
        f"{RESET_TIMEOUT:.0f} s, sweep {SWEEP_INTERVAL:.0f} s) -> {REPORT_PATH}"
    )
    header = (
        f"{'outage':<13}{'requests':>9}{'errors':>7}{'p99 healthy':>13}{'p99 pre-open':>14}"
        f"{'p99 open':>10}{'median open':>13}{'stale after recovery':>22}"
    )
    print(header)
    print("-" * len(header))

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.1f} ms"

    for kind, row in _report.items():
        print(
            f"{kind:<13}{row['requests']:>9}{row['errors']:>7}{ms(row['p99_healthy_s']):>13}"
            f"{ms(row['p99_before_breaker_open_s']):>14}{ms(row['p99_after_breaker_open_s']):>10}"
            f"{ms(row['median_after_breaker_open_s']):>13}"
            f"{ms(row['longest_stale_after_recovery_s']):>22}"
        )


@pytest.fixture
def stack(site: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A private redis-server and two single-worker gunicorn servers; all stopped at the end."""
    redis = RedisServer(tmp_path / "redis")
    servers: list[Gunicorn] = []
    try:
        database = copy_database(site["database"], tmp_path / "inventory.sqlite3")
        env = site_env(
            database,
            tmp_path / "var",
            REDIS_URL=redis.url,
            CACHE_KEY_PREFIX=unique("wsinv-outage"),
            REDIS_SOCKET_TIMEOUT=str(SOCKET_TIMEOUT),
            REDIS_CONNECT_TIMEOUT=str(SOCKET_TIMEOUT),
            CACHE_BREAKER_FAIL_MAX="3",
            CACHE_BREAKER_RESET_TIMEOUT=str(RESET_TIMEOUT),
            CACHE_SWEEP_INTERVAL=str(SWEEP_INTERVAL),
            GUNICORN_THREADS="4",
            REQUEST_LOG_LEVEL="WARNING",
        )
        for name in ("A", "B"):
            servers.append(Gunicorn(name, env, tmp_path))
        deadline = time.monotonic() + 30
        for server in servers:
            server.wait_until_ready(deadline)
        yield {**site, "redis": redis, "a": servers[0], "b": servers[1], "db": database}
    finally:
        for server in servers:
            server.stop()
        redis.stop()


# Helpers -------------------------------------------------------------------------------------


def _warm(servers: list[Gunicorn], token: str, pks: list[int]) -> None:
    """Cache the list and every detail in Redis, so that a stale answer is possible later."""
    paths = ["/api/workstations/", *(f"/api/workstations/{pk}/" for pk in pks)]
    for server in servers:
        for path in paths:
            server.request("GET", path, token=token)
            status, headers, _ = server.request("GET", path, token=token)
            assert (status, headers.get("x-cache")) == (200, "HIT"), (server.name, path)


def _describe(samples: list[Sample]) -> str:
    return "; ".join(f"{s.server} {s.kind} {s.status} {s.error}" for s in samples[:5])


def _tracebacks(servers: list[Gunicorn]) -> str:
    """What the servers logged from their first traceback on, to say why a request failed."""
    parts = []
    for server in servers:
        text = server.log_text()
        if "Traceback" in text:
            parts.append(f"--- {server.name}:\n{text[text.index('Traceback') :][:4000]}")
    return "\n".join(parts) or "(no traceback in the server logs)"


def _read_back(server: Gunicorn, token: str, pk: int) -> tuple[int, str | None]:
    status, headers, body = server.request("GET", f"/api/workstations/{pk}/", token=token)
    assert status == 200, body
    return version(body["notes"]), headers.get("x-cache")


def _db(stack: dict[str, Any], pk: int) -> Any:
    import sqlite3

    with sqlite3.connect(stack["db"]) as db:
        return db.execute("select notes from workstations_workstation where id=?", (pk,)).fetchall()


def _listed(server: Gunicorn, token: str, pk: int) -> int:
    status, _, body = server.request("GET", "/api/workstations/", token=token)
    assert status == 200, body
    return next(version(row["notes"]) for row in body["results"] if row["id"] == pk)


# The test ------------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("kind", list(OUTAGES))
def test_a_cache_outage_costs_speed_never_answers(kind: str, stack: dict[str, Any]) -> None:
    inject, recover, breaker_must_open = OUTAGES[kind]
    redis, a, b = stack["redis"], stack["a"], stack["b"]
    token, pks = stack["token"], stack["pks"]
    register = Register(pks)
    _warm([a, b], token, pks)

    # Healthy, then the outage, under load.
    load = Load([a, b], token, register, max_requests=320).start()
    try:
        time.sleep(HEALTHY_SECONDS)
        outage_at = time.monotonic()
        inject(redis)
        if breaker_must_open:
            opened = wait_for(lambda: breaker_opened(a) and breaker_opened(b), OPEN_TIMEOUT)
            assert opened, f"breakers did not open:\n{a.log_text()[-2000:]}"
        open_at = time.monotonic()
        time.sleep(AFTER_OPEN_SECONDS)
    finally:
        load.stop()

    # The last write of the outage goes through A; after recovery, B must serve it.
    pk = pks[0]
    final = load.write(a, pk)
    assert (final.status, final.error) == (200, ""), final
    written = register.acked[pk]

    recover(redis)
    recovered_at = time.monotonic()
    stale_until: float | None = None
    deadline = recovered_at + STALE_BOUND + 1.0
    while time.monotonic() < deadline:
        seen = (_read_back(b, token, pk)[0], _listed(b, token, pk))
        if min(seen) < written:
            stale_until = time.monotonic()
        time.sleep(0.02)
    longest_stale = 0.0 if stale_until is None else stale_until - recovered_at

    # The cache is used again: B answers from it, with the new data; and so does A, which
    # means A has replayed what it missed too (a process reads nothing from the cache before
    # that, and until then its writes' bumps are missed ones, within the stale bound).
    for server in (b, a):
        recovered = wait_for(
            lambda server=server: _read_back(server, token, pk) == (written, "HIT"),
            timeout=RESET_TIMEOUT + 5,
        )
        assert recovered, f"{server.name} does not use the cache:\n{server.log_text()[-2000:]}"

    after = Load([a, b], token, register, max_requests=90).start()
    try:
        time.sleep(RECOVERED_SECONDS)
    finally:
        after.stop()

    # No acknowledged write is lost: each workstation reads back its last acknowledged write,
    # through both servers.
    for server in (a, b):
        for row_pk in pks:
            got = _read_back(server, token, row_pk)
            assert got[0] == register.acked[row_pk], (server.name, row_pk, got, _db(stack, row_pk))

    samples = [*load.samples, final, *after.samples]
    errors = [s for s in samples if s.error or s.status is None]
    healthy = [s for s in load.samples if s.end < outage_at]
    before_open = [s for s in load.samples if outage_at <= s.start < open_at]
    after_open = [s for s in load.samples if s.start >= open_at]
    stale_in_outage = [s for s in load.samples if s.stale]
    stale_after = [s for s in after.samples if s.stale]
    _report[kind] = {
        "requests": len(samples),
        "writes": sum(s.kind == "write" for s in samples),
        "errors": len(errors),
        "stale_reads_during_outage": len(stale_in_outage),
        "p99_healthy_s": p99(healthy),
        "p99_before_breaker_open_s": p99(before_open) if breaker_must_open else None,
        "p99_after_breaker_open_s": p99(after_open),
        "median_after_breaker_open_s": (
            statistics.median(s.seconds for s in after_open) if after_open else None
        ),
        "requests_after_breaker_open": len(after_open),
        "breaker_opened": breaker_opened(a) and breaker_opened(b),
        "longest_stale_after_recovery_s": longest_stale,
        "socket_timeout_s": SOCKET_TIMEOUT,
        "reset_timeout_s": RESET_TIMEOUT,
        "sweep_interval_s": SWEEP_INTERVAL,
    }

    assert not errors, (
        f"{len(errors)} failed request(s): {_describe(errors)}\n{_tracebacks([a, b])}"
    )
    assert not stale_in_outage, f"stale reads during the outage: {_describe(stale_in_outage)}"
    assert not stale_after, f"stale reads after recovery: {_describe(stale_after)}"
    assert longest_stale <= STALE_BOUND, f"{kind}: stale for {longest_stale:.2f} s after recovery"
    assert len(after_open) >= 30, f"too few requests once the breaker was open: {len(after_open)}"
    # The added latency is bounded: without the breaker, each request would wait for several
    # socket timeouts (one per cache call) for as long as the outage lasts.
    median_open = statistics.median(s.seconds for s in after_open)
    assert median_open < OPEN_P50_BOUND, (
        f"{kind}: median {median_open * 1000:.0f} ms once the breaker was open"
    )
    assert p99(after_open) < OPEN_P99_BOUND, (
        f"{kind}: p99 {p99(after_open) * 1000:.0f} ms once the breaker was open"
    )


# Every cache operation fails open: in-process, against a port where nothing listens ----------


@pytest.fixture
def dead_redis(settings) -> Iterator[None]:
    settings.CACHES = {
        "default": {
            "BACKEND": REDIS,
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "TIMEOUT": 300,
            "KEY_PREFIX": unique("wsinv-dead"),
            "OPTIONS": {
                "CLIENT_CLASS": "performance.cache.redis.InventoryRedisClient",
                "SOCKET_CONNECT_TIMEOUT": SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": SOCKET_TIMEOUT,
            },
        }
    }
    settings.CACHE_BREAKER_RESET_TIMEOUT = 60
    state.reset_all()
    yield
    state.reset_all()


def test_generations_fail_open(dead_redis) -> None:
    first, second = get_generation("workstations"), get_generation("workstations")
    assert second > first  # a fresh one each time: every read misses, none is stale
    assert bump_generation("workstations") is None  # kept by the caller to replay later
    assert perf_cache.invalidate("workstations", "locations") == {
        "workstations": None,
        "locations": None,
    }


def test_stats_report_the_cache_unavailable(dead_redis) -> None:
    perf_cache.backend().get("workstations:1:x")  # something to flush
    figures = perf_cache.stats()
    assert figures["unavailable"] is True
    assert figures["server"].get("unavailable") is True
    assert figures["namespaces"]["workstations"]["keys"] is None


def test_a_cold_request_does_not_wait_for_the_stampede_lock(
    dead_redis, api, monkeypatch: pytest.MonkeyPatch
) -> None:
    WorkstationFactory.create_batch(2)
    slept: list[float] = []
    monkeypatch.setattr(CachedResponseMixin, "sleep", staticmethod(slept.append))
    monkeypatch.setattr(CachedResponseMixin, "stampede_wait", 30.0)
    for _ in range(2):
        response = api.get(LIST, **JSON)
        assert (response.status_code, response["X-Cache"]) == (200, "MISS")
        assert len(response.json()["results"]) == 2
    assert slept == []  # the lock was never taken: nobody to wait for


def test_a_list_page_reads_its_own_ids_while_the_cache_is_down(
    dead_redis, api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a cache, a list reads its first ``ID_WINDOW`` ids once and every page within them is
    a slice of what was remembered. Without one, nothing is remembered: each page read the
    whole window all the same (a thousand ids where it shows fifty), on the database that
    carries every request while the cache is down. It reads its own slice, and counts."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from workstations.api import pagination

    monkeypatch.setattr(pagination, "ID_WINDOW", 12)
    WorkstationFactory.create_batch(20)
    for page in (1, 2, 1):
        with CaptureQueriesContext(connection) as queries:
            response = api.get(f"{LIST}?page_size=5&page={page}", **JSON)
        assert (response.status_code, response.json()["count"]) == (200, 20)
        assert len(response.json()["results"]) == 5
        limits = [q["sql"].split(" LIMIT ")[1] for q in queries if " LIMIT " in q["sql"]]
        assert limits and all(limit.split()[0] == "5" for limit in limits), limits


def test_a_throttled_endpoint_still_answers(dead_redis, staff_client) -> None:
    for _ in range(3):
        response = staff_client.get("/api/performance/cache-stats/", **JSON)
        assert response.status_code == 200, response.content
        assert response.json()["unavailable"] is True


def test_health_is_degraded_while_the_api_answers(dead_redis, reader_client) -> None:
    WorkstationFactory()
    health = reader_client.get("/health/", HTTP_ACCEPT="application/json")
    assert health.status_code == 200, health.content
    assert health.json()["status"] == "degraded"
    response = reader_client.get(LIST, **JSON)
    assert response.status_code == 200
    assert response.json()["count"] == 1
    # Once the breaker is open, the answers keep coming, still from the database.
    for _ in range(5):
        assert reader_client.get(LIST, **JSON).status_code == 200
    assert perf_cache.backend().breaker_state()["state"] == "open"
    health = reader_client.get("/health/", HTTP_ACCEPT="application/json")
    assert (health.status_code, health.json()["status"]) == (200, "degraded")


def test_cache_calls_run_side_by_side_and_the_trial_call_is_made_in_the_background() -> None:
    """pybreaker holds its lock for the whole guarded call; the guard must not."""
    guard = breaker.Guard("test", fail_max=1, reset_timeout=0.05, exclude=lambda exc: False)
    both_in = threading.Barrier(2, timeout=2)
    results: list[Any] = []

    def call() -> None:
        try:
            results.append(guard.call(both_in.wait))
        except Exception as exc:  # a serialised call breaks the barrier
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(results) == [0, 1], results

    trial_may_finish = threading.Event()
    guard.probe = lambda: trial_may_finish.wait(5)
    with pytest.raises((breaker.CircuitBreakerError, ConnectionError)):
        guard.call(_refused)
    assert not guard.closed
    time.sleep(0.1)  # past the reset timeout
    started = time.monotonic()
    with pytest.raises(breaker.CircuitBreakerError):
        guard.call(lambda: "not called")  # fails at once; the trial runs in a thread
    assert time.monotonic() - started < 1
    trial_may_finish.set()
    assert wait_for(lambda: guard.closed, timeout=5)
    assert guard.call(lambda: "called") == "called"


def _refused() -> None:
    raise ConnectionError("refused")
