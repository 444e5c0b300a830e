"""Concurrent writes to one workstation: each client's change survives the other's.

Two API clients run in threads of their own, each with its own database connection, against the
test database (SQLite, or PostgreSQL on that pass). A ``connection.execute_wrapper`` (Django's
own hook on each thread's connection) holds each request right after it has read the
workstation, so that both have read the same version before either writes: the interleaving
that lost a change, made every time instead of by chance. Then the writes are let go, one after
the other (``in_turn``) or together (``together``: PostgreSQL, whose row locks make the second
wait; SQLite allows one writer at a time and refuses the other at once with a shared in-memory
test database).
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
WAIT = 20  # seconds: only ever reached when a request is stuck, which fails the test


@contextmanager
def paused_after_reading(table: str, read: threading.Event, go: threading.Event) -> Iterator[None]:
    """Hold this thread's request once it has read ``table`` (the view loading the object),
    before its next statement, until ``go``; ``read`` tells that it got there. (Held before the
    next statement, not right after the read: the read's cursor is done with by then, and holds
    no lock on SQLite.)"""
    state = {"read": False, "held": False}

    def wrapper(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        if state["read"] and not state["held"]:
            state["held"] = True
            read.set()
            assert go.wait(WAIT), "the test never let this request go on"
        result = execute(sql, params, many, context)
        plain_read = sql.lstrip().upper().startswith("SELECT") and "FOR UPDATE" not in sql.upper()
        if plain_read and f'"{table}"' in sql:
            state["read"] = True
        return result

    with connection.execute_wrapper(wrapper):
        yield


class PausedRequest:
    """One request in a thread of its own, paused after it read ``table``."""

    def __init__(self, client: APIClient, method: str, path: str, table: str, **kwargs: Any):
        self.read, self.go = threading.Event(), threading.Event()
        self.response: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(client, method, path, table, kwargs), daemon=True
        )

    def _run(self, client: APIClient, method: str, path: str, table: str, kwargs: dict) -> None:
        try:
            with paused_after_reading(table, self.read, self.go):
                self.response = getattr(client, method)(path, format="json", **kwargs)
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            connections.close_all()

    def start(self) -> PausedRequest:
        self.thread.start()
        assert self.read.wait(WAIT), "the request never read the object"
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
    first = PausedRequest(alice, "patch", path, "workstations_workstation", data={"notes": "A"})
    second = PausedRequest(bob, "patch", path, "workstations_workstation", data={"department": "B"})
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
        alice, "patch", path, "workstations_workstation", data={"notes": "A"}, HTTP_IF_MATCH=etag
    )
    second = PausedRequest(
        bob, "patch", path, "workstations_workstation", data={"notes": "B"}, HTTP_IF_MATCH=etag
    )
    first.start()
    second.start()
    answers = _release(first, second, order)

    assert sorted(answer.status_code for answer in answers) == [200, 412]
    winner = next(answer for answer in answers if answer.status_code == 200)
    loser = next(answer for answer in answers if answer.status_code == 412)
    assert Workstation.objects.get(pk=workstation.pk).notes == winner.json()["notes"]
    assert loser["ETag"] == winner["ETag"]  # the version to read again
