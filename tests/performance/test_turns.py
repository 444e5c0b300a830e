"""Turns (``performance.turns``): one thread of a serving process runs at a time, and one that
waits — for the database, Redis, a client — lets another run; a thread back from a wait goes
before the next request; a lock held across a wait does not stop the process."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, connections, transaction

from performance import turns as turns_module
from performance.turns import Turns, waiting, waiting_for
from workstations.api.pagination import CachedCountPaginator
from workstations.models import Location

#: A bound on each step that never ends when the defect is there (a thread that never gets
#: the turn, a lock never released): long enough for a loaded machine, short for a hung test.
STUCK = 10.0


@pytest.fixture
def turns() -> Iterator[Turns]:
    made = Turns()
    turns_module.install(made)
    try:
        yield made
    finally:
        turns_module.install(None)


def run(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_thread_that_waits_lets_another_take_the_turn(turns: Turns) -> None:
    events: list[str] = []
    inside, done = threading.Event(), threading.Event()

    def waiter() -> None:
        turns.take()
        with waiting():
            events.append("waiting")
            inside.set()
            done.wait(STUCK)
        events.append("back" if turns.held() else "back without the turn")
        turns.give()

    first = run(waiter)
    assert inside.wait(STUCK)
    turns.take()  # while the other waits: free
    events.append("taken by another")
    turns.give()
    done.set()
    first.join(STUCK)
    assert events == ["waiting", "taken by another", "back"]


def test_waiting_without_the_turn_gives_nothing_away(turns: Turns) -> None:
    """A thread that holds no turn (a command, the sweeper) waits as it always did."""
    turns.take()
    try:
        outside: list[bool] = []
        thread = run(lambda: outside.append(_wait_and_see(turns)))
        thread.join(STUCK)
        assert outside == [False] and turns.held()  # this thread's turn was not given away
    finally:
        turns.give()


def _wait_and_see(turns: Turns) -> bool:
    with waiting():
        return turns.held()


def test_a_thread_back_from_a_wait_goes_before_the_next_request(turns: Turns) -> None:
    """The holder between two requests (``pass_on``) hands the turn to a thread back from a
    wait, which then serves before the holder takes its next request."""
    order: list[str] = []
    inside, finish = threading.Event(), threading.Event()

    def waiter() -> None:
        turns.take()
        with waiting():
            inside.set()
            finish.wait(STUCK)
        order.append("the request that waited goes on")
        turns.give()

    thread = run(waiter)
    assert inside.wait(STUCK)
    turns.take()  # the holder, serving
    finish.set()
    deadline = time.monotonic() + STUCK
    while not turns.returning and time.monotonic() < deadline:
        time.sleep(0.001)  # (back from its wait, queued for the turn)
    assert turns.returning, "the thread back from its wait is queued for the turn"
    turns.pass_on()  # between two requests
    order.append("the holder's next request")
    turns.give()
    thread.join(STUCK)
    assert order == ["the request that waited goes on", "the holder's next request"]


def test_a_lock_held_across_a_wait_does_not_stop_the_process(turns: Turns) -> None:
    """A thread holds a lock across a wait; the thread that took the turn meanwhile asks for
    that lock. Back from its wait, the first cannot have the turn, and the second never gets
    the lock: after ``PATIENCE`` the first goes on without the turn, and both finish."""
    lock = threading.Lock()
    inside, other_waits = threading.Event(), threading.Event()
    finished: list[str] = []

    def holder_of_the_lock() -> None:
        turns.take()
        with lock, waiting():
            inside.set()
            other_waits.wait(STUCK)
            time.sleep(0.05)  # (the other is blocked on the lock by now)
        finished.append("first")
        if turns.held():
            turns.give()

    def next_in_turn() -> None:
        turns.take()
        other_waits.set()
        with lock:
            finished.append("second")
        turns.give()

    first = run(holder_of_the_lock)
    assert inside.wait(STUCK)
    second = run(next_in_turn)
    first.join(STUCK)
    second.join(STUCK)
    assert sorted(finished) == ["first", "second"], finished


@pytest.mark.django_db(transaction=True)
def test_what_may_wait_on_the_database_is_done_outside_the_turn(turns: Turns) -> None:
    """On PostgreSQL every statement is a round trip: each gives the turn away. SQLite runs in
    the process: its statements keep the turn, but the start of a transaction, which waits while
    another connection writes."""
    seen: list[tuple[str, bool]] = []

    def probe(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append((sql.split()[0].upper(), turns.held()))  # (inside the turns' wrapper)
        return execute(sql, params, many, context)

    def work() -> None:
        try:
            turns.take()
            with connection.execute_wrapper(probe):
                with transaction.atomic():
                    Location.objects.count()
                # Outside a transaction, a write takes the write lock itself: it may wait.
                Location.objects.filter(pk=0).update(name="nowhere")
            turns.give()
        finally:
            connections.close_all()

    run(work).join(STUCK)
    if connection.vendor == "sqlite":
        assert ("BEGIN", False) in seen and ("SELECT", True) in seen, seen
        assert ("UPDATE", False) in seen, seen
    else:
        assert ("SELECT", False) in seen and all(not held for _, held in seen), seen


@pytest.mark.django_db(transaction=True)
def test_a_slow_query_lets_another_thread_serve(turns: Turns) -> None:
    """A statement the server takes its time over lets another thread take the turn while it
    runs, on a connection made after the turns were installed."""
    if connection.vendor != "postgresql":
        pytest.skip("a statement that waits on the server: PostgreSQL's pg_sleep")
    events: list[str] = []
    started = threading.Event()

    def query() -> None:
        try:
            turns.take()
            started.set()
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_sleep(0.3)")
                cursor.fetchall()
            events.append("query answered")
            turns.give()
        finally:
            connections.close_all()

    thread = run(query)
    assert started.wait(STUCK)
    turns.take()  # free while the query runs
    events.append("turn taken during the query")
    turns.give()
    thread.join(STUCK)
    assert events == ["turn taken during the query", "query answered"]


def test_two_list_pages_count_their_rows_side_by_side() -> None:
    """A list page's count is computed per page (a query or a round trip): one page's count
    never waits for another's. (``functools.cached_property`` locked every instance of the
    class on Python 3.11 while one computed: counts of concurrent misses queued, and a thread
    that gave its turn away in the count waited for it behind the thread waiting for that
    lock.)"""
    release = threading.Event()

    class Rows(list):
        def __init__(self, count: Callable[[], int]) -> None:
            super().__init__()
            self.counter = count

        def count(self) -> int:  # (Django's Paginator asks the object list)
            return self.counter()

    slow = CachedCountPaginator(Rows(lambda: release.wait(STUCK) and 7), 5)
    fast = CachedCountPaginator(Rows(lambda: 3), 5)
    counts: list[int] = []
    first = run(lambda: counts.append(slow.count))
    time.sleep(0.05)  # (the first is computing)
    second = run(lambda: counts.append(fast.count))
    second.join(STUCK / 2)
    answered_before = list(counts)
    release.set()
    first.join(STUCK)
    assert answered_before == [3], "the second page's count waited for the first's"
    assert sorted(counts) == [3, 7]


def test_an_answer_is_waited_for_on_any_descriptor(turns: Turns) -> None:
    """A process with a thousand connections open gets descriptors above 1023, which
    ``select`` refuses: the read of an answer waits on one as on any other."""
    ours, theirs = socket.socketpair()
    try:
        with socket.socket(fileno=os.dup2(ours.fileno(), 1500)) as sock:
            assert sock.fileno() == 1500
            theirs.sendall(b"+OK\r\n")
            turns.take()
            with waiting_for(sock):
                kept = turns.held()  # (the answer was there: the turn kept)
                assert sock.recv(16) == b"+OK\r\n"
            assert kept and turns.held()
            turns.give()
    finally:
        ours.close()
        theirs.close()
