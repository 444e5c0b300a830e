"""Any committed change reaches every cache, whoever made it (docs/design.md, "A write").

The database counts the changes of each namespace by triggers (``performance.cache.changes``);
the sweep (``sync``) applies what the cache has not taken in. These tests write the way the
service never does — ``QuerySet.update()``, ``bulk_update``, raw SQL, a token changed in place —
and read through the API as another process's server would, on both backends and (in the
PostgreSQL pass of ``make test``) on both databases.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance.cache import changes, sync
from performance.cache.keys import applied_key
from tests.factories import LocationFactory, WorkstationFactory
from workstations.models import Location, Workstation

from .support import JSON, LIST, LOCATIONS

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


def versions() -> dict[str, int]:
    return changes.versions()


def token_client(user) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def notes(client: APIClient, path: str = LIST) -> tuple[str, list[str]]:
    response = client.get(path, **JSON)
    assert response.status_code == 200, response.content
    return response["X-Cache"], [row["notes"] for row in response.json()["results"]]


@pytest.fixture
def machine(db):
    return WorkstationFactory(notes="before")


# What the database counts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("write", "counted"),
    [
        # The locations show of a workstation only where it is (``shown``).
        (lambda ws: Workstation.objects.filter(pk=ws.pk).update(notes="x"), {"workstations"}),
        (
            lambda ws: Workstation.objects.bulk_update([_noted(ws, "y")], ["notes"]),
            {"workstations"},
        ),
        (
            lambda ws: Workstation.objects.filter(pk=ws.pk).update(location=None),
            {"workstations", "locations"},
        ),
        (lambda ws: Workstation.objects.filter(pk=ws.pk).delete(), {"workstations", "locations"}),
        (
            lambda ws: Location.objects.filter(pk=ws.location_id).update(name="Renamed"),
            {"workstations", "locations"},
        ),
        (lambda ws: _raw("UPDATE workstations_workstation SET notes = 'raw'"), {"workstations"}),
        (lambda ws: User.objects.update(first_name="Zoe"), {"auth", "workstations"}),
        (lambda ws: User.objects.update(is_active=False), {"auth", "workstations"}),
        (lambda ws: _raw("DELETE FROM authtoken_token"), {"auth"}),
        (lambda ws: Token.objects.update(created="2020-01-01T00:00:00Z"), {"auth"}),
        (lambda ws: Group.objects.create(name="auditors"), {"auth"}),
        (
            lambda ws: User.objects.first().user_permissions.add(Permission.objects.first()),
            {"auth"},
        ),
    ],
    ids=[
        "update",
        "bulk_update",
        "moved",
        "delete",
        "location renamed",
        "raw SQL",
        "user renamed",
        "user deactivated",
        "tokens deleted by SQL",
        "token changed in place",
        "group created",
        "permission granted",
    ],
)
def test_every_way_of_writing_is_counted_for_the_namespaces_that_show_it(
    machine, reader, write, counted
):
    Token.objects.get_or_create(user=reader)
    before = versions()

    write(machine)

    after = versions()
    assert {name for name in after if after[name] > before.get(name, 0)} == counted


def _noted(workstation: Workstation, text: str) -> Workstation:
    workstation.notes = text
    return workstation


def _raw(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def test_a_login_alone_counts_as_no_change(reader):
    before = versions()
    User.objects.filter(pk=reader.pk).update(last_login="2026-01-01T00:00:00Z")
    assert versions() == before


def test_a_change_that_rolls_back_counts_nothing(machine):
    before = versions()
    with pytest.raises(RuntimeError), transaction.atomic():
        Workstation.objects.update(notes="never")
        raise RuntimeError("rolled back")
    assert versions() == before


def test_the_triggers_survive_a_migration_that_rebuilds_the_table(machine):
    """SQLite drops a table's triggers when a migration rebuilds it; they are installed again
    after every migrate (post_migrate), and installing twice leaves one set."""
    assert changes.install_triggers() == changes.install_triggers() > 0
    before = versions()
    Workstation.objects.update(notes="after reinstall")
    assert versions()["workstations"] == before["workstations"] + 1


# What the servers serve ----------------------------------------------------------------------


def test_a_write_without_a_signal_is_served_after_the_sweep(cache_backend, machine, reader):
    client = token_client(reader)
    assert sync.sync()  # the server has applied everything so far
    assert notes(client) == ("MISS", ["before"])
    assert notes(client) == ("HIT", ["before"])

    Workstation.objects.update(notes="updated without a signal")
    assert notes(client) == ("HIT", ["before"])  # until this process's sweep runs

    assert sync.sync()
    assert notes(client) == ("MISS", ["updated without a signal"])
    assert notes(client, LOCATIONS)[0] == "MISS"  # locations show workstation counts


def test_a_location_renamed_by_sql_reaches_workstation_lists(cache_backend, reader):
    WorkstationFactory(location=LocationFactory(name="Old name"))
    client = token_client(reader)
    assert sync.sync()
    assert client.get(LIST, **JSON).json()["results"][0]["location_name"] == "Old name"

    _raw("UPDATE workstations_location SET name = 'New name'")
    assert sync.sync()

    assert client.get(LIST, **JSON).json()["results"][0]["location_name"] == "New name"


@pytest.mark.parametrize(
    "revoke",
    [
        lambda user: User.objects.filter(pk=user.pk).update(is_active=False),
        lambda user: Token.objects.filter(user=user).update(key="0" * 40),
        lambda user: _raw("DELETE FROM authtoken_token"),
    ],
    ids=["deactivated by update()", "key changed by update()", "deleted by SQL"],
)
def test_a_token_revoked_by_any_path_is_refused_after_the_sweep(
    cache_backend, machine, reader, revoke
):
    client = token_client(reader)
    assert sync.sync()
    assert client.get(LIST, **JSON).status_code == 200
    assert client.get(LIST, **JSON)["X-Cache"] == "HIT"

    revoke(reader)
    assert sync.sync()

    assert client.get(LIST, **JSON).status_code == 401
    assert client.get(f"/api/workstations/{machine.pk}/", **JSON).status_code == 401
    assert client.patch(f"/api/workstations/{machine.pk}/", {"notes": "x"}).status_code == 401


def test_a_sweep_with_nothing_new_bumps_nothing(cache_backend, machine, reader):
    client = token_client(reader)
    assert sync.sync()
    notes(client)
    assert sync.sync()
    assert notes(client)[0] == "HIT"
    assert sync.behind() == {}


def test_a_database_that_went_back_is_taken_as_the_truth(cache_backend, machine, reader):
    """A database restored from a backup (or a test's flush) counts from lower versions than
    the cache recorded: the sweep invalidates and records the database's versions."""
    client = token_client(reader)
    Workstation.objects.update(notes="counted")
    assert sync.sync()
    notes(client)
    changes._model().objects.update(version=0)

    assert sync.sync()

    assert notes(client)[0] == "MISS"
    assert sync.behind() == {}


def test_the_first_sweep_of_a_fresh_cache_invalidates_nothing(cache_backend, machine, reader):
    """A new cache (a first start, a Redis restarted empty) has no generation under which
    anything could be stale: the sweep records the database's versions without a bump, so a
    server that warms its cache at start does not lose it to its first sweep."""
    client = token_client(reader)
    assert sync.sync()  # at start, before any request: nothing to invalidate, versions recorded
    assert sync.behind() == {}
    assert notes(client)[0] == "MISS"
    assert sync.sync()
    assert notes(client)[0] == "HIT"


def test_a_generation_without_a_recorded_version_is_bumped(cache_backend, machine, reader):
    """Entries stored before versions were recorded (an upgrade, a lost key) may be older than
    a change: a generation with no recorded version is bumped by the sweep."""
    client = token_client(reader)
    assert notes(client)[0] == "MISS"
    assert notes(client)[0] == "HIT"
    cache_backend.delete(applied_key("workstations"))  # recorded by no version of the code
    assert sync.sync()
    assert notes(client)[0] == "MISS"
