"""One read-only client cannot grow the embedded worker's memory past the cache's byte bound.

The attack of the issue, against a real gunicorn in the embedded shape as it starts: a reader
asks for pages of 500 rows, each under a new parameter of its Accept header (a query parameter
the API does not read is refused), so that every response is a new cache entry of several
hundred kilobytes. The worker's resident memory is measured before and after; its growth must
stay within ``CACHE_MAX_BYTES`` and what rendering costs (the allocator keeps what it freed),
where it grew by the whole of every page before.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import require_service
from tests.performance.servers import (
    GUNICORN,
    ROOT,
    Gunicorn,
    copy_database,
    migrated_site,
    site_env,
)

MB = 1024 * 1024
ROWS = 500
#: Notes on every row, a quarter of what the bound allows: pages of about 700 KB.
NOTES = 500
REQUESTS = 400
CACHE_MAX_BYTES = 64 * MB  # project/settings.py's default, which the server runs with
#: What rendering 500-row pages in four threads, and the allocator's slack, may add (measured:
#: about 50 MB; the growth levels off after some 150 requests).
SLACK = 80 * MB
START_TIMEOUT = 60.0

WIDEN = f"""
from workstations.models import Workstation
Workstation.objects.update(notes="n" * {NOTES})
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not GUNICORN.exists():
        require_service("gunicorn", f"{GUNICORN} is missing")
    directory = tmp_path_factory.mktemp("memory-site")
    site = migrated_site(directory, ROWS)
    env = site_env(site["database"], directory / "var")
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", WIDEN],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return site


@pytest.fixture
def server(site: dict[str, Any], tmp_path: Path) -> Iterator[Gunicorn]:
    database = copy_database(site["database"], tmp_path / "inventory.sqlite3")
    env = site_env(database, tmp_path / "var", REQUEST_LOG_LEVEL="WARNING")
    server = Gunicorn("memory", env, tmp_path, workers=None)
    try:
        server.wait_until_ready(time.monotonic() + START_TIMEOUT)
        yield server
    finally:
        server.stop()


def worker_rss(server: Gunicorn) -> int:
    (worker,) = psutil.Process(server.process.pid).children()
    return worker.memory_info().rss


def test_large_pages_under_new_keys_do_not_grow_the_worker_past_the_bound(server, site):
    token = site["token"]
    page = f"/api/workstations/?page_size={ROWS}"
    for _ in range(3):  # warm: imports, the first page rendered, connections opened
        status, _, _ = server.request("GET", page, token=token, timeout=30)
        assert status == 200
    before = worker_rss(server)
    answers, curve = [], []
    for n in range(REQUESTS):
        status, headers, _ = server.request(
            "GET", page, token=token, timeout=30, accept=f"application/json; nonce={n}"
        )
        answers.append((status, headers.get("x-cache")))
        if n % 100 == 99:
            curve.append(round(worker_rss(server) / MB))
    after = worker_rss(server)
    status, _, stats = server.request("GET", "/api/performance/cache-stats/", token=token)
    assert status == 200
    held = stats["server"].get("bytes")
    print(
        f"\nworker RSS {before / MB:.0f} MB -> {after / MB:.0f} MB after {REQUESTS} pages of "
        f"{ROWS} rows under new keys (every 100: {curve} MB); the cache holds "
        f"{'?' if held is None else f'{held / MB:.1f}'} MB in {stats['server']['entries']} "
        f"entries, {stats['evictions']} evicted"
    )
    assert answers == [(200, "MISS")] * REQUESTS
    assert after - before < CACHE_MAX_BYTES + SLACK
    assert held is not None and held <= CACHE_MAX_BYTES
