"""A TCP proxy standing in for a managed Redis endpoint: one address, a target that changes.

A managed Redis (or a Sentinel-aware DNS name) gives clients one address and moves it to
another server on failover, dropping the connections that were open. ``TcpProxy`` does the same
on a free port of the loopback: ``switch`` points it at another server, ``blackhole`` makes it
stop answering, as a partition between one process and a Redis that others still reach.

Threads, blocking sockets and ``selectors``: one thread accepts, one thread per connection
copies bytes both ways. Every wait has a timeout, and ``stop`` closes everything.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import Literal

Address = tuple[str, int]
Mode = Literal["forward", "hold", "drop"]

#: Seconds a blocked thread waits before looking at the proxy's state again.
POLL = 0.2
#: Bytes copied at once.
CHUNK = 65536


class _Link:
    """One client connection and, when forwarding, its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            with contextlib.suppress(OSError):  # already reset by the other side
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def pump(self) -> None:
        """Copy bytes both ways until either side closes or the link is dropped."""
        assert self.upstream is not None
        peers = {self.client: self.upstream, self.upstream: self.client}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            try:
                while not self.closed.is_set():
                    for key, _ in selector.select(timeout=POLL):
                        data = key.fileobj.recv(CHUNK)  # type: ignore[union-attr]
                        if not data:
                            return
                        peers[key.fileobj].sendall(data)  # type: ignore[index]
            except (OSError, ValueError):
                return  # reset, or closed by ``close`` from another thread
            finally:
                self.close()

    def hold(self) -> None:
        """Read and discard what the client sends, never answering, until dropped."""
        try:
            self.client.settimeout(POLL)
            while not self.closed.is_set():
                try:
                    if not self.client.recv(CHUNK):
                        return
                except TimeoutError:
                    continue
        except OSError:
            return
        finally:
            self.close()


class TcpProxy:
    """Listens on a free loopback port and forwards each connection to the current target.

    ``switch(target)`` sends new connections to ``target`` and, by default, drops the open ones
    (as a failover of a managed endpoint does); ``blackhole()`` stops forwarding: new and
    existing connections are held without an answer (``hold=True``, the client times out) or
    closed as soon as they are accepted (the client sees a reset).
    """

    def __init__(self, target: Address | None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL)
        self.port = self._listener.getsockname()[1]
        self.address: Address = ("127.0.0.1", self.port)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._target = target
        self._mode: Mode = "forward" if target is not None else "drop"
        #: Bumped by every change of target or mode: a connection made under an older one
        #: is dropped, so none outlives the switch that should have ended it.
        self._epoch = 0
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self.accepted = 0
        self._acceptor = threading.Thread(target=self._accept, name=f"proxy-{self.port}")
        self._acceptor.daemon = True
        self._acceptor.start()

    # Control -------------------------------------------------------------------------------

    @property
    def target(self) -> Address | None:
        return self._target

    def switch(self, target: Address, *, drop_connections: bool = True) -> None:
        """Forward new connections to ``target``; drop the open ones unless told not to."""
        with self._lock:
            self._target, self._mode = target, "forward"
            self._epoch += 1
        if drop_connections:
            self.drop_connections()

    def blackhole(self, *, hold: bool = True) -> None:
        """Stop forwarding; every open connection is dropped.

        ``hold``: later connections are accepted and never answered (a partition: clients
        wait for their timeout). Otherwise they are closed at once (clients see a reset).
        """
        with self._lock:
            self._mode = "hold" if hold else "drop"
            self._epoch += 1
        self.drop_connections()

    def drop_connections(self) -> int:
        with self._lock:
            links, self._links = list(self._links), set()
        for link in links:
            link.close()
        return len(links)

    def stop(self) -> None:
        self._stopped.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        self.drop_connections()
        for thread in self._threads:
            thread.join(timeout=5)

    # Threads -------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            self.accepted += 1
            with self._lock:
                mode, target, epoch = self._mode, self._target, self._epoch
            if mode == "drop" or target is None:
                client.close()
                continue
            upstream = None
            if mode == "forward":
                try:
                    upstream = socket.create_connection(target, timeout=2)
                except OSError:
                    client.close()  # the target is down: the client sees a reset
                    continue
                upstream.settimeout(None)
            client.settimeout(None)
            link = _Link(client, upstream)
            with self._lock:
                current = epoch == self._epoch
                if current:
                    self._links.add(link)
            if not current:
                link.close()  # switched while connecting: this target is no longer the one
                continue
            thread = threading.Thread(
                target=link.pump if upstream is not None else link.hold,
                name=f"proxy-{self.port}-link",
                daemon=True,
            )
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()
