"""Turns: one thread of a serving process runs Python at a time; one that waits lets another run.

The interpreter lets one thread run Python at a time anyway, but it hands its lock over at every
system call, even one that does not wait (a send the socket takes at once, a read of bytes
already there). With several threads of a process runnable, each such call lets another take
the lock, and the caller waits to take it back: two context switches, and caches gone cold. In
the one-process shape, four serving threads made 6.2 context switches a request and cost a
third of the process's time on the ceiling view.

A server that serves with threads (``project.workers.ServingThreadWorker``, where a process has
cores to spare) makes its threads take turns instead: a thread serves while it holds the turn,
and gives it away only where it may really wait — for the network or the database (``waiting``)
— or for work. The other threads then wait on the turn, not on the interpreter's lock, and no
system call of the thread that holds it is a hand-over. Where nothing installs turns (a
management command, a test's client, another server), ``waiting`` does nothing.

What may wait goes through ``waiting``: the database's queries (``install``), the cache layer's
calls to Redis (``performance.cache.redis``; a warm hit's read keeps the turn for an answer that
comes at once: ``waiting_for``), the read path's sleep while another request computes an entry,
the server's sends to a client slow to read. A wait that does not holds the other threads of
its process while it lasts; one that comes back to a turn held for longer than ``PATIENCE``
goes on beside its holder, as threads without turns do.
"""

from __future__ import annotations

import contextlib
import select
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from django.db.backends.signals import connection_created


class Turns:
    """The turn of a process's serving threads: a lock, held by the thread that serves; a queue
    of threads back from a wait; a condition for threads with nothing to do.

    A thread back from a wait goes first: the thread holding the turn hands it over at its next
    wait or between two requests (``pass_on``), directly — the lock stays taken and changes
    hands, so no thread can take it in between — and a request that waited is not kept waiting
    again behind every request queued meanwhile. The turn is only ever let go in ``give``, which
    decides between handing it over and letting it go under the queue's own lock, and a thread
    back from a wait tries the turn and queues under the same lock: no hand-over is missed.
    """

    def __init__(self, wanted: Callable[[], bool] = lambda: True) -> None:
        self.lock = threading.Lock()
        #: The thread that holds the turn (its ident), ``None`` while nobody does.
        self.holder: int | None = None
        #: Threads back from a wait, first come first served: each waits on its event, set
        #: when the turn is handed over to it.
        self.returning: deque[threading.Event] = deque()
        self._returning_lock = threading.Lock()
        #: Threads with nothing to do wait here, without the turn (``wait``).
        self.work = threading.Condition(threading.RLock())
        #: Whether a thread waiting for work should take the turn when it is let go: there is
        #: work it could do (the server knows).
        self.wanted = wanted

    def held(self) -> bool:
        return self.holder == threading.get_ident()

    def take(self) -> None:
        """Take the turn when it is let go (a thread back from a wait is handed it first)."""
        self.lock.acquire()
        self.holder = threading.get_ident()

    def take_back(self, patience: float) -> bool:
        """Take the turn after a wait: free, or handed over, within ``patience`` seconds;
        ``False``: not taken."""
        with self._returning_lock:
            if self.lock.acquire(blocking=False):
                self.holder = threading.get_ident()
                return True
            handed = threading.Event()
            self.returning.append(handed)
        if not handed.wait(patience):
            with self._returning_lock:
                if handed in self.returning:
                    self.returning.remove(handed)
                    return False
            handed.wait()  # handed over as the wait ended: being set now
        self.holder = threading.get_ident()
        return True

    def give(self) -> None:
        """Give the turn away: to a thread back from a wait if there is one, else let it go (and
        wake a thread waiting for work if there is work for it)."""
        self.holder = None
        with self._returning_lock:
            handed = self.returning.popleft() if self.returning else None
            if handed is None:
                self.lock.release()
        if handed is not None:
            handed.set()  # theirs now, the lock still taken
        elif self.wanted():
            self.notify()

    def pass_on(self) -> None:
        """Between two requests: the turn to the threads back from a wait first, if any."""
        if self.returning:
            self.give()
            self.take()

    def wait(self, timeout: float) -> None:
        """Without the turn until ``notify`` (or ``timeout``); then with it again."""
        with self.work:  # (no notice is sent between giving the turn and waiting for one)
            self.give()
            self.work.wait(timeout)
        self.take()

    def notify(self, n: int = 1) -> None:
        with self.work:
            self.work.notify(n)

    @contextlib.contextmanager
    def given_away(self, patience: float | None = None) -> Iterator[None]:
        """The turn given away for what runs inside, and taken back after — or, when it is not
        handed back within ``patience`` seconds, not: the thread goes on beside the one holding
        it, as threads without turns do, until it next waits."""
        self.give()
        try:
            yield
        finally:
            if patience is None:
                self.take()
            else:
                self.take_back(patience)


_turns: Turns | None = None
#: Seconds a thread back from a wait waits for the turn before it goes on without it. The
#: thread holding the turn gives it away at its next wait or when its request is done; one that
#: does neither for this long (a request that computes for longer, or one that waits for a lock
#: the thread coming back holds — held across its wait) then shares the interpreter, as threads
#: without turns do, rather than holding the other back.
PATIENCE = 0.05


def install(turns: Turns | None) -> None:
    """The turns of this process's serving threads (``None``: none any more); from now on, each
    database connection made waits for its queries outside the turn."""
    global _turns
    _turns = turns
    if turns is None:
        connection_created.disconnect(dispatch_uid="performance.turns")
    else:
        connection_created.connect(_queries_wait, dispatch_uid="performance.turns")


def _queries_wait(sender: Any, connection: Any, **kwargs: Any) -> None:
    """A connection just made: what of it may wait does so outside the turn — its commits,
    rollbacks and health checks, and its statements on a database server; on SQLite, which
    runs in this process (its statements are work, not waits), the start of a transaction,
    which waits while another connection writes (``transaction_mode`` IMMEDIATE: the one wait
    of a statement in WAL mode). (First in ``execute_wrappers``, the outermost: Django's
    ``execute_wrapper`` adds and removes its own at the end, and a connection may be made
    inside one.)"""
    if _query in connection.execute_wrappers:
        return
    connection.execute_wrappers.insert(0, _query)
    # Django's own steps that reach the database besides a statement: a round trip each on a
    # server (a commit, an fsync too); on SQLite a commit may checkpoint the WAL into the
    # database, an fsync. Wrapped on this connection's object only.
    for name in ("_commit", "_rollback", "is_usable"):
        setattr(connection, name, _waits(getattr(connection, name)))


def _waits(call: Callable[..., Any]) -> Callable[..., Any]:
    def waiting_call(*args: Any, **kwargs: Any) -> Any:
        with waiting():
            return call(*args, **kwargs)

    return waiting_call


def _query(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    connection = context["connection"]
    if connection.vendor == "sqlite" and not _may_wait_on_sqlite(connection, sql):
        return execute(sql, params, many, context)
    with waiting():
        return execute(sql, params, many, context)


def _may_wait_on_sqlite(connection: Any, sql: str) -> bool:
    """Whether a SQLite statement may wait for another connection's write lock (for up to
    the connection's ``timeout``): the start of a transaction (``BEGIN IMMEDIATE`` takes the
    lock), and a write outside one, which takes it itself. Inside a transaction begun so, the
    lock is held; and in WAL mode a read never waits."""
    if sql.startswith("BEGIN"):
        return True
    return connection.get_autocommit() and sql.lstrip()[:6].upper() != "SELECT"


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Around a call that may wait for the network or the database: another thread of the
    process serves meanwhile. Nothing where this thread holds no turn."""
    turns = _turns
    if turns is None or not turns.held():
        yield
        return
    with turns.given_away(PATIENCE):
        yield


#: How long a thread that holds the turn waits for an answer before it gives the turn away
#: (milliseconds): the wait holds the process's other threads.
SPIN_MS = 1


@contextlib.contextmanager
def waiting_for(sock: Any) -> Iterator[None]:
    """Around a read of an answer from ``sock``: the turn kept if the answer comes within
    ``SPIN_MS`` (giving it away and taking it back costs more than a short wait), given
    away if not."""
    turns = _turns
    if turns is None or not turns.held() or sock is None:
        yield
        return
    ready = select.poll()
    ready.register(sock, select.POLLIN)
    if ready.poll(SPIN_MS):
        yield
        return
    with turns.given_away(PATIENCE):
        yield
