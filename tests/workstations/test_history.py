"""The change history: every write path leaves an entry (who, when, fields before and after),
served by the API and the admin; check-out and check-in; the assignee rules."""

from __future__ import annotations

import csv
import datetime
import getpass
from io import StringIO

import pytest
from auditlog.models import LogEntry
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from performance import cache as perf_cache
from performance.cache import changes
from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import services
from workstations.choices import Status
from workstations.models import Location, Workstation

pytestmark = pytest.mark.django_db

LIST = "/api/workstations/"
CHANGES = "/api/changes/"
WS_CHANGELIST = "/admin/workstations/workstation/"


def entries_of(obj: Workstation | Location) -> list[LogEntry]:
    """The recorded changes of one object, newest first."""
    return list(LogEntry.objects.get_for_object(obj).order_by("-timestamp", "-id"))


def actor_of(entry: LogEntry) -> str:
    return entry.additional_data["actor"]


@pytest.fixture
def staff_browser(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def zoe(db):
    return UserFactory(username="zoe")


# Every write path leaves an entry ------------------------------------------------------------


def test_api_create_patch_and_delete_are_recorded_with_the_user_and_fields(editor_client, editor):
    response = editor_client.post(
        LIST, {"asset_tag": "AT-H1", "hostname": "h1", "status": "staged"}, format="json"
    )
    assert response.status_code == 201, response.json()
    pk = response.json()["id"]
    assert (
        editor_client.patch(f"{LIST}{pk}/", {"notes": "new disk"}, format="json").status_code == 200
    )
    assert editor_client.delete(f"{LIST}{pk}/").status_code == 204

    created, updated, deleted = LogEntry.objects.filter(object_id=pk).order_by("id")
    assert [e.action for e in (created, updated, deleted)] == [
        LogEntry.Action.CREATE,
        LogEntry.Action.UPDATE,
        LogEntry.Action.DELETE,
    ]
    assert {e.actor_id for e in (created, updated, deleted)} == {editor.pk}
    assert {actor_of(e) for e in (created, updated, deleted)} == {"editor"}
    assert created.changes["hostname"] == [None, "h1"]
    assert updated.changes == {"notes": ["", "new disk"]}


def test_admin_form_change_is_recorded_with_the_staff_user(staff_browser, staff):
    workstation = WorkstationFactory(hostname="form-host", location=None, serial_number="")
    response = staff_browser.post(
        f"{WS_CHANGELIST}{workstation.pk}/change/",
        {
            "asset_tag": workstation.asset_tag,
            "hostname": "form-host",
            "status": Status.IN_REPAIR,
            "form_factor": "desktop",
            **dict.fromkeys(
                [
                    "assigned_to",
                    "department",
                    "manufacturer",
                    "model_name",
                    "serial_number",
                    "cpu",
                    "ram_gb",
                    "storage_gb",
                    "os",
                    "os_version",
                    "mac_address",
                    "ip_address",
                    "location",
                    "purchase_date",
                    "purchase_cost",
                    "warranty_expires",
                    "last_audit_date",
                    "notes",
                ],
                "",
            ),
        },
    )
    assert response.status_code == 302
    latest = entries_of(workstation)[0]
    assert latest.actor_id == staff.pk
    assert latest.changes["status"] == ["staged", "in_repair"]


def test_admin_bulk_action_records_one_entry_per_workstation(staff_browser, staff, zoe):
    chosen = [
        WorkstationFactory(status=Status.DEPLOYED, assigned_to=zoe),
        WorkstationFactory(status=Status.STAGED),
    ]
    response = staff_browser.post(
        WS_CHANGELIST,
        {"action": "retire", ACTION_CHECKBOX_NAME: [w.pk for w in chosen]},
        follow=True,
    )
    assert response.status_code == 200
    deployed, staged = (entries_of(w)[0] for w in chosen)
    assert deployed.changes == {"status": ["deployed", "retired"], "assigned_to": ["zoe", None]}
    assert staged.changes == {"status": ["staged", "retired"]}
    assert {deployed.actor_id, staged.actor_id} == {staff.pk}


def test_admin_bulk_edit_records_one_entry_per_workstation(staff_browser, staff):
    """The bulk edit writes with ``bulk_update``, which sends no signal: the service records
    each machine's change itself, as the admin's user."""
    lab = LocationFactory(name="Lab")
    chosen = WorkstationFactory.create_batch(2, department="Engineering", status=Status.STAGED)
    response = staff_browser.post(
        WS_CHANGELIST,
        {
            "action": "bulk_edit",
            ACTION_CHECKBOX_NAME: [w.pk for w in chosen],
            "apply": "yes",
            "location": lab.pk,
            "department": "Finance",
        },
        follow=True,
    )
    assert response.status_code == 200
    for workstation in chosen:
        latest = entries_of(workstation)[0]
        assert latest.actor_id == staff.pk
        assert latest.changes["department"] == ["Engineering", "Finance"]
        assert latest.changes["location"][1] == "Lab"


def test_admin_delete_selected_records_each_workstation(staff_browser, staff):
    chosen = WorkstationFactory.create_batch(2)
    staff_browser.post(
        WS_CHANGELIST,
        {"action": "delete_selected", "post": "yes", ACTION_CHECKBOX_NAME: [w.pk for w in chosen]},
    )
    assert not Workstation.objects.exists()
    deleted = LogEntry.objects.filter(action=LogEntry.Action.DELETE)
    assert sorted(deleted.values_list("object_id", flat=True)) == sorted(w.pk for w in chosen)
    assert {e.actor_id for e in deleted} == {staff.pk}


def test_bulk_services_record_one_entry_per_workstation(editor):
    location = LocationFactory(name="Amsterdam")
    rows = [
        Workstation(asset_tag=f"BULK-{n}", hostname=f"bulk-{n}", location=location)
        for n in range(3)
    ]
    created = services.workstation_bulk_create(workstations=rows, actor=editor)
    for workstation in created:
        (entry,) = entries_of(workstation)
        assert entry.action == LogEntry.Action.CREATE
        assert entry.actor_id == editor.pk
        assert entry.changes["location"] == [None, "Amsterdam"]
        assert entry.changes["asset_tag"] == [None, workstation.asset_tag]

    moved = services.workstation_bulk_set_status(
        queryset=Workstation.objects.filter(pk__in=[w.pk for w in created[:2]]),
        status=Status.IN_REPAIR,
        actor="script nightly-audit",
    )
    assert moved == 2
    for workstation in created[:2]:
        latest = entries_of(workstation)[0]
        assert latest.changes == {"status": ["planned", "in_repair"]}
        assert actor_of(latest) == "script nightly-audit"
    assert len(entries_of(created[2])) == 1


def test_seed_demo_is_recorded_as_the_command_and_os_user():
    call_command("seed_demo", count=5, stdout=StringIO(), stderr=StringIO())
    entries = LogEntry.objects.filter(content_type__model="workstation")
    assert entries.count() == 5
    assert {actor_of(e) for e in entries} == {f"command seed_demo (OS user {getpass.getuser()})"}


def test_import_is_recorded_as_the_command(tmp_path):
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["asset_tag", "hostname"], ["IMP-1", "imp-1"]])
    call_command("import_workstations", str(path), stdout=StringIO(), stderr=StringIO())
    (entry,) = entries_of(Workstation.objects.get())
    assert actor_of(entry).startswith("command import_workstations (OS user ")
    assert entry.changes["hostname"] == [None, "imp-1"]


# The API ------------------------------------------------------------------------------------


def test_workstation_history_is_newest_first_paginated_and_cached(
    editor_client, reader_client, django_capture_on_commit_callbacks
):
    workstation = WorkstationFactory(hostname="hist")
    for note in ("one", "two"):
        editor_client.patch(f"{LIST}{workstation.pk}/", {"notes": note}, format="json")
    url = f"{LIST}{workstation.pk}/history/"

    first = reader_client.get(url, {"page_size": 2})
    assert first.status_code == 200, first.json()
    data = first.json()
    assert data["count"] == 3
    assert [e["changes"].get("notes") for e in data["results"]] == [
        {"before": "one", "after": "two"},
        {"before": "", "after": "one"},
    ]
    assert data["results"][0]["actor"] == "editor"
    assert data["results"][0]["action"] == "update"
    assert data["next"] is not None
    assert reader_client.get(url, {"page_size": 2})["X-Cache"] == "HIT"

    # A write is in the history at once (read-your-writes), the cache notwithstanding.
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.patch(f"{LIST}{workstation.pk}/", {"notes": "three"}, format="json")
    again = reader_client.get(url, {"page_size": 2})
    assert again["X-Cache"] == "MISS"
    assert again.json()["results"][0]["changes"]["notes"]["after"] == "three"


def test_workstation_history_refuses_unknown_parameters(reader_client):
    workstation = WorkstationFactory()
    response = reader_client.get(f"{LIST}{workstation.pk}/history/", {"status": "deployed"})
    assert response.status_code == 400
    assert "status" in response.json()


def test_workstation_history_of_an_unknown_workstation_is_404(reader_client):
    assert reader_client.get(f"{LIST}999999/history/").status_code == 404


def test_changes_filter_by_since_actor_type_and_id(editor_client, editor, reader_client):
    workstation = WorkstationFactory(hostname="chg", location=None)  # recorded as this process
    location = LocationFactory(name="Amsterdam")
    editor_client.patch(f"{LIST}{workstation.pk}/", {"notes": "x"}, format="json")

    everything = reader_client.get(CHANGES).json()
    assert everything["count"] == 3
    by_editor = reader_client.get(CHANGES, {"actor": "editor"}).json()["results"]
    assert [(e["object_type"], e["object_id"]) for e in by_editor] == [
        ("workstation", workstation.pk)
    ]
    locations = reader_client.get(CHANGES, {"object_type": "location"}).json()["results"]
    assert [e["object_repr"] for e in locations] == ["Amsterdam"]
    one = reader_client.get(CHANGES, {"object_type": "location", "object_id": location.pk}).json()
    assert one["count"] == 1
    future = (timezone.now() + datetime.timedelta(hours=1)).isoformat()
    assert reader_client.get(CHANGES, {"since": future}).json()["count"] == 0


@pytest.mark.parametrize(
    "params, name",
    [
        ({"since": "yesterday"}, "since"),
        ({"object_type": "printer"}, "object_type"),
        ({"object_id": "abc"}, "object_id"),
        # A number that is not an id, which the schema's integer refuses (schemathesis sent it).
        ({"object_id": "1.1125369292536007e-308"}, "object_id"),
        ({"object_id": "1.5"}, "object_id"),
        ({"who": "zoe"}, "who"),
    ],
)
def test_changes_refuse_bad_values_naming_the_parameter(reader_client, params, name):
    response = reader_client.get(CHANGES, params)
    assert response.status_code == 400
    assert list(response.json()) == [name]


@pytest.mark.parametrize(
    "since",
    ["0218-02-08T18:45:49.864-23:33", "2026-01-31T09:00:00+15:59", "2026-01-31T09:00:00-23:59"],
)
def test_changes_since_any_offset_python_reads_is_answered(reader_client, since):
    """PostgreSQL takes offsets up to ±15:59 only; the time goes to it in UTC."""
    response = reader_client.get(CHANGES, {"since": since})
    assert response.status_code == 200, response.content
    assert response.json()["count"] == 0 or since.startswith("0218")


def test_changes_need_authentication(anon_client):
    assert anon_client.get(CHANGES).status_code == 401


# The admin ----------------------------------------------------------------------------------


def test_admin_history_page_shows_api_writes_as_a_diff(staff_browser, editor_client):
    workstation = WorkstationFactory(hostname="diff-me", status=Status.STAGED)
    editor_client.patch(f"{LIST}{workstation.pk}/", {"status": "in_repair"}, format="json")

    response = staff_browser.get(f"{WS_CHANGELIST}{workstation.pk}/history/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Change history: diff-me" in page
    assert "This object doesn" not in page
    assert "editor" in page
    assert (
        '<th scope="row">Status</th><td class="before">Staged</td><td class="arrow">→</td>'
        '<td class="after">In repair</td>'
    ) in page


@pytest.mark.django_db(transaction=True)
def test_a_change_to_the_history_by_any_path_invalidates_the_cached_history():
    """The history table is among the workstation namespace's tables: entries removed by
    auditlog's own auditlogflush, or by SQL, are counted by the database's triggers like any
    change (docs/design.md, "A write"), so no cached history outlives them. (Committed apart:
    on PostgreSQL a transaction counts once per namespace.)"""
    WorkstationFactory()
    before = changes.versions()["workstations"]
    call_command("auditlogflush", "--yes", stdout=StringIO())
    assert not LogEntry.objects.exists()
    assert changes.versions()["workstations"] > before


@pytest.mark.parametrize("url", ["history", CHANGES])
def test_history_pages_run_the_same_queries_however_many_entries(editor_client, url):
    """No query per entry (its actor, its object type): as every list here."""
    workstation = WorkstationFactory(location=None)
    path = f"{LIST}{workstation.pk}/history/" if url == "history" else url

    def queries() -> int:
        perf_cache.invalidate("workstations")  # a cold read each time
        with CaptureQueriesContext(connection) as captured:
            assert editor_client.get(path).status_code == 200
        return len(captured)

    queries()  # the token's lookup, cached from then on
    few = queries()
    for n in range(10):
        editor_client.patch(f"{LIST}{workstation.pk}/", {"notes": f"n{n}"}, format="json")
    assert queries() == few
