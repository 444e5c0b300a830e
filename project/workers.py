"""gunicorn's threaded worker, reading each request whole before a thread serves it.

gunicorn's ``gthread`` worker hands a connection to a thread as soon as its first bytes arrive,
and the thread then blocks until the request's head (and, when the application reads it, its
body) has arrived. A client that sends a header a byte at a time (slowloris), or a body a byte
at a time, holds that thread for as long as it likes: four such connections stopped the embedded
shape (one process, four threads), eight the production one.

``BufferingThreadWorker`` reads in the worker's event loop instead, as nginx does in front of an
application: the head, and a body of declared length up to ``MAX_BUFFERED_BODY``, are read
without blocking as they come, and only a complete request goes to a thread. A request that is
not complete within ``read_timeout`` seconds of its first wait is answered ``408`` and closed;
a head over ``MAX_HEAD`` bytes ``431``. Slow clients then cost a socket each in the event loop,
bounded by ``worker_connections``, never a thread.

``ServingThreadWorker``, the one ``project/gunicorn.conf.py`` runs, reads the same way in the
serving threads themselves, with no loop in between to hand each request over and back.

Left to gunicorn as it is: TLS connections (gunicorn would have to decrypt in the loop) and
HTTP/2 cleartext, neither of which ``project/gunicorn.conf.py`` turns on, and a chunked body
(its end is only known by parsing it), which the thread reads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import selectors
import socket
import threading
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from performance import turns as turns_of_threads
from performance.turns import Turns, waiting

#: The largest request head read in the event loop; larger ones are refused (431).
MAX_HEAD = 64 * 1024
#: The most of a declared body read in the event loop; the thread reads what is beyond. A
#: little above ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (1 MiB), so that every body the service
#: accepts arrives whole; a larger one is refused by Django before it is read.
MAX_BUFFERED_BODY = 1024 * 1024 + 64 * 1024
#: Seconds a client has to send a whole request (``GUNICORN_READ_TIMEOUT``).
DEFAULT_READ_TIMEOUT = 10.0

_RECV = 64 * 1024
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect:[ \t]*100-continue[ \t]*(?=\r\n)", re.IGNORECASE)
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Length: 0\r\n\r\n"
)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: Marks a socket whose next answer head is to be held (``_Socket.hold_head``).
_HOLD: Any = object()
#: A send or read that never waits, whatever the socket's mode.
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
#: A connection waited on for one read event, then left alone until armed again.
_ONE_READ = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLONESHOT", 0)
#: Seconds between the heartbeats and sweeps of a ServingThreadWorker.
_SWEEP_EVERY = 0.5
#: The most a closing connection's client may still send before it is closed at once.
_MAX_DRAINED = 64 * 1024
#: Events taken from epoll at once.
_MAX_EVENTS = 256


def _send_what_it_takes(sock: socket.socket, answer: bytes) -> None:
    """A refusal's answer, sent at best effort: what the socket takes now, without waiting
    for a client that does not read, nor failing for one that has gone."""
    with contextlib.suppress(OSError):
        sock.send(answer, _DONTWAIT)


class _Reading:
    """What the event loop has read of one request, and by when the rest must come."""

    __slots__ = ("body_start", "data", "deadline", "needed", "whole")

    def __init__(self, data: bytes, deadline: float) -> None:
        self.data = bytearray(data)
        self.deadline = deadline
        #: Where the body starts, once the head is complete.
        self.body_start: int | None = None
        #: Bytes of the request to read before it goes to a thread, once known.
        self.needed: int | None = None
        #: Whether those bytes are the whole request, its body included.
        self.whole = False


class BufferingThreadWorker(ThreadWorker):
    """``gthread``, with each request read whole in the event loop first (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = float(os.environ.get("GUNICORN_READ_TIMEOUT") or DEFAULT_READ_TIMEOUT)
        #: Connections whose request is being read, oldest deadline first.
        self.reading: deque[TConn] = deque()

    def _buffers(self, conn: TConn) -> bool:
        """Whether this connection's requests are read in the event loop."""
        return not (
            self.cfg.is_ssl
            or conn.is_http2
            or negotiation.prior_knowledge_allowed(self.cfg, conn.client)
        )

    # Where gthread hands a connection to a thread --------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        self.enqueue_req(conn)

    def enqueue_req(self, conn: TConn) -> None:
        """A thread for a request read whole; otherwise, read it first (new connections,
        kept-alive ones that became readable, bytes a client sent ahead)."""
        if getattr(conn, "request_bytes", None) is not None or not self._buffers(conn):
            super().enqueue_req(conn)
            return
        ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.sock.setblocking(False)
        conn.reading = _Reading(ahead, time.monotonic() + self.read_timeout)
        self.reading.append(conn)
        if not self._advance(conn):
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self.on_request_readable, conn)
            )

    def handle(self, conn: TConn) -> Any:
        """In the thread: give the parser the bytes the event loop read, then serve."""
        request = getattr(conn, "request_bytes", None)
        if request is not None:
            conn.request_bytes = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(request)
        return super().handle(conn)

    # Reading in the event loop ----------------------------------------------------------------

    def on_request_readable(self, conn: TConn, client: socket.socket) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before its request was whole
            self._drop(conn, None)
            return
        conn.reading.data += data
        self._advance(conn)

    def _advance(self, conn: TConn) -> bool:
        """Look at what has come; hand the request to a thread (or refuse it) when it can be.
        Returns whether the connection left the reading state."""
        reading: _Reading = conn.reading
        data = reading.data
        if reading.body_start is None:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD:
                    self._drop(conn, _HEAD_TOO_LARGE)
                    return True
                return False
            if end > MAX_HEAD:
                self._drop(conn, _HEAD_TOO_LARGE)
                return True
            reading.body_start = end + 4
            reading.needed = self._request_length(conn, bytes(data[: end + 2]), end + 4)
        if reading.needed is None or len(data) >= reading.needed:
            self._dispatch(conn)
            return True
        return False

    def _request_length(self, conn: TConn, head: bytes, body_start: int) -> int | None:
        """Bytes to read before the request goes to a thread; ``None``: dispatch now (a
        chunked body, a length the parser will refuse)."""
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding":
                return None
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    return None
                if length < 0:
                    return None
        if length and _EXPECT_CONTINUE.search(head):
            # The client waits for this before it sends the body; the thread must not send a
            # second one, so the expectation is taken out of the head it parses.
            try:
                conn.sock.send(_CONTINUE, _DONTWAIT)
            except OSError:
                return None
            stripped = _EXPECT_CONTINUE.sub(b"", head)
            conn.reading.data[: len(head)] = stripped
            body_start -= len(head) - len(stripped)
        conn.reading.whole = length <= MAX_BUFFERED_BODY
        return body_start + min(length, MAX_BUFFERED_BODY)

    def _stop_reading(self, conn: TConn) -> None:
        # Not registered when the request was whole on arrival.
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        with contextlib.suppress(ValueError):
            self.reading.remove(conn)

    def _dispatch(self, conn: TConn) -> None:
        self._stop_reading(conn)
        conn.request_bytes = bytes(conn.reading.data)
        conn.reading = None
        conn.data_ready = True
        super().enqueue_req(conn)

    def _drop(self, conn: TConn, answer: bytes | None) -> None:
        self._stop_reading(conn)
        conn.reading = None
        if answer:
            _send_what_it_takes(conn.sock, answer)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """gthread's expiry of idle connections, and of requests not sent in time (408)."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading and self.reading[0].reading.deadline <= now:
            self._drop(self.reading[0], _REQUEST_TIMEOUT)


class _Socket(socket.socket):
    """A connection's socket that changes its mode only when asked for another one.

    The serving threads read with ``MSG_DONTWAIT`` and leave the socket blocking for the
    application; gthread's code asks for blocking mode twice a request and gunicorn's parser
    sets the timeout it has twice more, and each ask is a system call that lets another thread
    take the interpreter's lock.
    """

    __slots__ = ("head",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: An answer's head held back to go out with its first body bytes (``hold_head``).
        self.head: bytes | None = None

    def setblocking(self, flag: bool) -> None:
        if self.gettimeout() != (None if flag else 0.0):
            super().setblocking(flag)

    def settimeout(self, value: float | None) -> None:
        if value != self.gettimeout():
            super().settimeout(value)

    # An answer's head and body in one system call ----------------------------------------------

    def hold_head(self) -> None:
        """Keep the next answer head gunicorn sends, to send it with what follows."""
        self.head = _HOLD

    def sendall(self, data: Any, flags: int = 0) -> None:
        head = self.head
        if head is _HOLD:
            if data[:5] == b"HTTP/" and data[9:12] != b"100":
                self.head = bytes(data)
                return
            self.head = None
            self._send((data,), flags)
        elif head is None:
            self._send((data,), flags)
        else:
            self.head = None
            self._send((head, data), flags)

    def _send(self, parts: tuple[Any, ...], flags: int) -> None:
        """Send ``parts`` whole, in one system call when the socket takes them at once; a
        client slow to read is waited for outside the turn (``performance.turns``)."""
        try:
            sent = self.sendmsg(parts, (), flags | _DONTWAIT)
        except BlockingIOError:
            sent = 0
        for part in parts:
            view = memoryview(part).cast("B")
            if sent >= view.nbytes:
                sent -= view.nbytes
                continue
            with waiting():
                super().sendall(view[sent:], flags)
            sent = 0

    def flush_head(self) -> None:
        """Send a head still held (an answer without a body), and hold nothing more."""
        head, self.head = self.head, None
        if head is not None and head is not _HOLD:
            self._send((head,), 0)

    def send(self, data: Any, flags: int = 0) -> int:
        self.flush_head()
        if flags & _DONTWAIT:
            return super().send(data, flags)
        with waiting():
            return super().send(data, flags)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self.flush_head()
        with waiting():
            return super().sendfile(file, offset, count)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.head is not None:
            self.flush_head()
        if flags & _DONTWAIT:
            return super().recv(bufsize, flags)
        with waiting():  # (a body the application reads beyond what was read whole)
            return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if self.head is not None:
            self.flush_head()
        if flags & _DONTWAIT:
            return super().recv_into(buffer, nbytes, flags)
        with waiting():
            return super().recv_into(buffer, nbytes, flags)

    def shutdown(self, how: int) -> None:
        with contextlib.suppress(OSError):
            self.flush_head()
        super().shutdown(how)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.flush_head()
        super().close()


class _State:
    """Who holds a connection of the ``ServingThreadWorker``."""

    ARMED = 0  # waited on by epoll
    QUEUED = 1  # reported by epoll, waiting for a thread: not to be swept as idle
    BUSY = 2  # one thread reads or serves it
    CLOSED = 3


class ServingThreadWorker(BufferingThreadWorker):
    """Threads that wait for requests themselves and serve the ones they read (Linux).

    ``gthread`` has one thread wait on every socket and hand each request to a pool thread,
    which hands the connection back when it is done: with eight to thirty-two busy connections,
    6.5 to 8.7 context switches a request, and on two cores the switching cost the embedded
    shape more CPU than its views. Here the serving threads share one epoll set, each
    connection in it once (``EPOLLONESHOT``); one thread at a time waits on it and queues what
    it reports, and a thread that has served a request takes the next one from the queue
    without sleeping. A thread reads what came for its
    connection in the same non-blocking steps as ``BufferingThreadWorker`` (a trickling client
    costs a socket, never a thread), serves a request read whole, and puts the connection back.
    A client slow to close after its answer waits in epoll too. The worker's own thread keeps
    gunicorn's heartbeat and closes what has waited too long: idle kept-alive connections,
    requests not sent in time (408), closing clients after two seconds. No system call is
    made that a request does not need (``_Socket``): each one lets another busy thread take the
    interpreter's lock. Where the process has cores to spare (one process on two: the embedded
    shape), the threads also take turns (``performance.turns``): one serves while the others
    wait for the turn, and it gives the turn away where it waits (a query, a round trip, a
    client slow to read) or between requests to a thread back from a wait. On the API's list
    page with sixteen busy connections, 0.2 context switches a request (5 without turns, gthread
    16.4: ``tests/project/test_serving_worker.py``).

    TLS, cleartext HTTP/2 and the PROXY protocol are left to the buffering ``gthread`` loop, as
    is a system without epoll.
    """

    #: Whether this worker serves in its threads (set by ``run``).
    serving = False

    def _takes_turns(self) -> bool:
        """Whether the serving threads take turns (``performance.turns``): where the workers
        are fewer than the cores. One process then has its threads on several cores, and each
        system call hands the interpreter's lock from one core to another — in the one-process
        shape on two cores, 6.2 context switches a request, a third of the process's time on
        the ceiling view; with turns, 0.03 and the ceiling 1.5 times as fast. With a process a
        core or more, the lock mostly changes hands on one core, and giving the turn away at
        each query or round trip cost more than it saved (cold pages 8 % slower)."""
        return self.cfg.workers < len(os.sched_getaffinity(0))

    def _serves_itself(self) -> bool:
        return (
            hasattr(select, "epoll")
            and not self.cfg.is_ssl
            and self.cfg.http2_cleartext == "off"
            and self.cfg.proxy_protocol == "off"
        )

    def run(self) -> None:
        # Otherwise gthread's loop, with BufferingThreadWorker's steps as they are.
        self.serving = self._serves_itself()
        if not self.serving:
            super().run()
            return
        self.epoll = select.epoll()
        self.lock = threading.Lock()
        #: Descriptors epoll reported and no thread has taken yet, oldest first.
        self.ready: deque[int] = deque()
        #: Whether a thread is waiting on epoll.
        self.polling = False
        #: Who takes the next event; and, where the process has cores to spare (``in_turns``),
        #: who serves: one thread at a time, another while it waits (``performance.turns``).
        self.turns = Turns(wanted=lambda: bool(self.ready) or not self.polling)
        self.in_turns = self._takes_turns()
        if self.in_turns:
            turns_of_threads.install(self.turns)
        #: Every open connection, by its socket's descriptor.
        self.conns: dict[int, TConn] = {}
        #: Kept-alive connections waiting for their next request (gthread's limit reads it).
        self.keepalived_conns = set()
        self.listeners = {listener.fileno(): listener for listener in self.sockets}
        for listener in self.listeners.values():
            listener.setblocking(False)
        self._set_accepting(True)
        threads = [
            threading.Thread(target=self._serve, name=f"serve-{n}", daemon=True)
            for n in range(self.cfg.threads)
        ]
        for thread in threads:
            thread.start()
        while self.alive:
            self.notify()
            time.sleep(_SWEEP_EVERY)
            if not self.is_parent_alive():
                break
            self._sweep()
        self._set_accepting(False)
        linger = time.monotonic() + STOP_KEEPALIVE_LINGER
        with self.lock:
            for conn in self.conns.values():
                # Idle ones; one being served gets the linger when it is done (_serve_one).
                if conn.state == _State.ARMED and conn.reading is None:
                    conn.timeout = min(conn.timeout, linger)
        graceful = time.monotonic() + self.cfg.graceful_timeout
        while self.conns and time.monotonic() < graceful:
            self.notify()
            time.sleep(_SWEEP_EVERY)
            self._sweep()
        self._sweep(everything=True)
        for listener in self.sockets:
            listener.close()

    # The serving threads --------------------------------------------------------------------

    def _serve(self) -> None:
        self.turns.take()
        try:
            while True:
                fd = self._next_ready()
                if fd is None:
                    continue
                if not self.in_turns:
                    self.turns.give()  # (serving beside the others; taken again for the next)
                conn = listener = None
                try:
                    listener = self.listeners.get(fd)
                    if listener is not None:
                        self._accept_from(listener)
                        continue
                    with self.lock:
                        conn = self.conns.get(fd)
                        if conn is None or conn.state not in (_State.ARMED, _State.QUEUED):
                            continue
                        conn.state = _State.BUSY
                        self.keepalived_conns.discard(conn)
                    if conn.lingering:
                        self._linger(conn)
                    else:
                        self._read_and_serve(conn)
                except BaseException as exc:  # a defect here must not end the thread
                    self.log.exception("Error serving a connection")
                    if conn is not None:
                        self._close(conn)
                    if listener is not None:  # left unarmed: the sweep listens again
                        with self.lock:
                            self._accepting = False
                    if not isinstance(exc, Exception):  # SystemExit from the application, say
                        self.alive = False  # gunicorn starts another worker
        finally:  # (a thread that ends holds no turn)
            if self.turns.held():
                self.turns.give()

    def _next_ready(self) -> int | None:
        """The next descriptor with something to read, first come first served (under the
        turn, which it gives away while it waits).

        One thread at a time waits on epoll and takes every event there is, in order; it keeps
        the first and queues the rest, and the thread that holds the turn takes from the queue
        without sleeping. The others wait for the turn, which a thread gives away while it waits
        for the network or the database (``performance.turns``), to one of them when there is
        something for it to do. (Several threads each taking one event from epoll would be
        served unfairly: events that come while epoll hands one out go to the front of its list,
        and with sixty-four busy connections some waited seconds.)
        """
        if not self.turns.held():  # (it went on without: ``performance.turns.PATIENCE``)
            self.turns.take()
        else:
            self.turns.pass_on()
        if self.ready:
            return self.ready.popleft()
        if self.polling:
            self.turns.wait(_SWEEP_EVERY)
            return self.ready.popleft() if self.ready else None
        self.polling = True
        try:
            with self.turns.given_away():
                events = self.epoll.poll(_SWEEP_EVERY, _MAX_EVENTS)
        except InterruptedError:
            events = []
        finally:
            self.polling = False
        if events:
            with self.lock:  # reported: not idle any more, whatever the sweep finds
                for fd, _ in events:
                    conn = self.conns.get(fd)
                    if conn is not None and conn.state == _State.ARMED:
                        conn.state = _State.QUEUED
            self.ready.extend(fd for fd, _ in events)
        return self.ready.popleft() if self.ready else None

    def _accept_from(self, listener: Any) -> None:
        """Accept every connection waiting (up to ``worker_connections``), then listen again."""
        while self._accepting:
            try:
                client_sock, client_addr = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                if exc.errno == errno.ECONNABORTED:
                    continue
                # Out of descriptors, say: the sweep listens again in a moment.
                self.log.error("Cannot accept a connection: %s", exc)
                with self.lock:
                    self._accepting = False
                return
            client_sock = _Socket(fileno=client_sock.detach())
            with self.lock:
                conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
                conn.reading = _Reading(b"", time.monotonic() + self.read_timeout)
                conn.lingering = False
                conn.state = _State.ARMED
                conn.fd = client_sock.fileno()
                try:
                    self.epoll.register(conn.fd, _ONE_READ)
                except OSError as exc:  # out of memory for epoll's watches, say
                    self.log.error("Cannot watch a connection: %s", exc)
                    conn.close()
                    self._accepting = False  # the sweep listens again in a moment
                    return
                self.conns[conn.fd] = conn
                if len(self.conns) >= self.worker_connections:
                    self._accepting = False
                    return
        with self.lock:
            if self._accepting:
                with contextlib.suppress(OSError, ValueError):
                    self.epoll.modify(listener.fileno(), _ONE_READ)

    def _read_and_serve(self, conn: TConn) -> None:
        """Read what the client sent; serve the requests it completes; wait again.

        One read an event: a client that sends its next request as soon as it has an answer
        would otherwise keep this thread to itself while the other connections wait.
        """
        try:
            data = conn.sock.recv(_RECV, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            self._wait(conn)
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        if conn.reading is None:  # the first bytes of a kept-alive connection's next request
            conn.reading = _Reading(data, time.monotonic() + self.read_timeout)
        else:
            conn.reading.data += data
        # Requests the client sent ahead (pipelined) are served in turn: epoll will not tell.
        while conn.reading is not None and self._advance(conn):
            if conn.state == _State.CLOSED or not self._serve_one(conn):
                return
        self._wait(conn)

    def _serve_one(self, conn: TConn) -> bool:
        """Serve the request ``_dispatch`` took; whether the connection stays open."""
        conn.sock.hold_head()
        try:
            keep = self.handle(conn) is True
        finally:
            with contextlib.suppress(OSError):
                conn.sock.flush_head()
        if conn.sock.fileno() == -1:  # gunicorn closed it (an error after the answer began)
            self._close(conn)
            return False
        if not keep:
            self._close_after_answer(conn)
            return False
        ahead = conn.parser.unreader.take_buffered()
        if ahead:
            conn.reading = _Reading(ahead, time.monotonic() + self.read_timeout)
        else:
            conn.timeout = time.monotonic() + (
                self.cfg.keepalive if self.alive else min(self.cfg.keepalive, STOP_KEEPALIVE_LINGER)
            )
        return True

    def _wait(self, conn: TConn, *, idle: bool = True) -> None:
        """Back in epoll; ``idle``: kept alive for a next request, if none has begun."""
        with self.lock:
            conn.state = _State.ARMED
            if idle and conn.reading is None:
                self.keepalived_conns.add(conn)
            self.epoll.modify(conn.fd, _ONE_READ)

    def _close_after_answer(self, conn: TConn) -> None:
        """Send the end of the answer, then close once the client has: what it sent meanwhile,
        left unread, would make the system reset the connection and cut the answer short
        (gunicorn's ``close_graceful``, without holding a thread while the client takes its
        time: the connection waits in epoll, ``STOP_KEEPALIVE_LINGER`` seconds at most)."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.lingering = True
        conn.drained = 0
        conn.reading = None
        conn.timeout = time.monotonic() + STOP_KEEPALIVE_LINGER
        self._wait(conn, idle=False)

    def _linger(self, conn: TConn) -> None:
        """Read and drop what a closing connection's client still sends, until it closes."""
        while True:
            try:
                data = conn.sock.recv(_RECV, _DONTWAIT)
            except (BlockingIOError, InterruptedError):
                self._wait(conn, idle=False)
                return
            except OSError:
                data = b""
            conn.drained += len(data)
            if not data or conn.drained > _MAX_DRAINED:
                self._close(conn)
                return

    def _close(self, conn: TConn, *, answer: bytes | None = None) -> None:
        with self.lock:
            if conn.state == _State.CLOSED:
                return
            conn.state = _State.CLOSED
            self._forget(conn)
        if answer:
            _send_what_it_takes(conn.sock, answer)
        with contextlib.suppress(OSError):
            conn.close()

    def _forget(self, conn: TConn) -> None:
        """Under the lock: out of the table and the set (unless its socket is closed already,
        which took it out of the set, and its descriptor may be another connection's now)."""
        if self.conns.get(conn.fd) is conn:
            del self.conns[conn.fd]
            if conn.sock.fileno() != -1:
                with contextlib.suppress(OSError, ValueError):
                    self.epoll.unregister(conn.fd)
        self.keepalived_conns.discard(conn)

    # Where BufferingThreadWorker's reading steps lead ----------------------------------------

    def _stop_reading(self, conn: TConn) -> None:
        if not self.serving:
            super()._stop_reading(conn)
        # Serving: nothing registered besides the connection itself.

    def _dispatch(self, conn: TConn) -> None:
        if not self.serving:
            super()._dispatch(conn)
            return
        conn.request_bytes = bytes(conn.reading.data)
        conn.request_whole = conn.reading.whole
        conn.reading = None
        conn.data_ready = True

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        """gthread's, without bounding the socket's reads when there are none to make: a body
        that was read whole is drained from what was read."""
        if keepalive and getattr(conn, "request_whole", False):
            return bool(conn.parser.finish_body())
        return super()._keepalive_after(conn, keepalive)

    def _drop(self, conn: TConn, answer: bytes | None) -> None:
        if not self.serving:
            super()._drop(conn, answer)
            return
        conn.reading = None
        self._close(conn, answer=answer)

    # The worker's own thread ----------------------------------------------------------------

    def _set_accepting(self, accepting: bool) -> None:
        with self.lock:
            self._accepting = accepting
            for fd in self.listeners:
                with contextlib.suppress(OSError, ValueError):
                    if accepting:
                        self.epoll.register(fd, _ONE_READ)
                    else:
                        self.epoll.unregister(fd)

    def _sweep(self, *, everything: bool = False) -> None:
        """Close what waited too long (``everything``: all that waits); accept again when below
        ``worker_connections``."""
        now = time.monotonic()
        expired = []
        with self.lock:
            for conn in list(self.conns.values()):
                if conn.state != _State.ARMED:
                    continue
                deadline = conn.timeout if conn.reading is None else conn.reading.deadline
                if deadline <= now or everything:
                    conn.state = _State.CLOSED
                    self._forget(conn)
                    expired.append(conn)
            if self.alive and not self._accepting and len(self.conns) < self.worker_connections:
                self._accepting = True
                for fd in self.listeners:
                    with contextlib.suppress(OSError, ValueError):
                        self.epoll.modify(fd, _ONE_READ)
        for conn in expired:
            if conn.reading is not None:  # a request not sent in time
                _send_what_it_takes(conn.sock, _REQUEST_TIMEOUT)
            with contextlib.suppress(OSError):
                conn.close()
