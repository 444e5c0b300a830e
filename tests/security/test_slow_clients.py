"""Slow clients: 64 connections trickling their requests must not stop the service.

Real gunicorn servers in both shapes, as they start out of the box (embedded: one process;
production: Redis and the default worker count), real sockets over loopback. Sixty-four
connections send a request a byte every half second — its head (slowloris), its body, or the
head of a second request on a kept-alive connection — while a normal client asks for a page
ten times. Every one of those requests must be answered, typically within a second (the
median); gthread's threads, held by the trickles, answered none.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.performance.servers import (
    GUNICORN,
    REDIS_SERVER,
    Gunicorn,
    RedisServer,
    copy_database,
    migrated_site,
    probe,
    site_env,
)
from tests.performance.support import unique

START_TIMEOUT = 60.0
TRICKLERS = 64
PROBES = 10
#: A probe that takes longer than this was not answered: the trickles held every thread.
PROBE_TIMEOUT = 5.0
#: What the issue asks of a normal request while the trickles go on.
ANSWERED_WITHIN = 1.0
DRIP_INTERVAL = 0.5
#: The trickles stop by themselves after this long, whatever the test does.
TRICKLE_LIMIT = 90.0

#: What each kind of trickle sends at once, then a byte at a time (``drip``).
SHAPES = {
    "head": (b"GET /api/workstations/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", b"a"),
    "body": (
        b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
        b" ",
    ),
    "keep-alive": (
        b"GET /health/?format=json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"GET /api/workstations/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        b"a",
    ),
}

_figures: dict[str, list[float]] = {}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not GUNICORN.exists():
        require_service("gunicorn", f"{GUNICORN} is missing")
    return migrated_site(tmp_path_factory.mktemp("slow-site"), 5)


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    if _figures:
        print(f"\n\nA normal request while {TRICKLERS} connections trickle (seconds):")
        for name, seconds in _figures.items():
            print(f"  {name:<24} median {statistics.median(seconds):.3f}  max {max(seconds):.3f}")


@pytest.fixture(params=["embedded", "production"])
def server(request, site: dict[str, Any], tmp_path: Path) -> Iterator[Gunicorn]:
    """The shape as it starts out of the box: its default worker count and threads."""
    extra = {"REQUEST_LOG_LEVEL": "WARNING"}
    redis = None
    if request.param == "production":
        if not REDIS_SERVER:
            require_service("redis-server", "the binary is not on PATH")
        redis = RedisServer(tmp_path / "redis")
        extra.update(REDIS_URL=redis.url, CACHE_KEY_PREFIX=unique("wsinv-slow"))
    database = copy_database(site["database"], tmp_path / "inventory.sqlite3")
    env = site_env(database, tmp_path / "var", **extra)
    env.pop("GUNICORN_THREADS", None)
    server = Gunicorn(request.param, env, tmp_path, workers=None)
    try:
        server.wait_until_ready(time.monotonic() + START_TIMEOUT)
        yield server
    finally:
        server.stop()
        if redis is not None:
            redis.stop()


class Trickles:
    """``count`` connections sending ``start`` at once, then ``drip`` every half second, until
    stopped (or ``TRICKLE_LIMIT``). Bounded in count and time; loopback only."""

    def __init__(self, port: int, count: int, start: bytes, drip: bytes) -> None:
        self.sockets = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(start)
            self.sockets.append(sock)
        self.drip = drip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + TRICKLE_LIMIT
        while not self._stop.wait(DRIP_INTERVAL) and time.monotonic() < deadline:
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # the server gave up on it: fine
                    sock.send(self.drip)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            sock.close()


@pytest.mark.parametrize("shape", list(SHAPES))
def test_trickling_connections_do_not_stop_the_service(server, site, shape):
    start, drip = SHAPES[shape]
    trickles = Trickles(server.port, TRICKLERS, start, drip)
    try:
        time.sleep(2 * DRIP_INTERVAL)  # every trickle has reached the server and dripped
        answers = [probe(server.port, site["token"], PROBE_TIMEOUT) for _ in range(PROBES)]
    finally:
        trickles.stop()
    seconds = [elapsed for _, elapsed in answers]
    _figures[f"{server.name}, {shape}"] = seconds
    assert [status for status, _ in answers] == [200] * PROBES, seconds
    assert statistics.median(seconds) < ANSWERED_WITHIN, seconds


# What the worker still does for clients that are not slow ----------------------------------------


@pytest.fixture
def embedded(site: dict[str, Any], tmp_path: Path) -> Iterator[Gunicorn]:
    database = copy_database(site["database"], tmp_path / "inventory.sqlite3")
    env = site_env(database, tmp_path / "var", GUNICORN_READ_TIMEOUT="2")
    server = Gunicorn("embedded-read-timeout", env, tmp_path)
    try:
        server.wait_until_ready(time.monotonic() + START_TIMEOUT)
        yield server
    finally:
        server.stop()


def exchange(port: int, parts: list[bytes], pause: float = 0.0) -> bytes:
    """Send ``parts`` with ``pause`` between them; everything the server answers until it
    closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        for n, part in enumerate(parts):
            if n and pause:
                time.sleep(pause)
            sock.sendall(part)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_request_not_sent_in_time_is_answered_408(embedded):
    answer = exchange(embedded.port, [b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a"])
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_head_too_large_is_answered_431(embedded):
    head = b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Big: " + b"a" * 70_000
    assert exchange(embedded.port, [head]).startswith(b"HTTP/1.1 431 ")


def test_a_request_in_pieces_pipelined_requests_and_expect_continue_are_served(embedded, site):
    pieces = [b"GET /health/?format=json HT", b"TP/1.1\r\nHost: 127.0", b".0.1\r\n", b"\r\n"]
    pieces[-1] += (
        b"GET /health/?format=json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    answer = exchange(embedded.port, pieces, pause=0.2)
    assert answer.count(b"HTTP/1.1 200 OK") == 2, answer[:300]

    body = b'{"username": "root", "password": "wrong"}'
    head = (
        b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", embedded.port), timeout=15) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert rest.startswith(b"HTTP/1.1 400 "), rest[:200]  # a wrong password, read whole
    assert b"100 Continue" not in rest
