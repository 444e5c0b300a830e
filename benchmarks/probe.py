"""Counts what one request of each benchmark scenario costs: SQL queries and cache calls.

Run by ``benchmarks.run`` with the server's environment, so it sees the same database and cache.
Deterministic figures, unlike throughput: warm-up requests, then one measured request.
"""

from __future__ import annotations

import json
import os

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from performance import cache as perf_cache


def round_trips() -> int:
    """Cache round trips this process made, counted by the instrumented backend (a get_many is
    one). This process's own counters: the statistics API sums every process's on Redis, where
    the server's workers publish their sweeps' round trips at any moment, one of which could
    land between two readings here."""
    totals = perf_cache.backend().recorder.totals()
    return sum(row.get("calls", 0) for row in totals.values())


def main() -> None:
    scenarios = json.loads(os.environ["BENCH_SCENARIOS"])
    token = os.environ["BENCH_TOKEN"]
    counts: dict[str, dict[str, int]] = {}
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    for n, scenario in enumerate(scenarios):
        path = scenario["path"]
        headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in scenario["headers"].items()}
        accept = "application/json"
        if scenario["name"] == "list_miss":
            # As miss.lua: a parameter of Accept makes the key new, the query stays the same.
            client.get(path, HTTP_ACCEPT=f"{accept}; nonce=probe-warm-{n}")
            accept = f"{accept}; nonce=probe-{n}"
        else:
            # Twice: what a warm hit costs once this process has served it (``cache.hot``).
            for _ in range(2):
                client.get(path, HTTP_ACCEPT=accept, **headers)
        before = round_trips()
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, HTTP_ACCEPT=accept, **headers)
        assert response.status_code in (200, 304), (scenario["name"], response.status_code)
        counts[scenario["name"]] = {
            "queries": len(queries),
            "cache_calls": round_trips() - before,
        }
    print(json.dumps(counts))


if __name__ == "__main__":
    # Set up here, not at import: a test that imports ``round_trips`` has Django set up
    # already, and a second setup would configure its logging twice.
    import django

    django.setup()
    main()
