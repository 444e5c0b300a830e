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


# Content -----------------------------------------------------------------------------------


def test_cache_series_match_the_console_figures(cache_backend, reader_client, inventory):
    for path in (LIST, LIST, LIST, LOCATIONS):
        assert get(reader_client, path).status_code == 200

    scraped = scrape()

    stats = perf_cache.stats(include_keys=False)["namespaces"]
    for namespace in ("workstations", "locations"):
        for field in ("hits", "misses", "sets", "deletes", "errors"):
            value = scraped[(f"wsinv_cache_{field}_total", labels(namespace=namespace))]
            assert value == stats[namespace][field], (namespace, field)
    assert scraped[("wsinv_cache_hits_total", labels(namespace="workstations"))] == 2
    assert scraped[("wsinv_cache_misses_total", labels(namespace="workstations"))] == 1
    assert scraped[("wsinv_cache_misses_total", labels(namespace="locations"))] == 1


def test_request_counter_and_histogram_count_the_endpoints_hit(reader_client, inventory):
    endpoint = {"endpoint": "workstations-api:workstation-list", "method": "GET"}
    before = scrape()

    for _ in range(3):
        get(reader_client, LIST)
    get(reader_client, f"{LIST}999999/")  # another endpoint, a 404

    after = scrape()

    def delta(name: str, **kw: str) -> float:
        key = (name, labels(**kw))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("wsinv_http_requests_total", **endpoint, status="200") == 3
    assert (
        delta(
            "wsinv_http_requests_total",
            endpoint="workstations-api:workstation-detail",
            method="GET",
            status="404",
        )
        == 1
    )
    assert delta("wsinv_http_request_duration_seconds_count", **endpoint) == 3
    assert delta("wsinv_http_request_duration_seconds_bucket", **endpoint, le="+Inf") == 3
    assert delta("wsinv_http_request_duration_seconds_sum", **endpoint) > 0
    # Raw paths never become labels (one series per URL pattern, not per object).
    assert not any("999999" in value for _, label in after for _, value in label)


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
def test_on_redis_cache_counters_of_two_processes_add_up(
    redis_cache, redis_url, redis_prefix, reader_client, inventory, tmp_path
):
    for _ in range(3):
        get(reader_client, LIST)  # here: one miss, two hits
    here = scrape()
    hits = ("wsinv_cache_hits_total", labels(namespace="workstations"))
    misses = ("wsinv_cache_misses_total", labels(namespace="workstations"))
    sets = ("wsinv_cache_sets_total", labels(namespace="workstations"))
    assert (here[hits], here[misses]) == (2, 1)

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
    assert both[hits] == here[hits] + 3
    assert both[misses] == here[misses] + 2
    assert both[sets] == here[sets] + 1
