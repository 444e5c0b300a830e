"""``/health/``: ok, degraded (cache down: 200, the API still answers), critical (database down:
503); JSON when asked, HTML for browsers."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import LocationFactory, WorkstationFactory

from .support import LIST, LOCATIONS, REDIS, get

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
HEALTH = "/health/"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cache_down(settings):
    """The production cache configuration, pointed at a Redis that is not there."""
    settings.CACHES = {
        "default": {
            "BACKEND": REDIS,
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
            "TIMEOUT": 300,
            "KEY_PREFIX": "wsinv-health-test",
            "OPTIONS": {
                "CLIENT_CLASS": "performance.cache.redis.InventoryRedisClient",
                "SOCKET_CONNECT_TIMEOUT": 0.1,
                "SOCKET_TIMEOUT": 0.1,
            },
        }
    }


def health_json(client: Client, **how: str):
    response = client.get(HEALTH, **how)
    assert response["Content-Type"].startswith("application/json")
    return response, response.json()


@pytest.mark.parametrize(
    "how",
    [{"HTTP_ACCEPT": "application/json"}, {"data": {"format": "json"}}],
    ids=["accept", "format"],
)
def test_healthy_service_reports_ok_in_json(cache_backend, client, how):
    response, body = health_json(client, **how)

    assert response.status_code == 200
    assert body == {"status": "ok", "checks": {"Database": "OK", "CacheCheck": "OK"}}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize(
    "how",
    [
        {},
        {"HTTP_ACCEPT": "*/*"},  # curl
        {"HTTP_ACCEPT": ""},
        {"HTTP_ACCEPT": "application/xml;q=0.9, */*;q=0.8"},
        {"HTTP_ACCEPT": "not a media type"},  # django-health-check would answer 500
    ],
    ids=["no-accept", "wildcard", "empty", "xml-then-anything", "unreadable"],
)
def test_probes_get_json_unless_they_ask_for_another_format(cache_backend, client, how):
    """Load balancers, curl and monitoring agents ask for anything: they read JSON."""
    response, body = health_json(client, **how)
    assert (response.status_code, body["status"]) == (200, "ok")


@pytest.mark.parametrize("accept", ["text/plain", "text/plain, */*"])
def test_text_when_asked_first(client, accept):
    response = client.get(HEALTH, HTTP_ACCEPT=accept)
    assert response["Content-Type"].startswith("text/plain")


def test_a_degraded_check_logs_one_line_without_a_traceback(cache_down, client, caplog):
    caplog.set_level(logging.INFO, logger="performance.health")
    for _ in range(2):  # two probes
        assert client.get(HEALTH).status_code == 200
    lines = [r for r in caplog.records if r.name.startswith(("health_check", "performance.health"))]
    assert len(lines) == 2, [r.getMessage() for r in lines]
    for record in lines:
        assert record.levelno == logging.WARNING
        assert record.exc_info is None
        message = record.getMessage()
        assert message.startswith("health degraded: CacheCheck: "), message
        assert message.endswith("serving from the database"), message  # unreachable, or breaker


def test_a_healthy_probe_logs_nothing(cache_backend, client, caplog):
    caplog.set_level(logging.INFO, logger="performance.health")
    assert client.get(HEALTH).status_code == 200
    assert not [r for r in caplog.records if "health" in r.name]


def test_browsers_get_html(client):
    response = client.get(HEALTH, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"<html" in response.content.lower()


def test_cache_down_is_degraded_and_the_api_still_answers(cache_down, client, reader_client):
    location = LocationFactory(name="Lab")
    for n in range(3):
        WorkstationFactory(hostname=f"ws-{n}", location=location)

    response, body = health_json(client, HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["Database"] == "OK"
    assert "cache unreachable" in body["checks"]["CacheCheck"]

    for _ in range(2):  # nothing is cached: every answer comes from the database
        listing = get(reader_client, LIST)
        assert listing.status_code == 200
        assert [ws["hostname"] for ws in listing.json()["results"]] == ["ws-0", "ws-1", "ws-2"]
        assert listing.headers["X-Cache"] == "MISS"
    locations = get(reader_client, LOCATIONS)
    assert locations.status_code == 200
    assert locations.json()["results"][0]["name"] == "Lab"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [(BROWSER_ACCEPT, "text/html"), ("text/plain", "text/plain")],
)
def test_cache_down_is_degraded_not_an_error_in_every_format(
    cache_down, client, accept, content_type
):
    response = client.get(HEALTH, HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    assert b"cache unreachable" in response.content


def test_an_unacceptable_format_stays_406(client):
    response = client.get(HEALTH, HTTP_ACCEPT="image/png")

    assert response.status_code == 406


DATABASE_DOWN_PROBE = """
import json
import django
django.setup()
from django.test import Client
client = Client()
as_json = client.get("/health/", HTTP_ACCEPT="application/json")
as_html = client.get("/health/", HTTP_ACCEPT="text/html")
print(json.dumps({
    "json": [as_json.status_code, as_json.json()],
    "html": [as_html.status_code, as_html["Content-Type"]],
}))
"""


def test_database_down_is_critical(tmp_path):
    """A real broken connection: the server process's database is a port nobody listens on."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DJANGO_ENV"}}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/test",
            "ALLOWED_HOSTS": "testserver",
        }
    )

    result = subprocess.run(
        [sys.executable, "-c", DATABASE_DOWN_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    status, body = probe["json"]
    assert status == 503
    assert body["status"] == "critical"
    assert body["checks"]["Database"] != "OK"
    assert body["checks"]["CacheCheck"] == "OK"
    assert probe["html"][0] == 503
    assert probe["html"][1].startswith("text/html")
