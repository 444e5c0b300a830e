"""The serving threads of gunicorn's worker (``project.workers.ServingThreadWorker``).

A real gunicorn in the embedded shape as it starts out of the box (one process, four threads),
real sockets over loopback. Each thread waits for requests itself and serves the ones it reads:
the worker's own thread no longer wakes to hand every request to a pool thread and to take the
connection back (counted in ``/proc``). What the worker must still do: a slow request holds one
thread, not the others; a client that does not close after its answer holds no thread at all;
idle connections are closed after ``keepalive`` seconds; at ``worker_connections`` it stops
accepting, and goes on when one closes.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.performance.servers import (
    GUNICORN,
    Gunicorn,
    copy_database,
    migrated_site,
    probe,
    site_env,
)

START_TIMEOUT = 60.0
#: A probe not answered within this was held up.
PROBE_TIMEOUT = 5.0
ANSWERED_WITHIN = 1.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not GUNICORN.exists():
        require_service("gunicorn", f"{GUNICORN} is missing")
    return migrated_site(tmp_path_factory.mktemp("serving-site"), 5)


def start(site: dict[str, Any], tmp_path: Path, **extra: str) -> Gunicorn:
    database = copy_database(site["database"], tmp_path / "inventory.sqlite3")
    env = site_env(database, tmp_path / "var", REQUEST_LOG_LEVEL="WARNING", **extra)
    env.pop("GUNICORN_THREADS", None)
    server = Gunicorn("serving", env, tmp_path)
    try:
        server.wait_until_ready(time.monotonic() + START_TIMEOUT)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def server(site: dict[str, Any], tmp_path: Path) -> Iterator[Gunicorn]:
    server = start(site, tmp_path)
    yield server
    server.stop()


def request_bytes(token: str) -> bytes:
    return (
        b"GET /api/workstations/?page_size=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Accept: application/json\r\nAuthorization: Token %s\r\n\r\n" % token.encode()
    )


def probes(port: int, token: str, count: int = 5) -> list[tuple[int | None, float]]:
    return [probe(port, token, PROBE_TIMEOUT) for _ in range(count)]


def assert_answered_promptly(answers: list[tuple[int | None, float]]) -> None:
    seconds = [elapsed for _, elapsed in answers]
    assert [status for status, _ in answers] == [200] * len(answers), seconds
    assert statistics.median(seconds) < ANSWERED_WITHIN, seconds


def worker_threads_switches(master: int) -> dict[str, int]:
    """Voluntary context switches so far of the master's worker: of its own thread (``main``,
    whose id is the process's) and of all its threads (``all``)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    counts = {"main": 0, "all": 0}
    for status in Path(f"/proc/{children[0]}/task").glob("*/status"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            for line in status.read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    switches = int(line.split()[1])
                    counts["all"] += switches
                    if status.parent.name == children[0]:
                        counts["main"] += switches
    return counts


def load(port: int, request: bytes, connections: int, requests: int) -> None:
    """``requests`` requests over ``connections`` kept-alive connections, each sending its next
    request as soon as it has its answer (one thread: the client stays out of the way)."""
    selector = selectors.DefaultSelector()
    sockets = []
    try:
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            sockets.append(sock)
            selector.register(sock, selectors.EVENT_READ, bytearray())
        sent, answered = connections, 0
        while answered < requests:
            ready = selector.select(10)
            assert ready, f"no answer in 10 s after {answered} of {requests}"
            for key, _ in ready:
                buffer: bytearray = key.data
                chunk = key.fileobj.recv(65536)
                assert chunk, "the server closed a kept-alive connection"
                buffer += chunk
                while (end := buffer.find(b"\r\n\r\n")) >= 0:
                    head = bytes(buffer[:end]).lower()
                    assert head.startswith(b"http/1.1 200 "), head
                    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(buffer) < end + 4 + length:
                        break
                    del buffer[: end + 4 + length]
                    answered += 1
                    if sent < requests:
                        key.fileobj.sendall(request)
                        sent += 1
    finally:
        for sock in sockets:
            sock.close()


def test_requests_are_not_handed_over_by_the_worker_s_own_thread(server, site):
    """Sixteen busy connections, 2,000 requests: the thread that reads a request serves it, and
    the worker's own thread only keeps the heartbeat and the sweeps (twice a second). gthread's
    loop thread woke for every request, to hand it to a pool thread and to take the connection
    back (with eight to thirty-two busy connections, 6.5 to 8.7 switches a request in all on
    the ceiling view; on the API page below, 16.4)."""
    load(server.port, request_bytes(site["token"]), 16, 300)  # warm: the pages are cached
    before = worker_threads_switches(server.process.pid)
    load(server.port, request_bytes(site["token"]), 16, 2000)
    after = worker_threads_switches(server.process.pid)
    # Its waking twice a second, and waiting for the interpreter's lock when it does: a few
    # dozen switches in all (gthread's loop thread: 7,566).
    assert after["main"] - before["main"] < 200, after
    # And the serving threads take turns (one process on two cores: ``performance.turns``):
    # the one that serves makes its system calls without another taking the interpreter's
    # lock from it, and none is made to switch the socket's mode back and forth, nor for a
    # request id, and an answer's head goes out with its body. All threads, a request: 0.19 to
    # 0.25 (5.0 to 5.3 without turns; 6.1 with a send for the head; 11.2 with the mode
    # switches and uuid4; gthread 16.4).
    assert (after["all"] - before["all"]) / 2000 < 1, after


def read_answer(sock: socket.socket, buffer: bytearray, *, body: bool = True) -> bytes:
    """One answer from a kept-alive connection: its head, and its body unless it has none."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the head: {bytes(buffer)[:200]}"
        buffer += chunk
    head = bytes(buffer[:end])
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]) if body else 0
    while len(buffer) < end + 4 + length:
        chunk = sock.recv(65536)
        assert chunk, "closed before the end of the body"
        buffer += chunk
    answer = bytes(buffer[: end + 4 + length])
    del buffer[: end + 4 + length]
    return answer


def test_answers_with_and_without_a_body_follow_each_other_on_one_connection(server, site):
    """A head is sent with the first bytes of its body, in one system call; an answer that has
    no body (a 304, a HEAD) must still go out as soon as the application is done with it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        buffer = bytearray()
        sock.sendall(request_bytes(site["token"]))
        first = read_answer(sock, buffer)
        assert first.startswith(b"HTTP/1.1 200 "), first[:200]
        etag = first.split(b"\r\nETag: ")[1].split(b"\r\n")[0]
        conditional = request_bytes(site["token"]).replace(
            b"\r\n\r\n", b"\r\nIf-None-Match: %s\r\n\r\n" % etag
        )
        sock.sendall(conditional)
        assert read_answer(sock, buffer, body=False).startswith(b"HTTP/1.1 304 ")
        sock.sendall(request_bytes(site["token"]).replace(b"GET ", b"HEAD ", 1))
        head_only = read_answer(sock, buffer, body=False)
        assert head_only.startswith(b"HTTP/1.1 200 "), head_only[:200]
        sock.sendall(request_bytes(site["token"]))
        last = read_answer(sock, buffer)
        assert last.startswith(b"HTTP/1.1 200 "), last[:200]
        assert last.partition(b"\r\n\r\n")[2] == first.partition(b"\r\n\r\n")[2]
        assert not buffer, bytes(buffer)[:200]


def test_a_client_that_does_not_close_after_its_answer_holds_no_thread(server, site):
    """Answered with ``Connection: close``, a client may take its time to close its side; the
    worker waits for it in epoll (two seconds at most), not in a thread — gthread's loop waited
    in ``close_graceful``, two seconds a connection, and served nobody meanwhile."""
    request = request_bytes(site["token"]).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    lingering = []
    try:
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(request)
            lingering.append(sock)  # never read, never closed (until the test ends)
        time.sleep(0.5)
        answers = probes(server.port, site["token"])
    finally:
        for sock in lingering:
            sock.close()
    assert_answered_promptly(answers)
    # The clients that waited got their whole answer before the worker closed.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + b"unread bytes the client sent after its request" * 100)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert len(body) == int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])


def test_a_slow_request_holds_one_thread_and_not_the_others(server, site):
    """Three of the four threads read chunked bodies that trickle (the thread reads those
    itself); the fourth serves everybody else."""
    head = (
        b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
    )
    slow = []
    try:
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(head)
            slow.append(sock)
        time.sleep(0.5)
        answers = probes(server.port, site["token"])
        for sock in slow:  # still held, still being read
            sock.sendall(b"1\r\n \r\n")
    finally:
        for sock in slow:
            sock.close()
    assert_answered_promptly(answers)


def test_an_idle_kept_alive_connection_is_closed_after_keepalive_seconds(server, site):
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(request_bytes(site["token"]))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first[:100]
        began = time.monotonic()
        while sock.recv(65536):  # the rest of the answer, then the server's close
            pass
        waited = time.monotonic() - began
    assert 4 < waited < 8, waited  # keepalive = 5 s, swept twice a second


def test_at_worker_connections_it_stops_accepting_and_goes_on_when_one_closes(site, tmp_path: Path):
    server = start(site, tmp_path, GUNICORN_WORKER_CONNECTIONS="6")
    held = []
    try:
        for _ in range(6):  # connected, nothing sent yet: each holds a place
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        time.sleep(0.5)
        waiting = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        waiting.sendall(request_bytes(site["token"]))
        waiting.settimeout(1.5)
        with pytest.raises(TimeoutError):
            waiting.recv(65536)  # in the listen queue, not accepted
        held.pop().close()
        waiting.settimeout(5)
        assert waiting.recv(65536).startswith(b"HTTP/1.1 200 ")
        waiting.close()
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_a_request_being_served_when_the_worker_is_told_to_stop_is_answered(site, tmp_path: Path):
    """SIGTERM (a deploy) while a thread reads a request's chunked body: the worker stops
    accepting, lets the request finish and answers it, then exits."""
    server = start(site, tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(
                b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"1\r\n{\r\n"
            )
            time.sleep(0.5)  # a thread is reading the body
            os.kill(server.process.pid, signal.SIGTERM)
            time.sleep(1.0)  # the worker's own thread has seen it
            sock.sendall(b"1\r\n}\r\n0\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]  # no username: read whole
        assert server.process.wait(timeout=30) == 0
        assert "Traceback" not in server.log_text(), server.log_text()[-3000:]
    finally:
        server.stop()


def test_behind_a_proxy_protocol_the_worker_serves_in_gthread_s_loop(site, tmp_path: Path):
    """With the PROXY protocol on (a load balancer's), requests are read by gthread's loop as
    BufferingThreadWorker reads them: the serving threads' steps do not apply."""
    server = start(site, tmp_path, GUNICORN_CMD_ARGS="--proxy-protocol v1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(
                b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 8000\r\n" + request_bytes(site["token"])
            )
            buffer = bytearray()
            first = read_answer(sock, buffer)
            assert first.startswith(b"HTTP/1.1 200 "), first[:300]
            sock.sendall(request_bytes(site["token"]))  # kept alive: the next one too
            assert read_answer(sock, buffer).startswith(b"HTTP/1.1 200 ")
        assert "Traceback" not in server.log_text(), server.log_text()[-3000:]
    finally:
        server.stop()
