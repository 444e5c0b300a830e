"""Concurrent writes: each client's change survives the other's, or is refused by name.

Clients run in threads of their own, each with its own database connection, against the test
database (SQLite, or PostgreSQL on that pass). A ``connection.execute_wrapper`` (Django's own hook
on each thread's connection) holds each request at the point where the race is lost: a change
right after it has read the object (``after_reading``), a create right before its first write,
every check of its values done (``before_writing``). So the interleaving that lost a change, or
answered ``__all__``, happens every time instead of by chance. Then the requests are let go one
after the other (``in_turn``) or all at once (``together``: PostgreSQL, whose row and index locks
make the later ones wait; SQLite's shared in-memory test database refuses a second writer at
once instead of waiting, so there the writes go in turn).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection, connections
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory, WorkstationFactory
from workstations.models import Workstation

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/api/workstations/"
TABLE = "workstations_workstation"
WAIT = 20  # seconds: only ever reached when a request is stuck, which fails the test


def after_reading(table: str) -> Callable[[str], bool]:
    """Hold once the request has read ``table`` (the view loading the object), before its next
    statement: the read's cursor is done with by then, and holds no lock on SQLite."""
    seen = False

    def hold_before(sql: str) -> bool:
        nonlocal seen
        if seen:
            return True
        plain_read = sql.lstrip().upper().startswith("SELECT") and "FOR UPDATE" not in sql.upper()
        seen = plain_read and f'"{table}"' in sql
        return False

    return hold_before


def before_writing(sql: str) -> bool:
    """Hold before the request's first write: every check it makes before (the serializer's)
    is done; on SQLite, before the service's transaction takes the write lock (``BEGIN``)."""
    return sql.lstrip().upper().startswith(("BEGIN", "INSERT", "UPDATE", "DELETE"))


@contextmanager
def paused(
    hold_before: Callable[[str], bool], held: threading.Event, go: threading.Event
) -> Iterator[None]:
    """Hold this thread's request before the first statement ``hold_before`` names, until
    ``go``; ``held`` tells that it got there."""
    holding = True

    def wrapper(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal holding
        if holding and hold_before(sql):
            holding = False
            held.set()
            assert go.wait(WAIT), "the test never let this request go on"
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


class PausedRequest:
    """One request in a thread of its own, held where ``hold_before`` says."""

    def __init__(
        self,
        client: APIClient,
        method: str,
        path: str,
        hold_before: Callable[[str], bool],
        **kwargs: Any,
    ):
        self.read, self.go = threading.Event(), threading.Event()
        self.response: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(client, method, path, hold_before, kwargs), daemon=True
        )

    def _run(
        self, client: APIClient, method: str, path: str, hold_before: Callable, kwargs: dict
    ) -> None:
        try:
            with paused(hold_before, self.read, self.go):
                self.response = getattr(client, method)(path, format="json", **kwargs)
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            connections.close_all()

    def start(self) -> PausedRequest:
        self.thread.start()
        assert self.read.wait(WAIT), "the request never got to where it is held"
        return self

    def finish(self) -> Any:
        self.go.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the request did not finish"
        if self.error is not None:
            raise self.error
        return self.response


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def clients() -> tuple[APIClient, APIClient]:
    return (
        token_client(UserFactory(username="alice", is_staff=True, is_superuser=True)),
        token_client(UserFactory(username="bob", is_staff=True, is_superuser=True)),
    )


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


ORDERS = ["in_turn", pytest.param("together", marks=pytest.mark.postgres)]


def _release(first: PausedRequest, second: PausedRequest, order: str) -> tuple[Any, Any]:
    if order == "together":
        if not on_postgresql():
            pytest.skip("two writers at once: PostgreSQL only (see the module docstring)")
        first.go.set()
        second.go.set()
    return first.finish(), second.finish()


@pytest.mark.parametrize("order", ORDERS)
def test_concurrent_patches_of_different_fields_keep_both(clients, order):
    """Alice changes the notes, Bob the department, both from the same version: both stay."""
    workstation = WorkstationFactory(notes="", department="Engineering")
    path = f"{LIST}{workstation.pk}/"
    alice, bob = clients
    first = PausedRequest(alice, "patch", path, after_reading(TABLE), data={"notes": "A"})
    second = PausedRequest(bob, "patch", path, after_reading(TABLE), data={"department": "B"})
    first.start()
    second.start()
    answers = _release(first, second, order)

    assert [answer.status_code for answer in answers] == [200, 200], [
        answer.content for answer in answers
    ]
    stored = Workstation.objects.get(pk=workstation.pk)
    assert (stored.notes, stored.department) == ("A", "B")
    # The later answer shows the other client's change too: it is what is stored now.
    later = answers[1].json() if order == "in_turn" else None
    if later is not None:
        assert (later["notes"], later["department"]) == ("A", "B")


@pytest.mark.parametrize("order", ORDERS)
def test_two_writes_with_the_same_if_match_one_wins_the_other_is_412(clients, order):
    """Both clients read the same version and send its ETag: the check is made on the row
    locked for the write, so the second sees the first's change and is refused."""
    workstation = WorkstationFactory(notes="", department="Engineering")
    path = f"{LIST}{workstation.pk}/"
    alice, bob = clients
    etag = alice.get(path)["ETag"]
    first = PausedRequest(
        alice, "patch", path, after_reading(TABLE), data={"notes": "A"}, HTTP_IF_MATCH=etag
    )
    second = PausedRequest(
        bob, "patch", path, after_reading(TABLE), data={"notes": "B"}, HTTP_IF_MATCH=etag
    )
    first.start()
    second.start()
    answers = _release(first, second, order)

    assert sorted(answer.status_code for answer in answers) == [200, 412]
    winner = next(answer for answer in answers if answer.status_code == 200)
    loser = next(answer for answer in answers if answer.status_code == 412)
    assert Workstation.objects.get(pk=workstation.pk).notes == winner.json()["notes"]
    assert loser["ETag"] == winner["ETag"]  # the version to read again


# A unique value taken by a concurrent create ----------------------------------------------------

RACERS = 5


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("field", ["serial_number", "hostname", "asset_tag"])
def test_every_loser_of_a_unique_race_is_told_which_field(clients, order, field):
    """Clients create workstations sharing one unique value at once, each having checked it was
    free: one is created, every other one is a 400 naming the field (never ``__all__``)."""
    client = clients[0]
    requests = []
    for n in range(RACERS):
        body = {"asset_tag": f"AT-RACE-{n}", "hostname": f"ws-race-{n}", "serial_number": f"S{n}"}
        body[field] = {"serial_number": "SN-RACE", "hostname": "ws-race", "asset_tag": "AT-R"}[
            field
        ]
        requests.append(PausedRequest(client, "post", LIST, before_writing, data=body))
    for request in requests:
        request.start()  # every one has checked the value: it was free
    if order == "together":
        if not on_postgresql():
            pytest.skip("several writers at once: PostgreSQL only (see the module docstring)")
        for request in requests:
            request.go.set()
    answers = [request.finish() for request in requests]

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] + [400] * (RACERS - 1), [answer.content for answer in answers]
    for answer in answers:
        if answer.status_code == 400:
            assert list(answer.json()) == [field], answer.json()
    assert Workstation.objects.count() == 1


def before_updating(sql: str) -> bool:
    """Hold a change right before its UPDATE: the row locked, every check of its values done."""
    return sql.lstrip().upper().startswith("UPDATE") and f'"{TABLE}"' in sql


@pytest.mark.postgres
def test_a_change_to_a_unique_value_taken_meanwhile_is_told_which_field(clients):
    """Bob renames a machine to a free hostname; between his checks and his UPDATE, Alice
    creates a machine with that name. Bob's change is a 400 naming the hostname, and changes
    nothing: a change that sets a unique value keeps the savepoint that lets it say so.
    (PostgreSQL only: on SQLite Bob's transaction holds the write lock from its start.)"""
    if not on_postgresql():
        pytest.skip("a create while a change is under way: PostgreSQL only (module docstring)")
    alice, bob = clients
    machine = WorkstationFactory(hostname="ws-old")
    change = PausedRequest(
        bob, "patch", f"{LIST}{machine.pk}/", before_updating, data={"hostname": "ws-new"}
    )
    change.start()
    created = alice.post(
        LIST,
        {"asset_tag": "AT-NEW", "hostname": "ws-new", "serial_number": "SN-NEW"},
        format="json",
    )
    assert created.status_code == 201, created.content
    answer = change.finish()

    assert answer.status_code == 400, answer.content
    assert list(answer.json()) == ["hostname"], answer.json()
    assert Workstation.objects.get(pk=machine.pk).hostname == "ws-old"
