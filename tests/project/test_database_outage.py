"""With the database unreachable, clients get 503 with Retry-After: JSON, no traceback.

The service runs in a separate process whose DATABASE_URL points at a port where nothing
listens, so every query fails the way it does when PostgreSQL is down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
token = {"HTTP_AUTHORIZATION": "Token 0123456789abcdef0123456789abcdef01234567"}
results = {}
for name, path, headers in [
    ("list", "/api/workstations/", {**token, "HTTP_ACCEPT": "application/json"}),
    ("create", "/api/workstations/", token),
    ("health", "/health/", {"HTTP_ACCEPT": "application/json"}),
    ("admin", "/admin/", {}),
]:
    if name == "create":
        response = client.post(path, {"hostname": "x"}, content_type="application/json", **headers)
    else:
        if name == "admin":
            client.cookies["sessionid"] = "a" * 32
        response = client.get(path, **headers)
    results[name] = {
        "status": response.status_code,
        "content_type": response.get("Content-Type"),
        "retry_after": response.get("Retry-After"),
        "body": response.content.decode(errors="replace"),
    }
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def outage(tmp_path_factory) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/inventory",
        "VAR_DIR": str(tmp_path_factory.mktemp("var")),
        "ALLOWED_HOSTS": "testserver",
        "LOG_LEVEL": "CRITICAL",
    }
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["list", "create"])
def test_api_answers_503_json_with_retry_after(outage, name):
    result = outage[name]
    assert result["status"] == 503
    assert result["content_type"] == "application/json"
    assert result["retry_after"].isdigit()
    assert "database" in json.loads(result["body"])["detail"].lower()
    assert "Traceback" not in result["body"]


def test_health_reports_critical(outage):
    assert outage["health"]["status"] == 503
    assert json.loads(outage["health"]["body"])["status"] == "critical"


def test_admin_answers_503_without_a_traceback(outage):
    assert outage["admin"]["status"] == 503
    assert outage["admin"]["retry_after"].isdigit()
    assert "Traceback" not in outage["admin"]["body"]
