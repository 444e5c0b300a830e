"""Instructions one request of a warm scenario costs, counted by valgrind: a figure that does not
move with the load of a shared machine, unlike throughput.

    .venv/bin/python -m benchmarks.instructions                       # embedded: SQLite + locmem
    .venv/bin/python -m benchmarks.instructions --redis redis://127.0.0.1:6379/13
    .venv/bin/python -m benchmarks.instructions --scenarios list_miss,peer_drf    # cold pages

Each scenario runs in a process of its own under ``valgrind --tool=cachegrind`` (Debian's
valgrind package), through the WSGI application gunicorn serves, in-process (no server, no
socket but Redis's), on a throwaway SQLite database with demo data. A scenario is run twice,
with 50 and with 350 measured requests after the same warm-up, and the difference is divided by
300: start-up costs the same in both and drops out. Statistics that a backend flushes by the
clock are not flushed during the count (valgrind runs the code some fifty times slower). The
ratio ceiling / scenario is the share of a warm hit's work that is the ceiling's (the bench's
``/ ceiling`` column, without the server and the network); one round trip / scenario, the same
for the ceiling plus the one read a warm hit makes (``one_round_trip``).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("ceiling", "one_round_trip", "list_hit", "detail_hit", "list_304")
#: Not warm hits: a list page under a key nobody asked for (as the bench's ``list_miss``: a new
#: media type parameter each time), and the textbook DRF list it is compared with.
COLD = ("list_miss", "peer_drf")
LIST = "/api/workstations/?page_size=50"
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _child(scenario: str, requests: int) -> None:
    """In the measured process: set up, warm the scenario, then serve it ``requests`` times."""
    import django

    django.setup()
    from performance import cache as perf_cache

    work = Path(os.environ["VAR_DIR"])
    if scenario == "prepare":
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from rest_framework.authtoken.models import Token

        call_command("migrate", verbosity=0)
        call_command("seed_demo", count=120, verbosity=0, stdout=io.StringIO())
        user = get_user_model().objects.create_user("counter", password="count-the-calls-1")
        (work / "token").write_text(Token.objects.create(user=user).key)
        return
    backend = type(perf_cache.backend())
    if hasattr(backend, "flush_interval"):
        backend.flush_interval = 1e9  # by the clock: not while valgrind slows the clock down
    token = (work / "token").read_text()
    from project.wsgi import application as app  # what gunicorn serves (replays included)

    def call(path: str, **headers: str) -> tuple[str, dict[str, str], bytes]:
        route, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": route,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1:8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "HTTP_AUTHORIZATION": f"Token {token}",
            "HTTP_ACCEPT": "application/json",
            **headers,
        }
        answer: dict = {}

        def start_response(status: str, response_headers: list, exc_info: object = None) -> None:
            answer["status"], answer["headers"] = status, dict(response_headers)

        body = b"".join(app(environ, start_response))
        return answer["status"], answer["headers"], body

    _, headers, body = call(LIST)
    paths = {
        "ceiling": (f"/bench/ceiling/?bytes={len(body)}", {}),
        "one_round_trip": (f"/bench/one-round-trip/?bytes={len(body)}", {}),
        "list_hit": (LIST, {}),
        "detail_hit": ("/api/workstations/1/", {}),
        "list_304": (LIST, {"HTTP_IF_NONE_MATCH": call(LIST)[1]["ETag"]}),
    }
    if scenario in COLD:
        path = LIST if scenario == "list_miss" else "/bench/peer-drf/?page_size=50"
        wanted = "MISS" if scenario == "list_miss" else None
        run = os.getpid()  # (a cache shared between runs must not have seen these keys)
        for n in range(20 + requests):
            status, headers, _ = call(path, HTTP_ACCEPT=f"application/json; cold={run}-{n}")
            if not status.startswith("200") or headers.get("X-Cache") != wanted:
                raise SystemExit(f"{scenario}: {status}, X-Cache {headers.get('X-Cache')}")
        return
    path, extra = paths[scenario]
    for _ in range(20):
        status, headers, _ = call(path, **extra)
    if not status.startswith(("200", "304")) or (
        scenario not in ("ceiling", "one_round_trip") and headers.get("X-Cache") != "HIT"
    ):
        raise SystemExit(f"{scenario}: {status}, X-Cache {headers.get('X-Cache')}: not a warm hit")
    for _ in range(requests):
        call(path, **extra)


def _instructions(scenario: str, requests: int, env: dict[str, str]) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--child",
            scenario,
            str(requests),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(_REFS.search(done.stderr).group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="a Redis URL: the production shape's cache")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    work = tempfile.mkdtemp(prefix="wsinv-instructions-")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        VAR_DIR=work,
        PYTHONHASHSEED="0",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    if args.redis:
        env.update(REDIS_URL=args.redis, CACHE_KEY_PREFIX=f"instructions-{os.getpid()}")
    subprocess.run(
        [sys.executable, "-m", "benchmarks.instructions", "--child", "prepare", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    counts = {}
    for scenario in args.scenarios.split(","):
        few, many = (_instructions(scenario, n, env) for n in (50, 350))
        counts[scenario] = (many - few) // 300
    ceiling, one = counts.get("ceiling"), counts.get("one_round_trip")
    print("| scenario | instructions per request | ceiling / this | one round trip / this |")
    print("|---|---:|---:|---:|")
    for scenario, count in counts.items():
        ratios = [f"{peer / count:.3f}" if peer else "-" for peer in (ceiling, one)]
        print(f"| {scenario} | {count:,} | {' | '.join(ratios)} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
