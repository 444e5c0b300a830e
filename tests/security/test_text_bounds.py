"""Free text is bounded wherever it comes in: the API, an inventory file, the admin, a service.

Notes of about a megabyte were accepted, and every list page that showed the row carried them
(into the cache too). ``MAX_NOTES_LENGTH`` characters are accepted, one more is refused, with a
message naming the field.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from tests.factories import LocationFactory, WorkstationFactory
from workstations import services
from workstations.choices import Status
from workstations.models import MAX_NOTES_LENGTH, Location, Workstation

pytestmark = pytest.mark.django_db

LIST = "/api/workstations/"
LOCATIONS = "/api/locations/"
LONGEST = "n" * MAX_NOTES_LENGTH
TOO_LONG = LONGEST + "n"
MEGABYTE = "n" * (1024 * 1024 - 200)  # under the request body limit, as the attack sent it


@pytest.mark.parametrize("notes", [TOO_LONG, MEGABYTE], ids=["one-more", "megabyte"])
def test_the_api_refuses_notes_over_the_bound(editor_client, notes):
    body = {"asset_tag": "AT-N", "hostname": "notes-host", "status": Status.STAGED, "notes": notes}
    response = editor_client.post(LIST, body, format="json")
    assert response.status_code == 400
    assert "notes" in response.json()
    assert not Workstation.objects.exists()

    workstation = WorkstationFactory()
    response = editor_client.patch(f"{LIST}{workstation.pk}/", {"notes": notes}, format="json")
    assert response.status_code == 400
    location = LocationFactory()
    response = editor_client.patch(f"{LOCATIONS}{location.pk}/", {"notes": notes}, format="json")
    assert response.status_code == 400


def test_the_api_accepts_notes_at_the_bound(editor_client):
    body = {"asset_tag": "AT-N", "hostname": "notes-host", "status": Status.STAGED}
    response = editor_client.post(LIST, {**body, "notes": LONGEST}, format="json")
    assert response.status_code == 201
    assert Workstation.objects.get().notes == LONGEST


def test_the_schema_states_the_bound(reader_client):
    schema = reader_client.get("/api/schema/?format=json").json()
    fields = schema["components"]["schemas"]["WorkstationRequest"]["properties"]
    assert fields["notes"]["maxLength"] == MAX_NOTES_LENGTH


def test_an_inventory_file_with_notes_over_the_bound_imports_nothing(tmp_path: Path):
    path = tmp_path / "notes.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["asset_tag", "hostname", "notes"])
        writer.writerow(["IMP-1", "ws-1", LONGEST])
        writer.writerow(["IMP-2", "ws-2", TOO_LONG])
    with pytest.raises(CommandError, match=r"line 3, notes: Ensure this field has no more"):
        call_command("import_workstations", str(path), stdout=None)
    assert not Workstation.objects.exists()


def test_the_services_refuse_notes_over_the_bound():
    workstation = WorkstationFactory.build(notes=TOO_LONG, location=None)
    with pytest.raises(ValidationError) as excinfo:
        services.workstation_save(workstation=workstation)
    assert "notes" in excinfo.value.message_dict
    with pytest.raises(ValidationError):
        services.location_save(location=Location(name="Annex", notes=TOO_LONG))


def test_the_admin_form_refuses_notes_over_the_bound(staff):
    browser = Client()
    browser.force_login(staff)
    location = LocationFactory()
    response = browser.post(
        f"/admin/workstations/location/{location.pk}/change/",
        {"name": location.name, "notes": TOO_LONG},
    )
    assert response.status_code == 200  # the form again, with its error
    assert b"Ensure this value has at most 2000 characters" in response.content
    location.refresh_from_db()
    assert location.notes != TOO_LONG
