"""Run django-redis's own test suite against its backend and ours, and compare the outcomes.

For each configuration of ``configs.RUN``, the suite runs twice, each in a subprocess — on
``django_redis.cache.RedisCache`` and on ``performance.cache.redis.InstrumentedRedisCache`` —
with the same settings otherwise. A test whose outcome differs between the two is a difference;
every difference must be listed, with its reason, in ``expected.DIFFERENCES``. The run fails on
a difference not listed (a new incompatibility) and on one listed that did not occur (fixed, or
the list is stale).

The suite empties its database with ``FLUSHDB`` (the stock backend's ``clear()``), so each
backend's run has a private ``redis-server`` of its own, started here on a free port, never the
shared one: two checkouts running their tests at once on one machine would otherwise flush each
other's keys. The two runs of a configuration go side by side (the suite mostly sleeps, waiting
for keys to expire). ``doesnotexist`` points at a port held bound (not listening) for the whole
run, so no other process can start a server there meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.performance.servers import REDIS_SERVER, RedisServer

from . import expected, source
from .configs import BACKENDS, DB, NOT_RUN, RUN

ROOT = source.ROOT
#: Seconds one run of the suite (one configuration, one backend) may take.
RUN_TIMEOUT = 600

Outcomes = dict[str, dict[str, str]]


class SuiteError(Exception):
    """A run of the suite that did not run its tests (it could not collect them, or crashed)."""


@contextmanager
def dead_port() -> Iterator[int]:
    """A port nothing listens on, held bound until the run ends (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def run_suite(
    root: Path, config: str, backend: str, url: str, dead_url: str, workdir: Path
) -> Outcomes:
    """One run of the suite in a subprocess; the outcome of each test."""
    report = workdir / f"{config}-{backend}.json"
    # Nothing of the developer's or CI's service settings: the suite's settings say it all.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("REDIS_")
        and key not in {"DATABASE_URL", "DJANGO_ENV", "PYTEST_ADDOPTS"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.django_redis_suite.settings",
        DJANGO_REDIS_SUITE_CONFIG=config,
        DJANGO_REDIS_SUITE_BACKEND=backend,
        DJANGO_REDIS_SUITE_URL=url,
        DJANGO_REDIS_SUITE_DEAD_URL=dead_url,
        DJANGO_REDIS_SUITE_REPORT=str(report),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        VAR_DIR=str(workdir / "var"),
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(root / "pytest.ini"),
        "--rootdir",
        str(root),
        "-p",
        "no:django",
        "-p",
        "no:cacheprovider",
        "-p",
        "tests.django_redis_suite.plugin",
        # A temporary directory of its own: pytest's default is shared by every run on the
        # machine, and its clean-up deletes the directories of runs still going.
        "--basetemp",
        str(workdir / f"tmp-{config}-{backend}"),
        "-q",
        "--no-header",
        "-rN",
        "--tb=short",
        str(root / source.PACKAGE),
    ]
    log = workdir / f"{config}-{backend}.log"
    with log.open("wb") as out:
        try:
            done = subprocess.run(
                command,
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise SuiteError(f"the suite ({config}, {backend}) ran over {RUN_TIMEOUT} s") from exc
    # pytest's exit status: 0 all passed, 1 some failed; anything else (collection errors,
    # nothing collected, an internal error) means the run did not happen as it should.
    if done.returncode not in (0, 1) or not report.is_file():
        tail = log.read_text(errors="replace")[-3000:]
        raise SuiteError(f"the suite ({config}, {backend}) exited {done.returncode}:\n{tail}")
    return json.loads(report.read_text())


def differences(stock: Outcomes, ours: Outcomes) -> dict[str, tuple[str, str, str]]:
    """Tests whose outcome differs: name → (stock's outcome, ours, what ours said)."""
    found = {}
    for name in sorted(set(stock) | set(ours)):
        a = stock.get(name, {"outcome": "absent", "detail": ""})
        b = ours.get(name, {"outcome": "absent", "detail": ""})
        if a["outcome"] != b["outcome"]:
            found[name] = (a["outcome"], b["outcome"], b["detail"] or a["detail"])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", choices=sorted(RUN), help="only these")
    parser.add_argument("--keep", action="store_true", help="keep the logs of each run")
    args = parser.parse_args(argv)
    try:
        if not REDIS_SERVER:
            raise source.SuiteUnavailable("redis-server is not on PATH")
        root = source.ensure_tests()
    except source.SuiteUnavailable as exc:
        message = f"django-redis's test suite unavailable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            print(f"FAIL: {message} (CI=true: it must run)", file=sys.stderr)
            return 1
        print(f"!!! SKIPPED — {message}", file=sys.stderr)
        return 0
    configs = args.config or list(RUN)
    # Upstream's pytest settings that matter here (its own add coverage and xdist).
    (root / "pytest.ini").write_text("[pytest]\nxfail_strict = true\n")
    print(f"   django-redis {source.installed_version()}, its tests from {root}")
    for name, reason in NOT_RUN.items():
        print(f"   not run: {name}: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix="django-redis-suite-"))
    found: dict[str, tuple[str, str, str]] = {}
    try:
        with ExitStack() as stack, ThreadPoolExecutor(len(BACKENDS)) as pool:
            servers = {}
            for backend in BACKENDS:
                servers[backend] = RedisServer(workdir / f"redis-{backend}")
                stack.callback(servers[backend].stop)
            port = stack.enter_context(dead_port())
            dead_url = f"redis://127.0.0.1:{port}?db={DB}"
            for config in configs:
                start = time.monotonic()
                for server in servers.values():
                    with server.client() as admin:
                        admin.flushall()  # a private server: each configuration starts empty
                futures = {
                    backend: pool.submit(
                        run_suite,
                        root,
                        config,
                        backend,
                        f"redis://127.0.0.1:{server.port}?db={DB}",
                        dead_url,
                        workdir,
                    )
                    for backend, server in servers.items()
                }
                runs = {backend: future.result() for backend, future in futures.items()}
                for backend, outcomes in runs.items():
                    print(
                        f"   {config:<15} {backend:<5} "
                        + ", ".join(f"{n} {k}" for k, n in sorted(tally(outcomes).items()))
                    )
                print(f"   {config:<15} {time.monotonic() - start:5.1f} s")
                found.update(differences(runs["stock"], runs["ours"]))
    except SuiteError as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"   logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return report(found, configs)


def tally(outcomes: Outcomes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome["outcome"]] = counts.get(outcome["outcome"], 0) + 1
    return counts


def report(found: dict[str, tuple[str, str, str]], configs: Sequence[str]) -> int:
    """Print the differences against the expected ones; 0 when they are exactly those."""
    listed = expected.expected_for(configs)
    new = {name: diff for name, diff in found.items() if name not in listed}
    gone = sorted(name for name in listed if name not in found)
    print(f"== {len(found)} test run(s) differ between django-redis's backend and ours")
    grouped: dict[tuple[str, str, str], list[str]] = {}
    reasons: dict[str, str] = {}
    for name, (stock, ours, _) in found.items():
        if name in listed:
            test, _, config = name.partition("[")
            grouped.setdefault((test, stock, ours), []).append(config.rstrip("]"))
            reasons[test] = listed[name]
    for (test, stock, ours), where in grouped.items():
        shown = f" [{', '.join(where)}]" if any(where) else ""
        print(f"   expected: {test}{shown}: stock {stock}, ours {ours}")
        print(f"      why: {reasons[test]}")
    for name, (stock, ours, detail) in new.items():
        print(f"   NOT EXPECTED: {name}: stock {stock}, ours {ours}")
        print(f"      {detail}")
    if new:
        print(f"FAIL: {len(new)} difference(s) not in tests/django_redis_suite/expected.py")
    if gone:
        print(f"FAIL: {len(gone)} expected difference(s) did not occur (fixed? update the list):")
        for name in gone:
            print(f"   {name}")
    return 1 if new or gone else 0
