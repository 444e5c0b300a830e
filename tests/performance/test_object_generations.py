"""A write to one workstation invalidates that workstation, not the others (docs/design.md,
"Invariants", 6).

What a reader of the API sees after a change to one workstation row, whoever makes it (the API,
the services, the admin, ``QuerySet.update()`` or raw SQL followed by the sweep): that
workstation's detail and history and every collection of the namespace (lists, summary, change
log) are fresh, while the other workstations' details and histories stay cached (``X-Cache:
HIT``). Changes that reach many workstations (a location or an assignee renamed, a bulk update
of hundreds of rows) are served fresh on every workstation they touch. And no interleaving of an
outside change with a write through the API loses the outside change once the sweep has run.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from performance import cache as perf_cache
from performance.cache import changes, generations, sync
from performance.cache.generations import OBJECTS, Step
from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import services
from workstations.choices import Status
from workstations.models import Workstation

from . import test_invalidation
from .support import LIST, LOCATIONS, SUMMARY, get
from .test_invalidation import committed, detail, fresh, warm

#: ws-1, notes "original", at a location of its own (the fixture of test_invalidation).
workstation = test_invalidation.workstation

CHANGES = "/api/changes/"

User = get_user_model()


@pytest.fixture
def other(workstation):
    return WorkstationFactory(hostname="ws-2", notes="other", location=workstation.location)


def history(ws: Workstation) -> str:
    return f"{detail(ws)}history/"


def sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


# Ways of changing one workstation: each returns the field it changed and the value to expect.


def by_api(ws, editor_client, staff):
    response = editor_client.patch(detail(ws), {"notes": "changed"}, format="json")
    assert response.status_code == 200, response.json()
    return "notes", "changed"


def by_service(ws, editor_client, staff):
    services.workstation_update(workstation=ws, data={"notes": "changed"})
    return "notes", "changed"


def by_admin(ws, editor_client, staff):
    admin = Client()
    admin.force_login(staff)
    response = admin.post(
        "/admin/workstations/workstation/",
        {"action": "mark_in_repair", "_selected_action": [ws.pk]},
    )
    assert response.status_code == 302
    return "status", Status.IN_REPAIR


def by_update_then_sweep(ws, editor_client, staff):
    Workstation.objects.filter(pk=ws.pk).update(notes="changed")
    assert sync.sync()
    return "notes", "changed"


def by_sql_then_sweep(ws, editor_client, staff):
    sql("UPDATE workstations_workstation SET notes = 'changed' WHERE id = %s", ws.pk)
    assert sync.sync()
    return "notes", "changed"


every_way_of_writing = pytest.mark.parametrize(
    "write",
    [by_api, by_service, by_admin, by_update_then_sweep, by_sql_then_sweep],
    ids=["api", "service", "admin", "update()+sweep", "sql+sweep"],
)


def outside_update(ws, notes: str) -> None:
    Workstation.objects.filter(pk=ws.pk).update(notes=notes)


def outside_sql(ws, notes: str) -> None:
    sql("UPDATE workstations_workstation SET notes = %s WHERE id = %s", notes, ws.pk)


outside_writes = pytest.mark.parametrize(
    "change_outside", [outside_update, outside_sql], ids=["update()", "sql"]
)


# One workstation changed -----------------------------------------------------------------------


@committed
@every_way_of_writing
def test_a_write_to_one_workstation_is_served_at_once_in_its_detail_and_every_collection(
    cache_backend, api, editor_client, staff, workstation, other, write
):
    assert sync.sync()
    warm(api, detail(workstation), LIST, f"{LIST}?ordering=-id", SUMMARY, CHANGES)

    field, value = write(workstation, editor_client, staff)

    assert fresh(api, detail(workstation)).json()[field] == value
    rows = {row["hostname"]: row[field] for row in fresh(api, LIST).json()["results"]}
    assert rows["ws-1"] == value
    assert fresh(api, f"{LIST}?ordering=-id").json()["results"][1][field] == value
    summary = get(api, SUMMARY)
    assert summary.json()["total"] == 2
    assert summary.json()["by_status"][Status.IN_REPAIR] == (field == "status")
    # The summary counts by status and location: a change of the notes leaves it cached.
    assert summary.headers["X-Cache"] == ("MISS" if field == "status" else "HIT")
    fresh(api, CHANGES)


@committed
@every_way_of_writing
def test_a_write_to_one_workstation_leaves_the_others_details_cached(
    cache_backend, api, editor_client, staff, workstation, other, write
):
    assert sync.sync()
    warm(api, detail(other), history(other))

    write(workstation, editor_client, staff)

    assert get(api, detail(other)).headers["X-Cache"] == "HIT"
    assert get(api, history(other)).headers["X-Cache"] == "HIT"
    assert get(api, detail(other)).json()["notes"] == "other"


@committed
def test_an_api_write_is_served_at_once_in_the_workstations_history_and_the_change_log(
    cache_backend, api, editor_client, workstation
):
    warm(api, history(workstation), CHANGES)
    changes_before = get(api, CHANGES).json()["count"]

    response = editor_client.patch(detail(workstation), {"notes": "patched"}, format="json")
    assert response.status_code == 200

    newest = fresh(api, history(workstation)).json()["results"][0]
    assert newest["changes"]["notes"] == {"before": "original", "after": "patched"}
    assert fresh(api, CHANGES).json()["count"] == changes_before + 1


# Outside changes interleaved with writes through the API -----------------------------------


@committed
@outside_writes
def test_an_outside_change_is_not_lost_to_an_api_write_of_another_workstation(
    cache_backend, api, editor_client, workstation, other, change_outside
):
    assert sync.sync()
    warm(api, detail(workstation), detail(other), LIST)

    change_outside(other, "changed outside")  # committed, not swept yet
    response = editor_client.patch(detail(workstation), {"notes": "patched"}, format="json")
    assert response.status_code == 200
    assert fresh(api, detail(workstation)).json()["notes"] == "patched"
    assert sync.sync()

    assert fresh(api, detail(other)).json()["notes"] == "changed outside"
    notes = {row["hostname"]: row["notes"] for row in get(api, LIST).json()["results"]}
    assert notes == {"ws-1": "patched", "ws-2": "changed outside"}


@committed
@outside_writes
def test_an_outside_change_after_an_api_write_of_the_same_workstation_is_served_after_the_sweep(
    cache_backend, api, editor_client, workstation, change_outside
):
    assert sync.sync()
    warm(api, detail(workstation))
    response = editor_client.patch(detail(workstation), {"notes": "patched"}, format="json")
    assert response.status_code == 200
    assert fresh(api, detail(workstation)).json()["notes"] == "patched"

    change_outside(workstation, "changed outside")
    assert sync.sync()

    assert fresh(api, detail(workstation)).json()["notes"] == "changed outside"


# Created and deleted ---------------------------------------------------------------------------


@committed
def test_a_deleted_workstation_is_gone_at_once_and_the_others_stay_cached(
    cache_backend, api, editor_client, workstation, other
):
    assert sync.sync()  # what the setup wrote (users, rows): taken in, as servers do
    warm(api, detail(workstation), detail(other), LIST)

    assert editor_client.delete(detail(workstation)).status_code == 204

    assert get(api, detail(workstation)).status_code == 404
    assert [row["id"] for row in fresh(api, LIST).json()["results"]] == [other.pk]
    assert get(api, detail(other)).headers["X-Cache"] == "HIT"


@committed
def test_a_created_workstation_is_listed_at_once_and_the_others_stay_cached(
    cache_backend, api, editor_client, workstation, other
):
    assert sync.sync()  # what the setup wrote (users, rows): taken in, as servers do
    warm(api, detail(workstation), detail(other), LIST, SUMMARY)

    response = editor_client.post(
        LIST, {"asset_tag": "AT-NEW", "hostname": "ws-3", "serial_number": "SN-NEW"}, format="json"
    )
    assert response.status_code == 201, response.json()

    assert fresh(api, LIST).json()["count"] == 3
    assert fresh(api, SUMMARY).json()["total"] == 3
    assert get(api, f"{LIST}{response.json()['id']}/").json()["hostname"] == "ws-3"
    assert get(api, detail(workstation)).headers["X-Cache"] == "HIT"
    assert get(api, detail(other)).headers["X-Cache"] == "HIT"


# Changes that reach many workstations ---------------------------------------------------------


def rename_location_by_service(location):
    services.location_update(location=location, data={"name": "Renamed lab"})


def rename_location_by_sql_then_sweep(location):
    sql("UPDATE workstations_location SET name = 'Renamed lab' WHERE id = %s", location.pk)
    assert sync.sync()


@committed
@pytest.mark.parametrize(
    "rename",
    [rename_location_by_service, rename_location_by_sql_then_sweep],
    ids=["service", "sql"],
)
def test_a_renamed_location_is_served_in_every_workstation_there(
    cache_backend, api, workstation, other, rename
):
    assert sync.sync()
    warm(api, detail(workstation), detail(other))

    rename(workstation.location)

    assert fresh(api, detail(workstation)).json()["location_name"] == "Renamed lab"
    assert fresh(api, detail(other)).json()["location_name"] == "Renamed lab"


def rename_user_by_save(user):
    user.username = "alice.renamed"
    user.save()


def rename_user_by_update_then_sweep(user):
    User.objects.filter(pk=user.pk).update(username="alice.renamed")
    assert sync.sync()


@committed
@pytest.mark.parametrize(
    "rename", [rename_user_by_save, rename_user_by_update_then_sweep], ids=["save", "update()"]
)
def test_a_renamed_assignee_is_served_in_every_workstation_they_hold(cache_backend, api, rename):
    alice = UserFactory(username="alice")
    held = WorkstationFactory.create_batch(2, assigned_to=alice, status=Status.DEPLOYED)
    assert sync.sync()
    warm(api, *(detail(ws) for ws in held))

    rename(alice)

    for ws in held:
        assert fresh(api, detail(ws)).json()["assigned_to_username"] == "alice.renamed"


@committed
def test_a_bulk_update_of_many_rows_is_served_after_the_sweep(cache_backend, api, workstation):
    Workstation.objects.bulk_create(
        WorkstationFactory.build_batch(300, notes="before", location=workstation.location)
    )
    changed = list(Workstation.objects.filter(notes="before").order_by("pk"))
    assert len(changed) == 300
    assert sync.sync()
    sample = [changed[0], changed[150], changed[-1]]
    warm(api, LIST, *(detail(ws) for ws in sample))

    Workstation.objects.filter(pk__in=[ws.pk for ws in changed]).update(notes="bulk")
    assert sync.sync()

    for ws in sample:
        assert fresh(api, detail(ws)).json()["notes"] == "bulk"
    rows = fresh(api, LIST).json()["results"]
    assert {row["notes"] for row in rows if row["hostname"] != "ws-1"} == {"bulk"}


# The locations' responses show of a workstation only where it is --------------------------

LOCATIONS_READS = (LOCATIONS, f"{LOCATIONS}?ordering=-workstation_count")


@committed
def test_a_workstation_changed_in_place_leaves_the_locations_cached(
    cache_backend, api, editor_client, workstation
):
    assert sync.sync()
    warm(api, *LOCATIONS_READS, f"{LOCATIONS}{workstation.location_id}/")

    response = editor_client.patch(detail(workstation), {"notes": "moved the desk"}, format="json")
    assert response.status_code == 200, response.json()
    Workstation.objects.filter(pk=workstation.pk).update(status=Status.IN_REPAIR)
    assert sync.sync()

    for path in (*LOCATIONS_READS, f"{LOCATIONS}{workstation.location_id}/"):
        assert get(api, path).headers["X-Cache"] == "HIT", path


@committed
@pytest.mark.parametrize("how", ["api", "update"])
def test_a_workstation_moved_is_counted_at_once_at_both_locations(
    cache_backend, api, editor_client, workstation, how
):
    before, after = workstation.location, LocationFactory(name="Annex")
    assert sync.sync()
    warm(api, *LOCATIONS_READS)

    if how == "api":
        response = editor_client.patch(detail(workstation), {"location": after.pk}, format="json")
        assert response.status_code == 200, response.json()
    else:
        Workstation.objects.filter(pk=workstation.pk).update(location=after)
        assert sync.sync()

    counts = {
        row["id"]: row["workstation_count"] for row in fresh(api, LOCATIONS).json()["results"]
    }
    assert (counts[before.pk], counts[after.pk]) == (0, 1)


@committed
def test_the_locations_show_nothing_of_a_workstation_but_where_it_is(api, workstation):
    """What ``register_namespace(shown=...)`` declares for the locations: every other field of a
    workstation changed at once, and the locations' responses, computed afresh, are the same
    bytes (if a field were added to them that shows more, this fails until it is declared)."""
    paths = (*LOCATIONS_READS, f"{LOCATIONS}{workstation.location_id}/")
    before = {path: get(api, path).content for path in paths}

    unlike = WorkstationFactory.build(
        manufacturer="Lenovo",
        model_name="ThinkCentre",
        form_factor="laptop",
        os="Linux",
        os_version="24.04",
        cpu="AMD Ryzen 5",
        ram_gb=32,
        storage_gb=1024,
        status=Status.IN_REPAIR,
        department="Finance",
        purchase_date=datetime.date(2020, 2, 2),
        purchase_cost=Decimal("1.00"),
        warranty_expires=datetime.date(2021, 2, 2),
        notes="elsewhere",
        assigned_to=None,
    )
    kept = {"id", "location", "created_at"}
    values = {
        field.attname: getattr(unlike, field.attname)
        for field in Workstation._meta.concrete_fields
        if field.name not in kept
    }
    values["updated_at"] = datetime.datetime(2021, 2, 2, tzinfo=datetime.UTC)
    assert Workstation.objects.filter(pk=workstation.pk).update(**values) == 1
    changed = Workstation.objects.get(pk=workstation.pk)
    assert {name: getattr(changed, name) for name in values} != {
        name: getattr(workstation, name) for name in values
    }
    perf_cache.invalidate("locations")

    assert {path: get(api, path).content for path in paths} == before


# What decides between one object and the whole namespace -----------------------------------


def _by_hand(ws):
    # A change counted without notes of its objects (``changes.count``: what a shell that
    # cannot reach the server's cache asks for).
    changes.count("workstations")


def _pruned(ws):
    changes.prune(changes.versions(["workstations"]))


def _many(ws):
    WorkstationFactory.create_batch(changes.MAX_OBJECTS + 1)


@committed
@pytest.mark.parametrize(
    "unvouched", [_by_hand, _pruned, _many], ids=["counted by hand", "notes pruned", "many"]
)
def test_versions_the_notes_cannot_vouch_for_invalidate_the_whole_namespace(
    cache_backend, api, workstation, other, unvouched
):
    assert sync.sync()
    warm(api, detail(other))

    Workstation.objects.filter(pk=workstation.pk).update(notes="changed")
    unvouched(workstation)
    assert sync.sync()

    assert fresh(api, detail(workstation)).json()["notes"] == "changed"
    assert fresh(api, detail(other)).json()["notes"] == "other"  # not vouched for: recomputed


@committed
def test_notes_that_do_not_reach_back_to_what_the_cache_took_in_invalidate_the_whole_namespace(
    cache_backend, api, workstation, other
):
    """A process read the notes after a version the cache has not taken in: a change before it
    (to ``other``) is in none of them, so the whole namespace goes (one script checks and
    bumps)."""
    assert sync.sync()
    warm(api, detail(other), detail(workstation))
    Workstation.objects.filter(pk=other.pk).update(notes="changed too")
    Workstation.objects.filter(pk=workstation.pk).update(notes="changed")
    version = changes.versions(["workstations"])["workstations"]

    results = generations.advance(
        [Step("workstations", version, OBJECTS, since=version - 1, objects=(str(workstation.pk),))]
    )

    assert results is not None and results[0] > 0  # a new generation of the namespace
    assert fresh(api, detail(other)).json()["notes"] == "changed too"
    assert fresh(api, detail(workstation)).json()["notes"] == "changed"


@committed
def test_writes_taken_in_at_once_by_two_processes_leave_the_other_objects_cached(
    cache_backend, api, workstation, other
):
    """Two writes commit; the second's process reads the notes of both before the first's has
    recorded its own: its step still covers every version the cache has not taken in, and
    invalidates their objects only — not the whole namespace."""
    third = WorkstationFactory(hostname="ws-3", notes="third", location=workstation.location)
    assert sync.sync()
    warm(api, detail(third))
    taken = changes.versions(["workstations"])["workstations"]
    Workstation.objects.filter(pk=workstation.pk).update(notes="first")
    Workstation.objects.filter(pk=other.pk).update(notes="second")
    version = changes.versions(["workstations"])["workstations"]
    first = [str(workstation.pk)]
    both = [str(workstation.pk), str(other.pk)]

    generations.advance([Step("workstations", version - 1, OBJECTS, since=taken, objects=first)])
    generations.advance([Step("workstations", version, OBJECTS, since=taken, objects=both)])

    assert get(api, detail(third)).headers["X-Cache"] == "HIT"
    assert fresh(api, detail(workstation)).json()["notes"] == "first"
    assert fresh(api, detail(other)).json()["notes"] == "second"
    assert sync.behind() == {}


def _reads_of_the_versions(queries: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"].lower()
        for query in queries.captured_queries
        if query["sql"].lstrip().upper().startswith("SELECT")
        and any(
            table in query["sql"].lower()
            for table in ("performance_namespaceversion", "performance_objectchange")
        )
    ]


@committed
def test_a_write_reads_its_versions_and_its_objects_in_one_statement(cache_backend, workstation):
    """After its commit, a write reads the versions of its namespaces and the objects they
    touched in one round trip to the database, not one plus one per namespace."""
    assert sync.sync()
    with CaptureQueriesContext(connection) as queries:
        services.workstation_update(workstation=workstation, data={"notes": "new"})
    (read,) = _reads_of_the_versions(queries)
    assert "performance_namespaceversion" in read and "performance_objectchange" in read
    assert sync.behind() == {}


@committed
def test_a_sweep_reads_the_versions_and_the_objects_in_one_statement(
    cache_backend, api, workstation, other
):
    """The sweep after changes made outside the services (``update()``) reads the database
    once, and still invalidates the objects changed only."""
    assert sync.sync()
    warm(api, detail(other))
    Workstation.objects.filter(pk=workstation.pk).update(notes="changed")
    Workstation.objects.filter(pk=workstation.pk).update(department="Finance")

    with CaptureQueriesContext(connection) as queries:
        assert sync.sync()

    assert len(_reads_of_the_versions(queries)) == 1
    assert get(api, detail(other)).headers["X-Cache"] == "HIT"
    assert fresh(api, detail(workstation)).json()["notes"] == "changed"
    assert sync.behind() == {}
