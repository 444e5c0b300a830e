"""Read-your-writes across processes: two gunicorn servers sharing one Redis and one database.

A write through server A must be what server B serves the moment A's response has returned,
cycle after cycle, whatever B had cached. Select with ``-m redis``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .servers import free_port

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
CYCLES = 200
START_TIMEOUT = 30.0

SETUP = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from workstations.models import Workstation
user = get_user_model().objects.create_superuser("root", "root@example.com", "unused-password")
workstation = Workstation.objects.create(asset_tag="AT-1", hostname="ws-1", serial_number="SN-1")
print(json.dumps({"token": Token.objects.create(user=user).key, "pk": workstation.pk}))
"""


class Server:
    """One gunicorn (one worker process) and a keep-alive connection to it."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = logs / f"gunicorn-{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(GUNICORN), "-c", "project/gunicorn.conf.py"],
                cwd=ROOT,
                env={**env, "BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.connection: http.client.HTTPConnection | None = None

    def wait_until_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server {self.name} exited:\n{self.log.read_text()[-3000:]}")
            try:
                status, _, _ = self.request("GET", "/api/workstations/")
            except OSError:
                self.connection = None
                time.sleep(0.1)
                continue
            assert status == 401  # up, and refusing anonymous readers
            return
        pytest.fail(f"server {self.name} not ready in time:\n{self.log.read_text()[-3000:]}")

    def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, dict[str, str], Any]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            self.connection.request(method, path, payload, headers)
            response = self.connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            raise
        data = json.loads(content) if content else None
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def stop(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


@pytest.fixture
def shared_env(tmp_path: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """What both servers share: a migrated SQLite file, the test Redis, one key prefix."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_ENV", "DEBUG", "CACHE_WARM_ON_START"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'inventory.sqlite3'}",
            "VAR_DIR": str(tmp_path / "var"),
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": redis_prefix,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "GUNICORN_THREADS": "2",
        }
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run(
        [*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120
    )
    return env


@pytest.fixture
def servers(shared_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    started: list[Server] = []
    try:
        started.append(Server("A", shared_env, tmp_path))
        started.append(Server("B", shared_env, tmp_path))
        deadline = time.monotonic() + START_TIMEOUT
        for server in started:
            server.wait_until_ready(deadline)
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def seeded(shared_env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETUP],
        cwd=ROOT,
        env=shared_env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_write_through_one_server_is_read_back_through_the_other(servers, seeded):
    a, b = servers
    token, pk = seeded["token"], seeded["pk"]
    detail, listing = f"/api/workstations/{pk}/", "/api/workstations/"
    assert a.process.pid != b.process.pid
    hits = 0

    for cycle in range(CYCLES):
        # B has the previous state cached (list and detail), so a stale answer is possible.
        for path in (detail, listing):
            b.request("GET", path, token=token)

        notes = f"cycle {cycle}"
        status, _, body = a.request("PATCH", detail, {"notes": notes}, token=token)
        assert (status, body["notes"]) == (200, notes)

        status, headers, body = b.request("GET", detail, token=token)
        assert (status, body["notes"]) == (200, notes), f"B served stale detail at cycle {cycle}"
        status, _, body = b.request("GET", listing, token=token)
        assert status == 200
        assert body["results"][0]["notes"] == notes, f"B served a stale list at cycle {cycle}"

        status, headers, body = b.request("GET", detail, token=token)
        assert body["notes"] == notes
        hits += headers.get("x-cache") == "HIT"

    # The cache was really in the way: B served repeated reads from it (a read that timed out
    # against Redis under load falls back to the database, hence not "every cycle").
    assert hits > CYCLES // 2
