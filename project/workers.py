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

Left to gunicorn as it is: TLS connections (gunicorn would have to decrypt in the loop) and
HTTP/2 cleartext, neither of which ``project/gunicorn.conf.py`` turns on, and a chunked body
(its end is only known by parsing it), which the thread reads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors
import socket
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

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


class _Reading:
    """What the event loop has read of one request, and by when the rest must come."""

    __slots__ = ("body_start", "data", "deadline", "needed")

    def __init__(self, data: bytes, deadline: float) -> None:
        self.data = bytearray(data)
        self.deadline = deadline
        #: Where the body starts, once the head is complete.
        self.body_start: int | None = None
        #: Bytes of the request to read before it goes to a thread, once known.
        self.needed: int | None = None


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
                conn.sock.send(_CONTINUE)
            except OSError:
                return None
            stripped = _EXPECT_CONTINUE.sub(b"", head)
            conn.reading.data[: len(head)] = stripped
            body_start -= len(head) - len(stripped)
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
            with contextlib.suppress(OSError):
                conn.sock.send(answer)  # best effort: the socket may not take it all
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """gthread's expiry of idle connections, and of requests not sent in time (408)."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading and self.reading[0].reading.deadline <= now:
            self._drop(self.reading[0], _REQUEST_TIMEOUT)
