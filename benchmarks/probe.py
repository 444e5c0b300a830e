"""Counts what one request of each benchmark scenario costs: SQL queries and cache calls.

Run by ``benchmarks.run`` with the server's environment, so it sees the same database and cache.
Deterministic figures, unlike throughput: one warm-up request, then one measured request.
"""

from __future__ import annotations

import json
import os

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from performance.cache.backends import InstrumentedCacheMixin  # noqa: E402

calls = 0


def main() -> None:
    global calls
    scenarios = json.loads(os.environ["BENCH_SCENARIOS"])
    token = os.environ["BENCH_TOKEN"]
    for klass in {InstrumentedCacheMixin, *InstrumentedCacheMixin.__subclasses__()}:
        if "_call_backend" in klass.__dict__:
            klass._call_backend_original = klass.__dict__["_call_backend"]
    counts: dict[str, dict[str, int]] = {}
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    for n, scenario in enumerate(scenarios):
        path = scenario["path"]
        headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in scenario["headers"].items()}
        if scenario["name"] == "list_miss":
            client.get(f"{path}&nonce=probe-warm-{n}", HTTP_ACCEPT="application/json")
            path = f"{path}&nonce=probe-{n}"
        else:
            client.get(path, HTTP_ACCEPT="application/json", **headers)
        calls = 0
        for klass in {InstrumentedCacheMixin, *InstrumentedCacheMixin.__subclasses__()}:
            if "_call_backend" in klass.__dict__:
                klass._call_backend = _wrap(klass.__dict__["_call_backend"])
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, HTTP_ACCEPT="application/json", **headers)
        for klass in {InstrumentedCacheMixin, *InstrumentedCacheMixin.__subclasses__()}:
            if hasattr(klass, "_call_backend_original"):
                klass._call_backend = klass._call_backend_original
        assert response.status_code in (200, 304), (scenario["name"], response.status_code)
        counts[scenario["name"]] = {"queries": len(queries), "cache_calls": calls}
    print(json.dumps(counts))


def _wrap(original):
    def counting(self, fn):
        global calls
        calls += 1
        return original(self, fn)

    return counting


if __name__ == "__main__":
    main()
