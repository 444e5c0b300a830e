"""The probe's count of cache round trips (``benchmarks.probe``) is its own process's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.core.cache import caches

from benchmarks import probe
from tests.conftest import require_service
from tests.performance.support import TEST_REDIS_URL, delete_prefixed, redis_config, unique

ROOT = Path(__file__).resolve().parents[2]
#: A server worker, as far as the shared statistics go: two round trips, published.
ANOTHER_PROCESS = (
    "import django; django.setup()\n"
    "from performance import cache\n"
    "backend = cache.backend()\n"
    "backend.get('workstations:theirs')\n"
    "backend.get('workstations:theirs-too')\n"
    "backend.flush_stats()\n"
)


@pytest.mark.redis
def test_round_trips_are_the_probing_process_own(settings):
    """With Redis the statistics are the fleet's: the server's workers publish their round
    trips (their sweeps') at any moment, and none of them is the probed request's."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", f"{TEST_REDIS_URL}: {exc}")
    prefix = unique("wsinv-test")
    settings.CACHES = redis_config(TEST_REDIS_URL, prefix)
    try:
        before = probe.round_trips()
        caches["default"].get("workstations:ours")
        subprocess.run(
            [sys.executable, "-c", ANOTHER_PROCESS],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "project.settings",
                "DJANGO_ENV": "development",
                "REDIS_URL": TEST_REDIS_URL,
                "CACHE_KEY_PREFIX": prefix,
            },
            check=True,
            capture_output=True,
        )
        assert probe.round_trips() - before == 1
    finally:
        delete_prefixed(client, prefix)
        client.close()
