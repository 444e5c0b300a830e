"""``/metrics``: who may scrape it, and what the Prometheus text says (matching the console's
figures; on Redis, the sum over every process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from performance import cache as perf_cache
from tests.factories import LocationFactory, UserFactory, WorkstationFactory

from .support import LIST, LOCATIONS, get

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
METRICS = "/metrics"
OUTSIDER = "203.0.113.5"
TOKEN = "metrics-token-for-tests-0123456789"


def samples(body: bytes) -> dict[tuple[str, frozenset], float]:
    """Every sample of the exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def scrape(client: Client | None = None) -> dict[tuple[str, frozenset], float]:
    response = (client or Client()).get(METRICS)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content)


def labels(**kw: str) -> frozenset:
    return frozenset(kw.items())


@pytest.fixture
def inventory(db):
    location = LocationFactory(name="Lab")
    return [WorkstationFactory(hostname=f"ws-{n}", location=location) for n in range(2)]


# Access ------------------------------------------------------------------------------------


def test_anonymous_from_an_outside_address_is_forbidden(client):
    response = client.get(METRICS, REMOTE_ADDR=OUTSIDER)

    assert response.status_code == 403
    assert b"wsinv_" not in response.content


def test_non_staff_session_from_outside_is_forbidden(client, reader):
    client.force_login(reader)
    assert client.get(METRICS, REMOTE_ADDR=OUTSIDER).status_code == 403


def test_staff_session_may_scrape_from_anywhere(client):
    client.force_login(UserFactory(username="viewer", is_staff=True))

    response = client.get(METRICS, REMOTE_ADDR=OUTSIDER)

    assert response.status_code == 200
    assert b"wsinv_cache_breaker_state" in response.content


def test_bearer_token_may_scrape_from_anywhere(client, settings):
    settings.METRICS_TOKEN = TOKEN

    allowed = client.get(METRICS, REMOTE_ADDR=OUTSIDER, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    wrong = client.get(METRICS, REMOTE_ADDR=OUTSIDER, HTTP_AUTHORIZATION="Bearer not-the-token")

    assert allowed.status_code == 200
    assert wrong.status_code == 403


def test_bearer_token_is_refused_when_no_token_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get(METRICS, REMOTE_ADDR=OUTSIDER, HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_may_scrape(client, address):
    assert client.get(METRICS, REMOTE_ADDR=address).status_code == 200


def test_allowed_networks_come_from_settings(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["203.0.113.0/24"]

    assert client.get(METRICS, REMOTE_ADDR=OUTSIDER).status_code == 200
    assert client.get(METRICS, REMOTE_ADDR="127.0.0.1").status_code == 403


def test_a_network_written_with_host_bits_still_works(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["203.0.113.1/24"]
    assert client.get(METRICS, REMOTE_ADDR=OUTSIDER).status_code == 200


def test_behind_a_proxy_the_client_address_decides(client, settings):
    """With the documented reverse proxy on the same host, every peer is 127.0.0.1: the client
    is the one the proxy names (NUM_PROXIES), as the throttles see it."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    through_proxy = {"REMOTE_ADDR": "127.0.0.1"}

    outsider = client.get(METRICS, HTTP_X_FORWARDED_FOR=OUTSIDER, **through_proxy)
    spoofed = client.get(METRICS, HTTP_X_FORWARDED_FOR=f"127.0.0.1, {OUTSIDER}", **through_proxy)
    local = client.get(METRICS, HTTP_X_FORWARDED_FOR="127.0.0.1", **through_proxy)
    direct = client.get(METRICS, **through_proxy)  # a local agent that scrapes gunicorn itself

    assert (outsider.status_code, spoofed.status_code) == (403, 403)
    assert (local.status_code, direct.status_code) == (200, 200)


@pytest.mark.parametrize(
    "header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"], ids=str.lower
)
def test_a_forwarded_request_without_declared_proxies_is_refused(client, settings, header):
    """NUM_PROXIES=0 (the development default) yet a proxy forwarded the request: who the client
    is cannot be told, so a loopback peer proves nothing."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
    value = f"for={OUTSIDER}" if header == "HTTP_FORWARDED" else OUTSIDER

    response = client.get(METRICS, REMOTE_ADDR="127.0.0.1", **{header: value})

    assert response.status_code == 403
    settings.METRICS_TOKEN = TOKEN
    with_token = client.get(
        METRICS, REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **{header: value}
    )
    assert with_token.status_code == 200


# Content -----------------------------------------------------------------------------------


def delta_of(before: dict, after: dict):
    def delta(name: str, **kw: str) -> float:
        key = (name, labels(**kw))
        return after.get(key, 0) - before.get(key, 0)

    return delta


def test_cache_series_count_what_the_console_counts(cache_backend, reader_client, inventory):
    before = scrape()
    for path in (LIST, LIST, LIST, LOCATIONS):
        assert get(reader_client, path).status_code == 200

    delta = delta_of(before, scrape())

    stats = perf_cache.stats(include_keys=False)["namespaces"]
    for namespace in ("workstations", "locations"):
        for field in ("hits", "misses", "sets", "deletes", "errors"):
            value = delta(f"wsinv_cache_{field}_total", namespace=namespace, kind="responses")
            assert value == stats[namespace][field], (namespace, field)
    responses = {"namespace": "workstations", "kind": "responses"}
    assert delta("wsinv_cache_hits_total", **responses) == 2
    assert delta("wsinv_cache_misses_total", **responses) == 1
    assert delta("wsinv_cache_misses_total", namespace="locations", kind="responses") == 1
    assert delta("wsinv_cache_hits_total", namespace="_gen", kind="internal") >= 1


def test_counters_never_go_back_when_the_statistics_are_reset(
    cache_backend, reader_client, inventory
):
    for _ in range(3):
        get(reader_client, LIST)
    before = scrape()

    perf_cache.reset_stats()
    get(reader_client, LIST)

    after = scrape()
    for (name, label), value in before.items():
        if name.startswith("wsinv_cache_") and name.endswith("_total"):
            assert after.get((name, label), 0) >= value, (name, dict(label))
    hits = ("wsinv_cache_hits_total", labels(namespace="workstations", kind="responses"))
    assert after[hits] == before[hits] + 1


def test_request_counter_and_histogram_count_the_endpoints_hit(reader_client, inventory):
    before = scrape()

    for _ in range(3):
        get(reader_client, LIST)
    get(reader_client, f"{LIST}999999/")  # another endpoint, a 404

    after = scrape()
    delta = delta_of(before, after)
    endpoint = {"endpoint": "workstations-api:workstation-list", "method": "GET"}
    assert delta("wsinv_http_requests_total", **endpoint, status="200", cache="miss") == 1
    assert delta("wsinv_http_requests_total", **endpoint, status="200", cache="hit") == 2
    detail = {"endpoint": "workstations-api:workstation-detail", "method": "GET"}
    assert delta("wsinv_http_requests_total", **detail, status="404", cache="bypass") == 1
    assert delta("wsinv_http_request_duration_seconds_count", **endpoint, cache="hit") == 2
    assert (
        delta("wsinv_http_request_duration_seconds_bucket", **endpoint, cache="hit", le="+Inf") == 2
    )
    assert delta("wsinv_http_request_duration_seconds_sum", **endpoint, cache="miss") > 0
    # Raw paths never become labels (one series per URL pattern, not per object).
    assert not any("999999" in value for _, label in after for _, value in label)


def test_latency_buckets_start_at_100_microseconds(reader_client, inventory):
    get(reader_client, LIST)
    bounds = {
        float(dict(label)["le"])
        for (name, label), _ in scrape().items()
        if name == "wsinv_http_request_duration_seconds_bucket"
    }
    assert min(bounds) == 0.0001
    assert {0.00025, 0.0005, 0.001} <= bounds


def test_made_up_methods_share_one_label(client, inventory):
    for n in range(30):
        client.generic(f"BREW{n}", LIST, REMOTE_ADDR="127.0.0.1")
    client.generic("BREW", LIST)

    methods = {
        dict(label)["method"]
        for (name, label), _ in scrape().items()
        if name == "wsinv_http_requests_total"
    }
    assert "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def test_no_created_series(reader_client, inventory):
    get(reader_client, LIST)
    response = Client().get(METRICS)
    assert b"_created" not in response.content


def test_the_info_metric_and_the_gauges_are_there(cache_backend, reader_client, inventory):
    get(reader_client, LIST)

    scraped = scrape()

    [info] = [label for name, label in scraped if name == "wsinv_build_info"]
    info = dict(info)
    assert info["cache_backend"] == cache_backend.server_info()["backend"]
    assert info["database_vendor"] in {"sqlite", "postgresql"}
    assert info["version"]
    assert ("wsinv_cache_namespaces_behind", labels()) in scraped
    assert ("wsinv_cache_copies", labels()) in scraped
    assert any(name.startswith("process_") for name, _ in scraped)
    assert any(name == "python_info" for name, _ in scraped)
    if cache_backend.stats_scope == "process":
        assert scraped[("wsinv_cache_local_entries", labels())] == len(cache_backend._cache)
        assert scraped[("wsinv_cache_local_bytes", labels())] > 0
    else:
        assert scraped[("wsinv_cache_shared_entries", labels())] >= 1
        assert scraped[("wsinv_cache_shared_bytes", labels())] > 0


def test_breaker_state_gauge_shows_one_current_state(client):
    scraped = scrape(client)

    states = {
        dict(label)["state"]: value
        for (name, label), value in scraped.items()
        if name == "wsinv_cache_breaker_state"
    }
    assert states == {"closed": 1.0, "open": 0.0, "half-open": 0.0}


OTHER_PROCESS = """
import django
django.setup()
from django.core.cache import caches
cache = caches["default"]
cache.set("workstations:other:entry", b"bytes", 60)
for _ in range(3):
    assert cache.get("workstations:other:entry") == b"bytes"
for n in range(2):
    assert cache.get(f"workstations:other:missing-{n}") is None
cache.flush_stats()
"""


@pytest.mark.redis
def test_on_redis_each_process_exports_its_own_counters(
    redis_cache, redis_url, redis_prefix, reader_client, inventory, tmp_path
):
    """Another process's counts (in the shared Redis for the console) are not this process's:
    exporting them from every instance made sum() count each hit once per instance."""
    for _ in range(3):
        get(reader_client, LIST)  # here: one miss, two hits
    hits = ("wsinv_cache_hits_total", labels(namespace="workstations", kind="responses"))
    here = scrape()

    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_ENV"}}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "VAR_DIR": str(tmp_path),
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": redis_prefix,
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr

    both = scrape()
    assert both[hits] == here[hits]  # the other process's 3 hits are its own to export
    console = perf_cache.stats(include_keys=False)["namespaces"]["workstations"]
    assert console["hits"] == 2 + 3  # while the console shows the fleet's


@pytest.mark.redis
def test_errors_are_counted_while_the_cache_is_down(settings, reader_client, inventory):
    from .servers import free_port
    from .support import redis_config, unique

    settings.CACHES = redis_config(f"redis://127.0.0.1:{free_port()}/0", unique("down"))
    before = scrape()
    for _ in range(6):
        response = get(reader_client, LIST)
        assert (response.status_code, response["X-Cache"]) == (200, "MISS")

    after = scrape()
    delta = delta_of(before, after)
    errors = sum(
        value - before.get((name, label), 0)
        for (name, label), value in after.items()
        if name == "wsinv_cache_errors_total"
    )
    assert errors >= 6  # the breaker opened after three: every call since failed open too
    assert delta("wsinv_cache_misses_total", namespace="workstations", kind="responses") == 6
    assert after[("wsinv_cache_breaker_state", labels(state="open"))] == 1
    assert delta("wsinv_cache_breaker_opened_total") == 1
