"""The load benchmark: the product's cached API against the ceiling and against its peers.

    .venv/bin/python -m benchmarks.run                    # full run (make bench)
    .venv/bin/python -m benchmarks.run --smoke            # a few seconds, part of make test
    .venv/bin/python -m benchmarks.run --rows 1000,10000,100000

For each runtime shape (embedded: SQLite + locmem, one gunicorn process with threads; production:
PostgreSQL + Redis, two gunicorn worker processes) it prepares its own database and token, serves
with gunicorn, and drives every scenario with wrk over loopback in interleaved rounds (the realistic
load, at its own number of connections, against a server of its own). It prints a Markdown table
and the targets met or missed, and writes JSON. Throughput figures are ratios between scenarios of
one run; besides them, counts (SQL, cache calls), and for the loads that write, the response hit
rate and the latency percentiles.

    .venv/bin/python -m benchmarks.run --shapes embedded --duration 2 --rounds 1 \
        --scenarios one_round_trip,realistic           # a quick look at a few scenarios
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "benchmarks" / "lua"
PYTHON = sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
#: The production shape's databases are PREFIX_ROWS: another prefix keeps two checkouts' runs on
#: one machine (make test in each, say) out of each other's data.
DATABASE_PREFIX = os.environ.get("BENCH_DATABASE_PREFIX", "wsinv_bench")
PAGE = 50
#: Every scenario, in the order of the table.
SCENARIO_NAMES = (
    "ceiling",
    "one_round_trip",
    "list_hit",
    "detail_hit",
    "list_304",
    "list_miss",
    "peer_cache_page",
    "peer_drf",
    "mixed",
    "realistic",
)
#: The realistic load: as many users at once as the product is asked to serve, whatever
#: ``--connections`` says, with several clients' tokens and a few thousand machines read.
REALISTIC_CONNECTIONS = 100
REALISTIC_CLIENTS = 8
REALISTIC_MACHINES = 3000
#: Scenarios served by a server of their own, sized for their connections (``server``): sizing
#: the shared server for 100 would let one worker take most of the others' 64 connections.
OWN_CONNECTIONS = {"realistic": REALISTIC_CONNECTIONS}


@dataclass
class Scenario:
    name: str
    title: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    script: str | None = None
    script_args: list[str] = field(default_factory=list)
    #: wrk's connections; ``None``: ``--connections``.
    connections: int | None = None
    #: Whether ``probe`` counts one request of it (not for loads that write).
    probed: bool = True
    #: Whether its responses' hit rate is measured, from the cache's statistics.
    measures_hit_rate: bool = False


@dataclass
class Result:
    shape: str
    scenario: str
    title: str
    rows: int
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p95_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0
    queries: int | None = None
    cache_calls: int | None = None
    hit_rate: float | None = None
    #: Responses answered from the cache and computed, over every measured round (the hit
    #: rate's terms), where the hit rate is measured.
    hits: int | None = None
    misses: int | None = None
    #: The same as the client saw them (``X-Cache`` of the responses wrk read): the cache's
    #: figures may exceed them by the responses cut off at the end of each run, never more.
    client_hits: int | None = None
    client_misses: int | None = None
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
        env["DATABASE_URL"] = postgres_database(f"{DATABASE_PREFIX}_{rows}")
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


#: Run in the benchmark's database: API clients that may change workstations, each with its
#: token, and the ids the realistic load reads and writes. Printed as JSON, on one line.
_CLIENTS = """
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from workstations.models import Location, Workstation

change = Permission.objects.get(
    codename="change_workstation", content_type__app_label="workstations"
)
tokens = []
for n in range({clients}):
    user, _ = get_user_model().objects.get_or_create(username=f"bench-client-{{n}}")
    user.user_permissions.add(change)
    tokens.append(Token.objects.get_or_create(user=user)[0].key)
print(json.dumps({{
    "tokens": tokens,
    "ids": list(Workstation.objects.order_by("id").values_list("id", flat=True)),
    "locations": list(Location.objects.order_by("id").values_list("id", flat=True)),
}}))
"""


@dataclass
class Clients:
    """Who sends the realistic load, and what it reads."""

    tokens: list[str]
    #: Every workstation's id.
    ids: list[int]
    locations: list[int]


def prepare_clients(env: dict[str, str]) -> Clients:
    """``REALISTIC_CLIENTS`` API clients with tokens (the same ones run after run)."""
    out = manage(env, "shell", "-c", _CLIENTS.format(clients=REALISTIC_CLIENTS), capture=True)
    return Clients(**json.loads(out.strip().splitlines()[-1]))


@contextlib.contextmanager
def server(env: dict[str, str], shape: str, connections: int) -> Iterator[tuple[str, int]]:
    """gunicorn serving the shape, its keep-alive connections sized for ``connections``."""
    port = free_port()
    workers = 1 if shape == "embedded" else 2
    server_env = {
        **env,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": "4",
        # wrk opens all its keep-alive connections at once, and one worker can accept them all
        # before the other wakes: the other then idles for the whole round. A worker holding
        # its share stops accepting, so the rest go to the other one. (The worker keeps at most
        # worker_connections - threads idle, as gthread: room for the share plus the busy
        # threads.)
        "GUNICORN_WORKER_CONNECTIONS": str(-(-connections // workers) + 4 + 2),
    }
    # Its log goes to a file: a pipe nobody reads fills up, and a server that logs (an error
    # on every request, say) then blocks on it and answers nothing more.
    log_path = Path(tempfile.mkstemp(prefix="wsinv-bench-gunicorn-", suffix=".log")[1])
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(Path(PYTHON).with_name("gunicorn")), "-c", "project/gunicorn.conf.py"],
        cwd=ROOT,
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=log,
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
                    log.flush()
                    raise SystemExit(f"gunicorn did not start:\n{log_path.read_text()}") from None
                time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        log_path.unlink(missing_ok=True)


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


def scenarios(
    base: str,
    token: str,
    rows: int,
    wanted: Sequence[str],
    clients: Clients | None = None,
    plan_file: Path | None = None,
) -> list[Scenario]:
    """The scenarios named in ``wanted``; the realistic one needs ``clients`` and writes its
    plan to ``plan_file``."""
    list_path = f"/api/workstations/?page_size={PAGE}"
    status, headers, body = fetch(base, list_path, token)
    assert status == 200, (status, body[:200])
    etag = headers["ETag"]
    every = [
        Scenario(
            "ceiling", "ceiling: constant body, same size", f"/bench/ceiling/?bytes={len(body)}"
        ),
        Scenario(
            "one_round_trip",
            "one round trip: ceiling + the generations read",
            f"/bench/one-round-trip/?bytes={len(body)}",
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
            probed=False,
            measures_hit_rate=True,
        ),
    ]
    if "realistic" in wanted:
        if clients is None or plan_file is None:
            raise ValueError("the realistic scenario needs its clients and a plan file")
        filters = list_filters(clients.locations)
        counts = filter_counts(base, token, [query for query, _ in filters])
        plan = realistic_plan(clients, filters, counts)
        plan_file.write_text("\n".join(plan) + "\n")
        every.append(
            Scenario(
                "realistic",
                f"realistic: {REALISTIC_CONNECTIONS} connections, {len(clients.tokens)} clients, "
                f"{REALISTIC_SHARES['write']}% writes",
                "/",
                script="realistic.lua",
                script_args=[str(plan_file), ",".join(clients.tokens)],
                connections=REALISTIC_CONNECTIONS,
                probed=False,
                measures_hit_rate=True,
            )
        )
    return [s for s in every if s.name in wanted]


# The realistic load: what several API clients ask of the service in a working day. Shares in
# percent of requests; list reads spread over filters (shares of list reads), orderings and
# pages, detail reads over a few thousand machines with a hot set.
REALISTIC_SHARES = {"list": 45, "detail": 35, "locations": 10, "summary": 8, "write": 2}
REALISTIC_STATUSES = ("deployed", "in_stock", "staged", "in_repair", "retired")
REALISTIC_DEPARTMENTS = (
    "Engineering",
    "Finance",
    "Sales",
    "Human Resources",
    "IT",
    "Customer Support",
)
REALISTIC_FORM_FACTORS = ("desktop", "laptop", "all_in_one", "tower", "thin_client")
#: Host names by site and kind, an asset tag's and an address's beginnings, one that finds none.
REALISTIC_SEARCHES = ("lon", "ams-lt", "nyc", "WS-0001", "10.40.", "ber-dt-0009", "no-such-host")
#: ``""``: the list's own order (host name); half the list reads keep it.
REALISTIC_ORDERINGS = (
    ("", 50),
    ("-purchase_date", 10),
    ("asset_tag", 10),
    ("-updated_at", 10),
    ("status", 10),
    ("-warranty_expires", 10),
)
REALISTIC_PAGE_SIZES = (25, 50)
REALISTIC_LOCATION_READS = ("/api/locations/", "/api/locations/?ordering=-workstation_count")
#: The share of detail reads that go to a fifth of the machines read (the hot set).
REALISTIC_HOT_READS = 0.8
REALISTIC_PLAN_LENGTH = 50_000
REALISTIC_SEED = 16


def list_filters(locations: Sequence[int]) -> list[tuple[str, float]]:
    """The query strings of the realistic load's filtered reads (lists and summaries), each
    with its share of them."""
    quote = urllib.parse.quote_plus
    groups = [
        (35, [""]),
        (15, [f"status={value}" for value in REALISTIC_STATUSES]),
        (15, [f"department={quote(value)}" for value in REALISTIC_DEPARTMENTS]),
        (10, [f"form_factor={value}" for value in REALISTIC_FORM_FACTORS]),
        (10, [f"location={value}" for value in locations]),
        (10, [f"search={quote(value)}" for value in REALISTIC_SEARCHES]),
        (
            5,
            [f"status=deployed&department={quote(v)}" for v in REALISTIC_DEPARTMENTS[:3]]
            + [f"form_factor=laptop&location={v}" for v in locations[:3]],
        ),
    ]
    return [
        (query, share / len(queries)) for share, queries in groups if queries for query in queries
    ]


def filter_counts(base: str, token: str, queries: Sequence[str]) -> dict[str, int]:
    """How many workstations each query selects, as the API counts them: the realistic load
    asks only for pages that exist (a page past the last is a 404, an error in the run)."""
    counts = {}
    for query in queries:
        path = f"/api/workstations/?page_size=1{'&' if query else ''}{query}"
        status, _, body = fetch(base, path, token)
        if status != 200:
            raise SystemExit(f"the realistic load's query {path} answers {status}: {body[:300]!r}")
        counts[query] = json.loads(body)["count"]
    return counts


def realistic_plan(
    clients: Clients,
    filters: Sequence[tuple[str, float]],
    counts: dict[str, int],
    *,
    length: int = REALISTIC_PLAN_LENGTH,
    seed: int = REALISTIC_SEED,
) -> list[str]:
    """The realistic load's requests, one a line ("METHOD PATH CLIENT", as realistic.lua
    reads them): the same seed gives the same plan, so that runs stay comparable. Each kind of
    request has exactly its share (``REALISTIC_SHARES``); the rest is drawn at random."""
    if not clients.ids or not clients.tokens:
        raise SystemExit("the realistic load needs workstations and clients to read them")
    rng = random.Random(seed)
    kinds = [kind for kind, share in REALISTIC_SHARES.items() for _ in range(length * share // 100)]
    kinds += ["list"] * (length - len(kinds))
    rng.shuffle(kinds)
    # A few thousand machines are read, spread over the whole table; a fifth of them, anywhere
    # in it, take most of the detail reads.
    machines = min(REALISTIC_MACHINES, len(clients.ids))
    read = [clients.ids[n * len(clients.ids) // machines] for n in range(machines)]
    read = rng.sample(read, len(read))
    hot_size = max(1, len(read) // 5)
    hot, tail = read[:hot_size], read[hot_size:] or read[:hot_size]
    queries = [query for query, _ in filters]
    query_weights = list(itertools.accumulate(share for _, share in filters))
    orderings = [ordering for ordering, _ in REALISTIC_ORDERINGS]
    ordering_weights = list(itertools.accumulate(share for _, share in REALISTIC_ORDERINGS))
    page_weights: dict[int, list[float]] = {}
    lines = []
    for kind in kinds:
        client = rng.randrange(len(clients.tokens))
        if kind == "write":
            lines.append(f"PATCH /api/workstations/{rng.choice(clients.ids)}/ {client}")
            continue
        if kind == "detail":
            pool = hot if rng.random() < REALISTIC_HOT_READS else tail
            path = f"/api/workstations/{rng.choice(pool)}/"
        elif kind == "locations":
            path = rng.choice(REALISTIC_LOCATION_READS)
        elif kind == "summary":
            query = rng.choices(queries, cum_weights=query_weights)[0]
            path = "/api/workstations/summary/" + (f"?{query}" if query else "")
        else:
            query = rng.choices(queries, cum_weights=query_weights)[0]
            ordering = rng.choices(orderings, cum_weights=ordering_weights)[0]
            size = rng.choice(REALISTIC_PAGE_SIZES)
            pages = max(1, math.ceil(counts[query] / size))
            # Page k is asked 1/k as often as the first: most readers stop early, some go far.
            weights = page_weights.get(pages)
            if weights is None:
                weights = page_weights[pages] = list(
                    itertools.accumulate(1 / k for k in range(1, pages + 1))
                )
            page = rng.choices(range(1, pages + 1), cum_weights=weights)[0]
            params = [f"page_size={size}"]
            params += [query] if query else []
            params += [f"ordering={ordering}"] if ordering else []
            params += [f"page={page}"] if page > 1 else []
            path = "/api/workstations/?" + "&".join(params)
        lines.append(f"GET {path} {client}")
    return lines


@dataclass
class Run:
    """What one wrk run of a scenario measured."""

    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int
    #: Responses read with ``X-Cache: HIT`` and ``MISS`` (scenarios that measure a hit rate).
    client_hits: int | None = None
    client_misses: int | None = None


_PERCENTILES = re.compile(r"^percentiles-us p50=(\d+) p95=(\d+) p99=(\d+)$", re.M)
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_REQUESTS = re.compile(r"(\d+) requests in")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_OUTCOMES = re.compile(r"^x-cache hits=(\d+) misses=(\d+)$", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def drive(
    wrk: str, base: str, token: str, scenario: Scenario, seconds: int, connections: int
) -> Run:
    cmd = [
        wrk,
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-H",
        f"Authorization: Token {token}",
        "-H",
        "Accept: application/json",
    ]
    for name, value in scenario.headers.items():
        cmd += ["-H", f"{name}: {value}"]
    # One script a run: the scenario's own, if any, then the percentiles' done() (and the
    # count of cache outcomes, which wraps the others' setup() and done()).
    script = (LUA / scenario.script).read_text() + "\n" if scenario.script else ""
    script += (LUA / "percentiles.lua").read_text()
    if scenario.measures_hit_rate:
        script += "\n" + (LUA / "cache_outcomes.lua").read_text()
    with tempfile.NamedTemporaryFile("w", prefix="wrk-", suffix=".lua") as file:
        file.write(script)
        file.flush()
        cmd += ["-s", file.name, base + scenario.path, "--", *scenario.script_args]
        output = subprocess.run(
            cmd, check=True, capture_output=True, text=True, timeout=seconds + 60
        )
    text = output.stdout
    percentiles = _PERCENTILES.search(text)
    if percentiles is None:
        raise SystemExit(f"wrk gave no percentiles for {scenario.name}:\n{text}{output.stderr}")
    p50, p95, p99 = (int(value) / 1000 for value in percentiles.groups())
    errors = int(m.group(1)) if (m := _NON2XX.search(text)) else 0
    if m := _SOCKET.search(text):
        errors += sum(int(x) for x in m.groups())
    outcomes = _OUTCOMES.search(text)
    return Run(
        rps=float(_RPS.search(text).group(1)),
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        errors=errors,
        requests=int(m.group(1)) if (m := _REQUESTS.search(text)) else 0,
        client_hits=int(outcomes.group(1)) if outcomes else None,
        client_misses=int(outcomes.group(2)) if outcomes else None,
    )


def probe(env: dict[str, str], scenario_list: list[Scenario]) -> dict[str, dict[str, int]]:
    """SQL queries and cache calls of one request of each scenario, measured in-process."""
    payload = json.dumps([asdict(s) for s in scenario_list if s.probed])
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


#: How long the cache's response counters must stay unchanged before a reading of them is
#: final. With Redis, each worker publishes its counters at its first cache operation a second
#: or more after it last did (``flush_interval``); with no request coming, its sweep makes one
#: every ``CACHE_SWEEP_INTERVAL`` (0.5 s). So within 1.5 s of a run's last request, every
#: worker (not only the one that answers the statistics) has published its part.
SETTLE_SECONDS = 2.0


def _stats_reading(base: str, token: str) -> tuple[str, int, int] | None:
    status, _, body = fetch(base, "/api/performance/cache-stats/", token)
    if status != 200:
        return None
    stats = json.loads(body)
    responses = stats["responses"]
    return stats["scope"], responses["hits"], responses["misses"]


def response_counts(base: str, token: str) -> tuple[int, int] | None:
    """Responses answered from the cache and responses computed so far, by every worker: the
    terms of the cache's headline hit rate (responses, not lookups: token lookups, throttles
    and bookkeeping are apart), read once final; ``None`` when the statistics do not answer."""
    reading = _stats_reading(base, token)
    if reading is None:
        return None
    if reading[0] == "fleet":
        still_since = time.monotonic()
        deadline = still_since + 5 * SETTLE_SECONDS
        while time.monotonic() - still_since < SETTLE_SECONDS and time.monotonic() < deadline:
            time.sleep(0.25)
            again = _stats_reading(base, token)
            if again != reading:
                reading, still_since = again, time.monotonic()
        if reading is None:
            return None
    # Otherwise the counters are the answering process's own, and the embedded shape has one.
    return reading[1], reading[2]


# The run -----------------------------------------------------------------------------------


def bench_shape(
    shape: str, rows: int, args: argparse.Namespace, wrk: str, work: Path, only: set[str] | None
) -> list[Result]:
    env = prepare(shape, rows, work, fresh=args.fresh)
    wanted = [name for name in SCENARIO_NAMES if only is None or name in only]
    clients = prepare_clients(env) if "realistic" in wanted else None
    shared = [name for name in wanted if name not in OWN_CONNECTIONS]
    phases = [(shared, args.connections)] if shared else []
    phases += [([name], OWN_CONNECTIONS[name]) for name in wanted if name in OWN_CONNECTIONS]
    results: list[Result] = []
    for names, connections in phases:
        results += bench_server(shape, rows, env, names, connections, clients, args, wrk, work)
    return results


def bench_server(
    shape: str,
    rows: int,
    env: dict[str, str],
    names: list[str],
    connections: int,
    clients: Clients | None,
    args: argparse.Namespace,
    wrk: str,
    work: Path,
) -> list[Result]:
    """The scenarios ``names`` against one server sized for ``connections``."""
    token = env["BENCH_TOKEN"]
    plan_file = work / f"realistic-{shape}-{rows}.plan"
    with server(env, shape, connections) as (base, master):
        chosen = scenarios(base, token, rows, names, clients, plan_file)
        counts = probe(env, chosen)
        results = {
            s.name: Result(shape, s.name, s.title, rows, **counts.get(s.name, {})) for s in chosen
        }
        # Warm every scenario once, then interleave rounds so noise hits them all alike. A
        # scenario with a server of its own starts from a process that served nothing (an empty
        # locmem) and reads many keys: it warms at full load, as long as a round.
        for s in chosen:
            if s.connections:
                drive(wrk, base, token, s, args.duration, s.connections)
            else:
                drive(wrk, base, token, s, 1, 2)
        rss_before = worker_rss(master)
        for _ in range(args.rounds):
            for s in chosen:
                before = response_counts(base, token) if s.measures_hit_rate else None
                measured = drive(wrk, base, token, s, args.duration, s.connections or connections)
                result = results[s.name]
                result.rps.append(measured.rps)
                result.p50_ms.append(measured.p50_ms)
                result.p95_ms.append(measured.p95_ms)
                result.p99_ms.append(measured.p99_ms)
                result.errors += measured.errors
                result.requests += measured.requests
                after = response_counts(base, token) if before is not None else None
                if before is not None and after is not None:
                    result.hits = (result.hits or 0) + after[0] - before[0]
                    result.misses = (result.misses or 0) + after[1] - before[1]
                if measured.client_hits is not None and measured.client_misses is not None:
                    result.client_hits = (result.client_hits or 0) + measured.client_hits
                    result.client_misses = (result.client_misses or 0) + measured.client_misses
        rss_after = worker_rss(master)
    out = list(results.values())
    for result in out:
        result.rss_mb = (round(rss_before, 1), round(rss_after, 1))
        if result.hits is not None and result.misses is not None and result.hits + result.misses:
            result.hit_rate = round(result.hits / (result.hits + result.misses), 3)
    return out


def ratio(results: dict[str, Result], a: str, b: str) -> float | None:
    if a in results and b in results and results[b].median_rps:
        return results[a].median_rps / results[b].median_rps
    return None


@dataclass(frozen=True)
class Target:
    """A row of the targets table. ``kind``: ``ratio`` (median req/s of ``a`` over ``b``'s, at
    least ``wanted``), ``hit_rate`` (``a``'s, at least ``wanted``) or ``p99`` (``a``'s median
    p99 in ms, under ``wanted``). No ``wanted`` for the shape: measured and reported only."""

    title: str
    kind: str
    a: str
    b: str | None = None
    wanted: dict[str, float] = field(default_factory=dict)


# The targets of issue 16, per shape.
TARGETS = [
    Target(
        "list warm hit / ceiling",
        "ratio",
        "list_hit",
        "ceiling",
        {"embedded": 0.95, "production": 0.80},
    ),
    Target(
        "304 revalidation / ceiling",
        "ratio",
        "list_304",
        "ceiling",
        {"embedded": 0.95, "production": 0.80},
    ),
    Target(
        "list warm hit / one round trip",
        "ratio",
        "list_hit",
        "one_round_trip",
        {"embedded": 0.95, "production": 0.95},
    ),
    Target(
        "list miss / plain DRF peer",
        "ratio",
        "list_miss",
        "peer_drf",
        {"embedded": 3.0, "production": 3.0},
    ),
    Target(
        "list warm hit / cache_page peer",
        "ratio",
        "list_hit",
        "peer_cache_page",
        {"embedded": 1.5, "production": 2.0},
    ),
    Target("mixed / ceiling", "ratio", "mixed", "ceiling", {"embedded": 0.5, "production": 0.25}),
    Target("mixed hit rate", "hit_rate", "mixed", None, {"embedded": 0.90, "production": 0.90}),
    Target("realistic p99 (ms)", "p99", "realistic", None, {"embedded": 200, "production": 200}),
    Target("realistic hit rate", "hit_rate", "realistic"),
]


@dataclass
class TargetRow:
    shape: str
    title: str
    measured: float
    shown: str
    wanted: str
    #: ``None``: reported, no target.
    met: bool | None


def target_rows(
    shape: str, results: dict[str, Result], scaling: dict[int, float]
) -> list[TargetRow]:
    """The targets table of one shape: a row for each target whose scenarios ran."""
    rows = []
    for target in TARGETS:
        wanted = target.wanted.get(shape)
        if target.kind == "ratio":
            value = ratio(results, target.a, target.b or "")
            if value is None:
                continue
            shown, wanted_shown = f"{value:.2f}", f"≥ {wanted}"
        elif target.kind == "hit_rate":
            value = results[target.a].hit_rate if target.a in results else None
            if value is None:
                continue
            shown, wanted_shown = f"{value:.0%}", f"≥ {wanted:.0%}" if wanted else ""
        else:
            if target.a not in results or not results[target.a].p99_ms:
                continue
            value = statistics.median(results[target.a].p99_ms)
            shown, wanted_shown = f"{value:.0f}", f"< {wanted:g}" if wanted else ""
        if wanted is None:
            met = None
        elif target.kind == "p99":
            met = value < wanted
        else:
            met = value >= wanted
        rows.append(TargetRow(shape, target.title, value, shown, wanted_shown or "-", met))
    if "list_hit" in results and results["list_hit"].queries is not None:
        q = results["list_hit"].queries
        rows.append(TargetRow(shape, "SQL on a warm hit, auth included", q, str(q), "0", q == 0))
    if len(scaling) > 1:
        low, high = min(scaling), max(scaling)
        value = scaling[high] / scaling[low] if scaling[low] else 0
        rows.append(
            TargetRow(
                shape,
                f"list miss req/s at {high:,} rows / at {low:,} rows",
                value,
                f"{value:.2f}",
                "≥ 0.7",
                value >= 0.7,
            )
        )
    return rows


def _verdict(met: bool | None) -> str:
    return "reported" if met is None else "met" if met else "MISSED"


def report(all_results: list[Result], scaling: dict[str, dict[int, float]]) -> str:
    lines = []
    for shape in dict.fromkeys(r.shape for r in all_results):
        results = {r.scenario: r for r in all_results if r.shape == shape}
        ceiling = results.get("ceiling")
        rows = next(iter(results.values())).rows
        lines += [
            f"### {shape} ({rows:,} workstations)",
            "",
            "| scenario | req/s (median) | p50 ms | p95 ms | p99 ms | / ceiling | SQL/req "
            "| cache calls/req | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
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
                f"{statistics.median(r.p95_ms):.2f} | {statistics.median(r.p99_ms):.2f} | {vs} | "
                f"{'-' if r.queries is None else r.queries} | "
                f"{'-' if r.cache_calls is None else r.cache_calls} | {r.errors} |"
            )
        lines += ["", "| target | measured | wanted | |", "|---|---:|---:|---|"]
        by_rows = scaling.get(shape, {})
        for row in target_rows(shape, results, by_rows):
            lines.append(f"| {row.title} | {row.shown} | {row.wanted} | {_verdict(row.met)} |")
        lines += _memory_lines(list(results.values()))
        lines.append("")
        if len(by_rows) > 1:
            lines += ["| rows | list miss req/s |", "|---:|---:|"]
            lines += [f"| {n:,} | {rps:,.0f} |" for n, rps in sorted(by_rows.items())]
            lines.append("")
    return "\n".join(lines)


def _memory_lines(results: list[Result]) -> list[str]:
    """The workers' memory, per server: the shared one, then each scenario's own."""
    lines = []
    shared = [r for r in results if r.scenario not in OWN_CONNECTIONS]
    for group in [shared] + [[r] for r in results if r.scenario in OWN_CONNECTIONS]:
        if not group or not group[0].rss_mb:
            continue
        memory = group[0].rss_mb
        requests = sum(r.requests for r in group)
        whose = "" if group is shared else f" of the {group[0].scenario} scenario's server"
        lines.append(
            f"\nWorker memory{whose} (RSS, all workers): {memory[0]:.0f} MB after warm-up, "
            f"{memory[1]:.0f} MB after about {requests:,.0f} requests."
        )
    return lines


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
    parser.add_argument(
        "--scenarios", default="", help=f"comma-separated subset of: {', '.join(SCENARIO_NAMES)}"
    )
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
    unknown = sorted((only or set()) - set(SCENARIO_NAMES))
    if unknown:
        parser.error(
            f"unknown scenarios: {', '.join(unknown)} (there are {', '.join(SCENARIO_NAMES)})"
        )
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
                "targets": [
                    asdict(row)
                    for shape in dict.fromkeys(r.shape for r in all_results)
                    for row in target_rows(
                        shape,
                        {r.scenario: r for r in all_results if r.shape == shape},
                        scaling.get(shape, {}),
                    )
                ],
                "table": table,
            },
            indent=2,
        )
    )
    print(f"JSON written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
