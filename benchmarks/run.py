"""The load benchmark: the product's cached API against the ceiling and against its peers.

    .venv/bin/python -m benchmarks.run                    # full run (make bench)
    .venv/bin/python -m benchmarks.run --smoke            # a few seconds, part of make test
    .venv/bin/python -m benchmarks.run --rows 1000,10000,100000

For each runtime shape (embedded: SQLite + locmem, one gunicorn process with threads; production:
PostgreSQL + Redis, two gunicorn worker processes) it prepares its own database and token, serves
with gunicorn, and drives every scenario with wrk over loopback in interleaved rounds. It prints a
Markdown table and writes JSON. Every figure is a ratio between scenarios of one run, or a count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "benchmarks" / "lua"
PYTHON = sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PAGE = 50


@dataclass
class Scenario:
    name: str
    title: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    script: str | None = None
    script_args: list[str] = field(default_factory=list)


@dataclass
class Result:
    shape: str
    scenario: str
    title: str
    rows: int
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0
    queries: int | None = None
    cache_calls: int | None = None
    hit_rate: float | None = None
    #: Resident memory of the worker processes (MB, summed) after warming and at the end.
    rss_mb: tuple[float, float] | None = None

    @property
    def median_rps(self) -> float:
        return statistics.median(self.rps) if self.rps else 0.0


# Preparation -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(cmd: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, check=True, text=True, **kwargs)


def manage(env: dict[str, str], *args: str, capture: bool = False) -> str:
    done = run([PYTHON, "manage.py", *args], env, capture_output=capture)
    return done.stdout if capture else ""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk is missing: installing it with apt-get", file=sys.stderr)
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=False)
    subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", "wrk"], check=True)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk could not be installed: apt-get install wrk")
    return path


def postgres_database(name: str) -> str:
    """Create the benchmark's own PostgreSQL database if needed; returns its URL."""
    import psycopg

    with psycopg.connect(
        PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True
    ) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            c.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def base_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "VAR_DIR": str(work),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "DJANGO_ENV": "development",
        }
    )
    return env


def prepare(shape: str, rows: int, work: Path, *, fresh: bool) -> dict[str, str]:
    """A database with ``rows`` workstations, a user and its token; returns the server env."""
    env = base_env(work)
    if shape == "embedded":
        db = work / f"bench-{rows}.sqlite3"
        if fresh and db.exists():
            db.unlink()
        env["DATABASE_URL"] = f"sqlite:///{db}"
    else:
        env["DATABASE_URL"] = postgres_database(f"wsinv_bench_{rows}")
        env["REDIS_URL"] = REDIS_URL
    env["CACHE_KEY_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}"
    manage(env, "migrate", "--noinput", "-v0")
    count = manage(
        env,
        "shell",
        "-c",
        "from workstations.models import Workstation; print(Workstation.objects.count())",
        capture=True,
    )
    if int(count.strip().splitlines()[-1]) != rows:
        manage(env, "flush", "--noinput", "-v0")
        manage(env, "seed_demo", "--count", str(rows), "--seed", "7", "-v0")
    token = manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model;"
        "from rest_framework.authtoken.models import Token;"
        "u, _ = get_user_model().objects.get_or_create(username='bench',"
        " defaults={'is_staff': True, 'is_superuser': True});"
        "print(Token.objects.get_or_create(user=u)[0].key)",
        capture=True,
    )
    env["BENCH_TOKEN"] = token.strip().splitlines()[-1]
    return env


@contextlib.contextmanager
def server(env: dict[str, str], shape: str, connections: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    workers = 1 if shape == "embedded" else 2
    server_env = {
        **env,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": "4",
        # wrk opens all its keep-alive connections at once, and one worker can accept them all
        # before the other wakes: the other then idles for the whole round. A worker holding
        # its share stops accepting, so the rest go to the other one. (gthread keeps at most
        # worker_connections - threads alive: room for the share plus the busy threads.)
        "GUNICORN_WORKER_CONNECTIONS": str(-(-connections // workers) + 4 + 2),
    }
    process = subprocess.Popen(
        [str(Path(PYTHON).with_name("gunicorn")), "-c", "project/gunicorn.conf.py"],
        cwd=ROOT,
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/bench/ceiling/?bytes=10", timeout=1).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn did not start:\n{process.stderr.read()}") from None
                time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def fetch(base: str, path: str, token: str, **headers: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(
        base + path, headers={"Authorization": f"Token {token}", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# Scenarios ---------------------------------------------------------------------------------


def scenarios(base: str, token: str, rows: int) -> list[Scenario]:
    list_path = f"/api/workstations/?page_size={PAGE}"
    status, headers, body = fetch(base, list_path, token)
    assert status == 200, (status, body[:200])
    etag = headers["ETag"]
    return [
        Scenario(
            "ceiling", "ceiling: constant body, same size", f"/bench/ceiling/?bytes={len(body)}"
        ),
        Scenario("list_hit", "list, warm hit", list_path),
        Scenario("detail_hit", "detail, warm hit", "/api/workstations/1/"),
        Scenario("list_304", "list, 304 revalidation", list_path, {"If-None-Match": etag}),
        Scenario(
            "list_miss",
            "list, miss (cold key)",
            list_path,
            script="miss.lua",
            script_args=[list_path],
        ),
        Scenario(
            "peer_cache_page", "peer: cache_page + DRF", f"/bench/peer-cache-page/?page_size={PAGE}"
        ),
        Scenario("peer_drf", "peer: plain DRF", f"/bench/peer-drf/?page_size={PAGE}"),
        Scenario(
            "mixed",
            "mixed: 95% reads, 5% writes",
            "/",
            script="mixed.lua",
            script_args=[str(min(rows, 1000)), "0"],
        ),
    ]


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_REQUESTS = re.compile(r"(\d+) requests in")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def drive(
    wrk: str, base: str, token: str, scenario: Scenario, seconds: int, connections: int
) -> tuple[float, float, float, int, int]:
    cmd = [
        wrk,
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Token {token}",
        "-H",
        "Accept: application/json",
    ]
    for name, value in scenario.headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if scenario.script:
        cmd += ["-s", str(LUA / scenario.script), base + scenario.path, "--", *scenario.script_args]
    else:
        cmd.append(base + scenario.path)
    output = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 60)
    text = output.stdout
    rps = float(_RPS.search(text).group(1))
    latency = {p: float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(text)}
    errors = int(m.group(1)) if (m := _NON2XX.search(text)) else 0
    if m := _SOCKET.search(text):
        errors += sum(int(x) for x in m.groups())
    requests = int(m.group(1)) if (m := _REQUESTS.search(text)) else 0
    return rps, latency.get("50", 0.0), latency.get("99", 0.0), errors, requests


def probe(env: dict[str, str], scenario_list: list[Scenario]) -> dict[str, dict[str, int]]:
    """SQL queries and cache calls of one request of each scenario, measured in-process."""
    payload = json.dumps([asdict(s) for s in scenario_list if s.name != "mixed"])
    done = run(
        [PYTHON, "-m", "benchmarks.probe"],
        {**env, "BENCH_SCENARIOS": payload},
        capture_output=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker_rss(master: int) -> float:
    import psutil

    try:
        workers = psutil.Process(master).children()
        return sum(w.memory_info().rss for w in workers) / 1_048_576
    except psutil.Error:
        return 0.0


#: The namespaces of cached responses: the hit rate is theirs (token lookups, throttles and the
#: cache layer's own bookkeeping are not responses).
RESPONSE_NAMESPACES = ("workstations", "locations")


def cache_hit_rate(base: str, token: str) -> tuple[int, int]:
    status, _, body = fetch(base, "/api/performance/cache-stats/", token)
    if status != 200:
        return 0, 0
    stats = json.loads(body)
    rows = [row for ns, row in stats["namespaces"].items() if ns in RESPONSE_NAMESPACES]
    return sum(r["hits"] for r in rows), sum(r["misses"] for r in rows)


# The run -----------------------------------------------------------------------------------


def bench_shape(
    shape: str, rows: int, args: argparse.Namespace, wrk: str, work: Path, only: set[str] | None
) -> list[Result]:
    env = prepare(shape, rows, work, fresh=args.fresh)
    token = env["BENCH_TOKEN"]
    with server(env, shape, args.connections) as (base, master):
        chosen = [s for s in scenarios(base, token, rows) if only is None or s.name in only]
        counts = probe(env, chosen)
        results = {
            s.name: Result(shape, s.name, s.title, rows, **counts.get(s.name, {})) for s in chosen
        }
        # Warm every scenario once, then interleave rounds so noise hits them all alike.
        for s in chosen:
            drive(wrk, base, token, s, 1, 2)
        rss_before = worker_rss(master)
        for _ in range(args.rounds):
            for s in chosen:
                before = cache_hit_rate(base, token) if s.name == "mixed" else None
                rps, p50, p99, errors, requests = drive(
                    wrk, base, token, s, args.duration, args.connections
                )
                result = results[s.name]
                result.rps.append(rps)
                result.p50_ms.append(p50)
                result.p99_ms.append(p99)
                result.errors += errors
                result.requests += requests
                if before is not None:
                    time.sleep(1.2)  # let every worker flush its counters
                    hits, misses = cache_hit_rate(base, token)
                    dh, dm = hits - before[0], misses - before[1]
                    result.hit_rate = round(dh / (dh + dm), 3) if dh + dm else None
        rss_after = worker_rss(master)
    out = list(results.values())
    for result in out:
        result.rss_mb = (round(rss_before, 1), round(rss_after, 1))
    return out


def ratio(results: dict[str, Result], a: str, b: str) -> float | None:
    if a in results and b in results and results[b].median_rps:
        return results[a].median_rps / results[b].median_rps
    return None


TARGETS = [
    ("list warm hit / ceiling", "list_hit", "ceiling", {"embedded": 0.90, "production": 0.75}),
    ("304 revalidation / ceiling", "list_304", "ceiling", {"embedded": 0.95, "production": 0.80}),
    ("list miss / plain DRF peer", "list_miss", "peer_drf", {"embedded": 3.0, "production": 3.0}),
    (
        "list warm hit / cache_page peer",
        "list_hit",
        "peer_cache_page",
        {"embedded": 1.25, "production": 1.8},
    ),
]


def report(all_results: list[Result], scaling: dict[str, dict[int, float]]) -> str:
    lines = []
    for shape in dict.fromkeys(r.shape for r in all_results):
        results = {r.scenario: r for r in all_results if r.shape == shape}
        ceiling = results.get("ceiling")
        rows = next(iter(results.values())).rows
        lines += [
            f"### {shape} ({rows:,} workstations)",
            "",
            "| scenario | req/s (median) | p50 ms | p99 ms | / ceiling | SQL/req | cache calls/req "
            "| errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results.values():
            vs = (
                f"{r.median_rps / ceiling.median_rps:.2f}"
                if ceiling and ceiling.median_rps
                else "-"
            )
            extra = f" (hit rate {r.hit_rate:.0%})" if r.hit_rate is not None else ""
            lines.append(
                f"| {r.title}{extra} | {r.median_rps:,.0f} | {statistics.median(r.p50_ms):.2f} | "
                f"{statistics.median(r.p99_ms):.2f} | {vs} | "
                f"{'-' if r.queries is None else r.queries} | "
                f"{'-' if r.cache_calls is None else r.cache_calls} | {r.errors} |"
            )
        lines += ["", "| target | measured | wanted | |", "|---|---:|---:|---|"]
        for title, a, b, wanted in TARGETS:
            value = ratio(results, a, b)
            if value is not None:
                ok = "met" if value >= wanted[shape] else "MISSED"
                lines.append(f"| {title} | {value:.2f} | ≥ {wanted[shape]} | {ok} |")
        if "list_hit" in results and results["list_hit"].queries is not None:
            q = results["list_hit"].queries
            lines.append(
                f"| SQL on a warm hit, auth included | {q} | 0 | {'met' if q == 0 else 'MISSED'} |"
            )
        by_rows = scaling.get(shape, {})
        if len(by_rows) > 1:
            low, high = min(by_rows), max(by_rows)
            value = by_rows[high] / by_rows[low] if by_rows[low] else 0
            lines.append(
                f"| list miss req/s at {high:,} rows / at {low:,} rows | {value:.2f} | ≥ 0.7 | "
                f"{'met' if value >= 0.7 else 'MISSED'} |"
            )
        memory = next(iter(results.values())).rss_mb
        if memory:
            requests = sum(r.requests for r in results.values())
            lines.append(
                f"\nWorker memory (RSS, all workers): {memory[0]:.0f} MB after warm-up, "
                f"{memory[1]:.0f} MB after about {requests:,.0f} requests."
            )
        lines.append("")
        if len(by_rows) > 1:
            lines += ["| rows | list miss req/s |", "|---:|---:|"]
            lines += [f"| {n:,} | {rps:,.0f} |" for n, rps in sorted(by_rows.items())]
            lines.append("")
    return "\n".join(lines)


def services_available() -> tuple[bool, str]:
    try:
        import psycopg
        import redis

        psycopg.connect(
            PG_ADMIN_URL.replace("postgres://", "postgresql://"), connect_timeout=3
        ).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        return False, str(exc)
    return True, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--rows", default="10000", help="comma-separated; the first is the main run"
    )
    parser.add_argument("--shapes", default="embedded,production")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--connections",
        type=int,
        default=64,
        help="wrk connections, shared evenly by the server's workers",
    )
    parser.add_argument("--scenarios", default="", help="comma-separated subset")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: tiny data, 1 s runs")
    parser.add_argument("--fresh", action="store_true", help="rebuild the databases")
    parser.add_argument("--output", default=str(ROOT / "var" / "bench" / "results.json"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.duration, args.rounds, args.connections = "300", 1, 1, 4

    wrk = ensure_wrk()
    rows = [int(r) for r in args.rows.split(",") if r.strip()]
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    only = {s.strip() for s in args.scenarios.split(",") if s.strip()} or None
    if "production" in shapes:
        ok, why = services_available()
        if not ok:
            if os.environ.get("CI", "").lower() == "true":
                raise SystemExit(f"production shape needs PostgreSQL and Redis: {why}")
            print(f"!!! SKIPPED the production shape: {why}", file=sys.stderr)
            shapes.remove("production")

    work = Path(os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="wsinv-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    all_results: list[Result] = []
    scaling: dict[str, dict[int, float]] = {}
    for shape in shapes:
        main_results = bench_shape(shape, rows[0], args, wrk, work, only)
        all_results += main_results
        miss = next((r for r in main_results if r.scenario == "list_miss"), None)
        if miss:
            scaling.setdefault(shape, {})[rows[0]] = miss.median_rps
        for extra_rows in rows[1:]:
            extra = bench_shape(shape, extra_rows, args, wrk, work, {"list_miss"})
            scaling.setdefault(shape, {})[extra_rows] = extra[0].median_rps

    table = report(all_results, scaling)
    print(table)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
                "args": vars(args),
                "results": [{**asdict(r), "median_rps": r.median_rps} for r in all_results],
                "scaling": {s: {str(k): v for k, v in d.items()} for s, d in scaling.items()},
                "table": table,
            },
            indent=2,
        )
    )
    print(f"JSON written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
