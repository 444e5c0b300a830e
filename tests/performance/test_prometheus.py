"""A real Prometheus adds up what two servers say, before and after a Redis outage.

Debian's ``prometheus`` scrapes two gunicorn servers (two workers each: prometheus-client's
multiprocess mode) on one private ``redis-server`` every half second. A client makes known
requests and counts the ``X-Cache: HIT`` answers it gets; the PromQL sum of the response hits
must be exactly that count — before the outage, while Redis is down, and after it is back —
with no counter reset on the way (docs/design.md, "Invariants", 7). The dashboard's queries
must run against what the servers export.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service

from .servers import (
    GUNICORN,
    REDIS_SERVER,
    ROOT,
    Gunicorn,
    RedisServer,
    free_port,
    migrated_site,
    site_env,
    wait_for,
)
from .support import unique

pytestmark = pytest.mark.redis

PROMETHEUS = shutil.which("prometheus")
SCRAPE_INTERVAL = "500ms"
#: Long enough for every worker's exporter (1 s) and a scrape (0.5 s), several times over.
SETTLE_TIMEOUT = 30.0
RESPONSES = 'sum(wsinv_cache_{field}_total{{kind="responses"}})'


class Prometheus:
    """A private Prometheus on a free port, with its own data directory."""

    def __init__(self, directory: Path, targets: list[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": "400ms"},
                    "scrape_configs": [
                        {
                            "job_name": "wsinv",
                            "metrics_path": "/metrics",
                            "static_configs": [{"targets": targets}],
                        }
                    ],
                }
            )
        )
        self.log = directory / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not wait_for(self._ready, timeout=30, interval=0.2):
            self.stop()
            raise RuntimeError(f"prometheus did not start:\n{self.log.read_text()[-3000:]}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def targets_up(self, count: int) -> bool:
        return self.value('count(up{job="wsinv"} == 1)') == count

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not PROMETHEUS:
        require_service("prometheus", "install Debian's prometheus package (make test does)")
    if not REDIS_SERVER:
        require_service("redis-server", "the binary is not on PATH")
    if not GUNICORN.exists():
        require_service("gunicorn", f"{GUNICORN} is missing")
    site = migrated_site(tmp_path / "site", 4)
    redis = RedisServer(tmp_path / "redis")
    servers: list[Gunicorn] = []
    prometheus = None
    try:
        env = site_env(
            site["database"],
            tmp_path / "var",
            REDIS_URL=redis.url,
            CACHE_KEY_PREFIX=unique("wsinv-prom"),
            REDIS_SOCKET_TIMEOUT="0.25",
            REDIS_CONNECT_TIMEOUT="0.25",
            CACHE_BREAKER_RESET_TIMEOUT="1",
            GUNICORN_THREADS="2",
            REQUEST_LOG_LEVEL="WARNING",
        )
        for name in ("A", "B"):
            servers.append(Gunicorn(name, env, tmp_path, workers=2))
        deadline = time.monotonic() + 60
        for server in servers:
            server.wait_until_ready(deadline)
        prometheus = Prometheus(
            tmp_path / "prometheus", [f"127.0.0.1:{server.port}" for server in servers]
        )
        assert wait_for(lambda: prometheus.targets_up(2), timeout=30, interval=0.2)
        yield {"redis": redis, "servers": servers, "prometheus": prometheus, **site}
    finally:
        if prometheus is not None:
            prometheus.stop()
        for server in servers:
            server.terminate()
        for server in servers:
            server.stop()
        redis.stop()


class Client:
    """Known requests, spread over both servers; what each answer said in ``X-Cache``."""

    def __init__(self, servers: list[Gunicorn], token: str, pks: list[int]) -> None:
        self.servers, self.token, self.pks = servers, token, pks
        self.seen = {"HIT": 0, "MISS": 0}
        self.requests = 0

    def round(self) -> None:
        paths = ["/api/workstations/", *(f"/api/workstations/{pk}/" for pk in self.pks)]
        for server in self.servers:
            for path in paths:
                status, headers, _ = server.request("GET", path, token=self.token)
                assert status == 200, (server.name, path, status)
                self.requests += 1
                outcome = headers.get("x-cache")
                assert outcome in self.seen, headers
                self.seen[outcome] += 1


def settled(prometheus: Prometheus, client: Client) -> tuple[float | None, float | None]:
    """The sums of response hits and misses, once they equal the client's counts (or the last
    ones seen when they never do)."""
    figures: tuple[float | None, float | None] = (None, None)

    def equal() -> bool:
        nonlocal figures
        figures = (
            prometheus.value(RESPONSES.format(field="hits")),
            prometheus.value(RESPONSES.format(field="misses")),
        )
        return figures == (client.seen["HIT"], client.seen["MISS"])

    wait_for(equal, timeout=SETTLE_TIMEOUT, interval=0.25)
    return figures


def test_the_sum_of_response_hits_is_what_the_clients_saw(stack):
    prometheus: Prometheus = stack["prometheus"]
    redis: RedisServer = stack["redis"]
    client = Client(stack["servers"], stack["token"], stack["pks"])

    for _ in range(5):
        client.round()
    assert client.seen["HIT"] > client.seen["MISS"] > 0
    before = settled(prometheus, client)
    assert before == (client.seen["HIT"], client.seen["MISS"])

    # The outage: every answer comes from the database, and the counters keep counting.
    redis.kill()
    for _ in range(3):
        client.round()
    during = settled(prometheus, client)
    assert during == (client.seen["HIT"], client.seen["MISS"])
    assert during[0] == before[0]  # no hit while Redis is away
    assert prometheus.value("sum(wsinv_cache_errors_total)") > 0
    assert wait_for(
        lambda: (prometheus.value('sum(wsinv_cache_breaker_state{state="open"})') or 0) > 0,
        timeout=SETTLE_TIMEOUT,
        interval=0.25,
    )

    # Back, empty: hits again once the breakers have closed and the entries are stored anew.
    redis.restart()
    hits_before = client.seen["HIT"]
    deadline = time.monotonic() + 30
    while client.seen["HIT"] < hits_before + 10 and time.monotonic() < deadline:
        client.round()
        time.sleep(0.2)
    after = settled(prometheus, client)
    assert after == (client.seen["HIT"], client.seen["MISS"])
    assert after[0] > during[0]

    # Counters only went up: no reset in any series, whatever the outage did.
    resets = prometheus.value('sum(resets(wsinv_cache_hits_total{kind="responses"}[10m]))')
    assert resets == 0
    requests = prometheus.value('sum(wsinv_http_requests_total{endpoint!="unmatched"})')
    assert requests is not None and requests >= client.requests
    print(
        f"\nPrometheus sum of response hits {after[0]:.0f} = {client.seen['HIT']} hits seen "
        f"by the client (misses {after[1]:.0f} = {client.seen['MISS']}); before the outage "
        f"{before[0]:.0f}, during {during[0]:.0f}; requests {client.requests}"
    )


def test_every_instance_exports_process_figures_and_the_dashboard_queries_run(stack):
    prometheus: Prometheus = stack["prometheus"]
    client = Client(stack["servers"], stack["token"], stack["pks"])
    client.round()
    client.round()
    settled(prometheus, client)

    for metric in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "python_info",
        "wsinv_build_info",
        "wsinv_cache_namespaces_behind",
        "wsinv_cache_shared_entries",
        "wsinv_cache_copies_bytes",
    ):
        instances = {row["metric"]["instance"] for row in prometheus.query(metric)}
        assert len(instances) == 2, metric
    assert not prometheus.query('{__name__=~".+_created"}')

    dashboard = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs
    for expr in exprs:
        prometheus.query(expr.replace("$__rate_interval", "1m"))  # fails on an error
