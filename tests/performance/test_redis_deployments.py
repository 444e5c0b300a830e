"""Redis deployments users grow into (docs/design.md, "Redis deployments").

- ``REDIS_URL`` may name a primary and its replicas; ``REDIS_SENTINELS`` asks Sentinel for them.
- What read-your-writes depends on is read from the primary: generations, the purge epoch,
  locks, rates, the hit path's script; entries addressed by a generation may come from a replica.
- Clients the service cannot run on are refused at start, by the backend and a system check.

The deployments are private ``redis-server`` processes on free ports (``deployments``); the
shared Redis is used, as everywhere, on its test database with a unique prefix.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from performance import cache as perf_cache
from performance.cache import generations
from performance.cache.rates import RateCheck
from performance.cache.redis import InstrumentedRedisCache, redact
from tests.conftest import require_service
from tests.factories import WorkstationFactory

from .deployments import Deployment, cut_link, synced
from .servers import GUNICORN, REDIS_SERVER, ROOT, Gunicorn, site_env, wait_for
from .support import JSON, REDIS, unique

#: What the settings read that could leak in from the developer's shell or CI.
REDIS_VARIABLES = (
    "REDIS_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "REDIS_DB",
    "REDIS_PASSWORD",
)
REDIS_CLIENT = "performance.cache.redis.InventoryRedisClient"
SENTINEL_CLIENT = "performance.cache.redis.InventorySentinelClient"


# Settings from the environment ---------------------------------------------------------------


def settings_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict[str, Any]:
    """``project/settings.py`` as a process started with ``env`` would read it."""
    for name in (*REDIS_VARIABLES, "DATABASE_URL", "DJANGO_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "project" / "settings.py"))


def test_a_redis_url_list_is_a_primary_and_its_replicas(monkeypatch, tmp_path):
    urls = "redis://:secret@primary:6379/0, redis://replica-1:6379/0,redis://replica-2:6379/0"
    cache = settings_with(monkeypatch, tmp_path, REDIS_URL=urls)["CACHES"]["default"]
    assert cache["BACKEND"] == REDIS
    assert cache["LOCATION"] == [
        "redis://:secret@primary:6379/0",
        "redis://replica-1:6379/0",
        "redis://replica-2:6379/0",
    ]
    assert cache["OPTIONS"]["CLIENT_CLASS"] == REDIS_CLIENT


def test_one_redis_url_stays_a_string(monkeypatch, tmp_path):
    cache = settings_with(monkeypatch, tmp_path, REDIS_URL="redis://cache:6379/1")
    assert cache["CACHES"]["default"]["LOCATION"] == "redis://cache:6379/1"


def test_sentinels_select_django_redis_sentinel_support(monkeypatch, tmp_path):
    cache = settings_with(
        monkeypatch,
        tmp_path,
        REDIS_SENTINELS="10.0.0.1:26379, [::1]:26380",
        REDIS_SENTINEL_MASTER="inventory",
        REDIS_DB="2",
        REDIS_PASSWORD="secret",
    )["CACHES"]["default"]
    assert cache["BACKEND"] == REDIS
    assert cache["LOCATION"] == "redis://inventory/2"
    options = cache["OPTIONS"]
    assert options["CLIENT_CLASS"] == SENTINEL_CLIENT
    assert options["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
    assert options["SENTINELS"] == [("10.0.0.1", 26379), ("::1", 26380)]
    assert options["PASSWORD"] == "secret"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_SENTINELS": "s:26379"}, "REDIS_SENTINEL_MASTER"),
        (
            {"REDIS_SENTINELS": "s:26379", "REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://c"},
            "not both",
        ),
        ({"REDIS_URL": "redis://c:6379", "REDIS_DB": "2"}, "REDIS_SENTINELS only"),
        ({"REDIS_SENTINELS": "s", "REDIS_SENTINEL_MASTER": "m"}, "host:port"),
        ({"REDIS_URL": "redis://c:6379/0,http://:hunter2@c:6379"}, "item 2"),
    ],
)
def test_redis_settings_that_cannot_work_are_refused(monkeypatch, tmp_path, env, message):
    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        settings_with(monkeypatch, tmp_path, **env)
    assert "hunter2" not in str(refused.value)


def test_gunicorn_runs_several_workers_on_sentinel(monkeypatch):
    for name in (*REDIS_VARIABLES, "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent")  # not created here
    monkeypatch.setenv("REDIS_SENTINELS", "s:26379")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "inventory")
    assert runpy.run_path(str(ROOT / "project" / "gunicorn.conf.py"))["workers"] > 1
    monkeypatch.setenv("WEB_CONCURRENCY", "3")  # allowed: the cache is shared
    assert runpy.run_path(str(ROOT / "project" / "gunicorn.conf.py"))["workers"] == 3


# The backend with a location list --------------------------------------------------------------


def redis_params(location: Any, prefix: str, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": REDIS,
        "LOCATION": location,
        "TIMEOUT": 300,
        "KEY_PREFIX": prefix,
        "OPTIONS": {
            "CLIENT_CLASS": REDIS_CLIENT,
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 2.0,
            **options,
        },
    }


@pytest.mark.redis
def test_a_location_list_runs_and_shares_one_state_per_process(settings, redis_url, redis_prefix):
    servers = [redis_url, redis_url]  # django-redis's primary + replica, here one database
    settings.CACHES = {"default": redis_params(servers, redis_prefix)}
    cache = caches["default"]
    cache.set("things:1:a", "value")
    assert cache.get("things:1:a") == "value"
    assert perf_cache.bump_generation("things") is not None
    # The same servers, as a list or comma-separated, are one cache: one breaker, one set of
    # statistics in this process.
    same = InstrumentedRedisCache(",".join(servers), redis_params(None, redis_prefix))
    assert same.state is cache.state


def test_the_location_shown_names_every_server_and_no_password():
    location = [
        "redis://:s3cret@primary:6379/0",
        "redis://reader:pw2@replica:6380/0",
        "rediss://replica-2:6381/0?password=pw3&ssl_cert_reqs=none",
    ]
    shown = redact(location)
    for host in ("primary:6379", "replica:6380", "replica-2:6381"):
        assert host in shown
    for secret in ("s3cret", "pw2", "pw3"):
        assert secret not in shown
    assert redact(",".join(location)) == shown
    assert "reader:***@replica:6380" in shown
    assert redact("redis://:s3cret@[::1]:6379/0") == "redis://:***@[::1]:6379/0"
    assert redact("unix://:s3cret@/run/redis.sock?db=2") == "unix://:***@/run/redis.sock?db=2"


# Refused at start -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "client_class",
    [
        "django_redis.client.ShardClient",
        "django_redis.client.HerdClient",
        "myproject.cache.CustomClient",
    ],
)
def test_unsupported_clients_are_refused_naming_the_supported_ones(client_class):
    params = redis_params(["redis://a:6379/0", "redis://b:6379/0"], "p")
    params["OPTIONS"]["CLIENT_CLASS"] = client_class
    with pytest.raises(ImproperlyConfigured) as refused:
        InstrumentedRedisCache(params["LOCATION"], params)
    message = str(refused.value)
    assert client_class in message
    assert "not supported" in message
    assert "DefaultClient" in message
    assert "SentinelClient" in message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"CLIENT_CLASS": SENTINEL_CLIENT}, "SENTINELS"),
        (
            {"CLIENT_CLASS": "django_redis.client.SentinelClient", "SENTINELS": [("s", 1)]},
            "SentinelConnectionFactory",
        ),
    ],
)
def test_sentinel_without_its_settings_is_refused(options, message):
    params = redis_params("redis://inventory/0", "p", **options)
    with pytest.raises(ImproperlyConfigured, match=message):
        InstrumentedRedisCache(params["LOCATION"], params)


def test_a_missing_key_prefix_is_refused():
    params = redis_params("redis://a:6379/0", "")
    with pytest.raises(ImproperlyConfigured, match="KEY_PREFIX"):
        InstrumentedRedisCache(params["LOCATION"], params)


def test_the_system_check_reports_an_unsupported_client(settings):
    from performance.checks import check_cache_backend

    settings.CACHES = {"default": redis_params("redis://a:6379/0", "p")}
    assert check_cache_backend() == []
    settings.CACHES["default"]["OPTIONS"]["CLIENT_CLASS"] = "django_redis.client.ShardClient"
    errors = check_cache_backend()
    assert [error.id for error in errors] == ["performance.E003"]
    assert "ShardClient" in errors[0].msg
    assert "SentinelClient" in errors[0].msg
    assert "REDIS_SENTINELS" in errors[0].hint


def _start_env(tmp_path: Path) -> dict[str, str]:
    """A process started with a settings module whose cache asks for django-redis's sharding."""
    env = site_env(tmp_path / "db.sqlite3", tmp_path / "var")
    env["DJANGO_SETTINGS_MODULE"] = "tests.performance.settings_sharded"
    return env


def test_manage_py_check_fails_on_an_unsupported_client(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=_start_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "'django_redis.client.ShardClient' is not supported" in done.stderr


def test_gunicorn_refuses_to_start_on_an_unsupported_client(tmp_path):
    if not GUNICORN.exists():
        require_service("gunicorn", f"{GUNICORN} is missing")
    server = Gunicorn("sharded", _start_env(tmp_path), tmp_path, workers=1)
    try:
        assert wait_for(lambda: server.process.poll() is not None, timeout=60, interval=0.1)
    finally:
        server.stop()
    assert server.process.returncode != 0
    log = server.log_text()
    assert "'django_redis.client.ShardClient' is not supported" in log
    assert "Booting worker" in log  # refused while starting, not at a first request


# Real deployments: a primary and a replica, with or without Sentinel -----------------------------


@pytest.fixture(scope="module")
def redis_binary() -> None:
    if not REDIS_SERVER:
        require_service("redis-server", "the binary is not on PATH")


@pytest.fixture(scope="module", params=["replicas", "sentinel"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_binary: None
) -> Iterator[Deployment]:
    """A primary and a replica, addressed as a LOCATION list or through a Sentinel."""
    started = Deployment.start(
        tmp_path_factory.mktemp(request.param), sentinel=request.param == "sentinel"
    )
    yield started
    started.stop()


def configure(settings: Any, deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The production configuration (``project/settings.py``'s) of ``deployment``, on a prefix
    of this test's own; returns the cache."""
    from project.settings import redis_location

    if deployment.sentinel is not None:
        sentinel = f"127.0.0.1:{deployment.sentinel.port}"
        location, options = redis_location("", [sentinel], deployment.sentinel.service, "0", "")
    else:
        urls = f"{deployment.primary.url},{deployment.replica.url}"
        location, options = redis_location(urls, [], "", "", "")
    settings.CACHES = {"default": redis_params(location, unique("wsinv-deploy"), **options)}
    # A fresh process: nothing seen yet (generations never go below what this process saw).
    generations.highest(caches["default"]).clear()
    return caches["default"]


def raw_key(cache: Any, key: str) -> str:
    return str(cache.client.make_key(key))


@pytest.mark.redis
def test_what_read_your_writes_depends_on_is_read_from_the_primary(
    settings, deployment, monkeypatch
):
    cache = configure(settings, deployment, monkeypatch)
    generation = perf_cache.get_generation("things")
    entry = f"things:{generation}:abc"
    cache.set(entry, "primary's body")
    cache.set("_lock:" + entry, "held")
    synced(deployment.primary)
    # The replica now answers otherwise than the primary, for each kind of key.
    for key, value in [
        (generations.generation_key("things"), generation - 100),
        ("_lock:" + entry, "other"),
        (entry, "replica's body"),
    ]:
        deployment.write_on_replica(raw_key(cache, key).encode(), cache.client.encode(value))

    # The cache layer's own keys (``_``): from the primary, one key or several.
    assert perf_cache.get_generation("things") == generation
    assert cache.get("_lock:" + entry) == "held"
    assert cache.has_key(generations.generation_key("things"))
    values, verdicts = cache.read(
        [generations.generation_key("things")],
        rates=[RateCheck(key="throttle:user:1", limit=5, duration=60.0, now=time.time())],
    )
    assert values == {generations.generation_key("things"): generation}
    assert verdicts and verdicts[0].allowed
    # An entry addressed by a generation: from a replica (django-redis's choice of reader).
    assert cache.get(entry) == "replica's body"
    # Several keys, one of them the layer's own: one round trip, to the primary.
    both = cache.get_many([generations.generation_key("things"), entry])
    assert both == {generations.generation_key("things"): generation, entry: "primary's body"}


@pytest.mark.redis
def test_the_services_own_operations_run_on_every_deployment(settings, deployment, monkeypatch):
    cache = configure(settings, deployment, monkeypatch)
    before = perf_cache.get_generation("things")
    bumped = perf_cache.bump_generation("things")
    assert bumped > before
    cache.set(f"things:{bumped}:a", "body")
    cache.set(f"things:{bumped}:b", "body")
    assert perf_cache.invalidate_pattern("things:*", dry_run=True) == 2  # SCAN, on the primary
    assert perf_cache.invalidate_pattern("things:*") == 2  # UNLINK
    stats = perf_cache.stats()  # published and read back: the fleet's hash, on the primary
    assert stats["unavailable"] is False
    assert stats["namespaces"]["things"]["sets"] == 2
    assert stats["server"]["role"] == "master"
    assert stats["server"]["connected_slaves"] == 1
    location = stats["server"]["location"]
    if deployment.sentinel is not None:
        assert f"Sentinel 127.0.0.1:{deployment.sentinel.port}" in location
        assert deployment.sentinel.service in location
    else:
        assert str(deployment.primary.port) in location
        assert str(deployment.replica.port) in location
    perf_cache.clear()
    assert list(cache.logical_keys("*")) == []


@pytest.fixture
def lagging(tmp_path: Path, redis_binary: None) -> Iterator[Deployment]:
    """A primary and a replica whose link the test cuts."""
    started = Deployment.start(tmp_path)
    yield started
    started.stop()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_bump_on_the_primary_is_seen_on_the_next_request_while_the_replica_lags(
    settings, lagging, monkeypatch, reader_client, editor_client
):
    configure(settings, lagging, monkeypatch)
    workstation = WorkstationFactory(hostname="before")
    path = f"/api/workstations/{workstation.pk}/"
    assert reader_client.get(path, **JSON)["X-Cache"] == "MISS"
    synced(lagging.primary)
    warm = reader_client.get(path, **JSON)  # the entry, from the replica
    assert (warm["X-Cache"], warm.json()["hostname"]) == ("HIT", "before")

    cut_link(lagging.replica)  # from now on the replica keeps the old generation and entry
    assert editor_client.patch(path, {"hostname": "after"}, format="json").status_code == 200
    for _ in range(3):
        response = reader_client.get(path, **JSON)
        assert response.status_code == 200
        assert response.json()["hostname"] == "after"


@pytest.mark.redis
@pytest.mark.django_db
def test_health_probes_the_primary_while_the_replica_lags(settings, lagging, monkeypatch, client):
    configure(settings, lagging, monkeypatch)
    cut_link(lagging.replica)  # the probe written to the primary never reaches the replica
    response = client.get("/health/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.fixture
def watched(tmp_path: Path, redis_binary: None) -> Iterator[Deployment]:
    """A primary and a replica behind a Sentinel, which the test makes fail over."""
    started = Deployment.start(tmp_path, sentinel=True)
    yield started
    started.stop()


@pytest.mark.redis
def test_after_a_sentinel_failover_the_cache_follows_the_new_primary(
    settings, watched, monkeypatch
):
    cache = configure(settings, watched, monkeypatch)
    generation = perf_cache.bump_generation("things")
    assert generation is not None
    synced(watched.primary)
    assert watched.sentinel is not None
    with watched.sentinel.client() as sentinel:
        sentinel.execute_command("SENTINEL", "FAILOVER", watched.sentinel.service)
    assert wait_for(
        lambda: watched.sentinel.master() == ("127.0.0.1", watched.replica.port),
        timeout=30,
        interval=0.1,
    ), "Sentinel did not promote the replica"

    # The connections to the old primary (now a replica) fail once each, as an outage the
    # breaker lets through (a miss, a bump kept for replay); then Sentinel names the new one.
    def bumped() -> bool:
        return perf_cache.bump_generation("things") is not None

    assert wait_for(bumped, timeout=15, interval=0.2)
    assert perf_cache.get_generation("things") > generation
    assert cache.server_info()["role"] == "master"
    with watched.replica.client() as promoted:
        assert promoted.info("replication")["role"] == "master"
        assert promoted.get(raw_key(cache, generations.generation_key("things"))) is not None
