"""Object- and field-level safety: what a body may write, and who may change what, by any route."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations.choices import Status
from workstations.models import Location, Workstation

pytestmark = pytest.mark.django_db

LIST = "/api/workstations/"
LOCATIONS = "/api/locations/"
SUMMARY = "/api/workstations/summary/"


@pytest.fixture
def workstation(db) -> Workstation:
    return WorkstationFactory(
        hostname="ws-1", asset_tag="AT-1", location=LocationFactory(name="Lab"), notes="original"
    )


def snapshot(model, pk: int) -> dict:
    return model.objects.values().get(pk=pk)


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def user_with(username: str, *codenames: str):
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


WS_BODY = {"asset_tag": "AT-NEW", "hostname": "new-host", "status": Status.STAGED}
LOC_BODY = {"name": "Annex"}


# Unknown fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [(LIST, WS_BODY), (LOCATIONS, LOC_BODY)],
    ids=["workstations", "locations"],
)
@pytest.mark.parametrize("method", ["post", "put", "patch"])
@pytest.mark.parametrize("fmt", ["json", "multipart"])
def test_unknown_fields_are_400_naming_each_and_write_nothing(
    editor_client, workstation, path, body, method, fmt
):
    pk = workstation.pk if path == LIST else workstation.location_id
    url = path if method == "post" else f"{path}{pk}/"
    before = (snapshot(Workstation, workstation.pk), snapshot(Location, workstation.location_id))
    payload = {**body, "notes": "changed", "colour": "red", "is_staff": "true", "hostnme": "x"}

    response = getattr(editor_client, method)(url, payload, format=fmt)

    assert response.status_code == 400
    assert response.json() == {
        "colour": ["Unknown field."],
        "hostnme": ["Unknown field."],
        "is_staff": ["Unknown field."],
    }
    assert (Workstation.objects.count(), Location.objects.count()) == (1, 1)
    after = (snapshot(Workstation, workstation.pk), snapshot(Location, workstation.location_id))
    assert after == before


def test_a_location_cannot_write_its_workstations(editor_client, workstation):
    """No nested write: a location body naming workstations is refused, not half-applied."""
    other = LocationFactory(name="Other", room="1")
    response = editor_client.patch(
        f"{LOCATIONS}{other.pk}/", {"workstations": [workstation.pk], "room": "9"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"workstations": ["Unknown field."]}
    workstation.refresh_from_db()
    other.refresh_from_db()
    assert (workstation.location.name, other.room) == ("Lab", "1")


# Read-only fields ------------------------------------------------------------------------------


READ_ONLY_WORKSTATION = {
    "id": 999_999,
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
    "location_name": "Renamed through a workstation",
    "assigned_to_username": "admin",
}
READ_ONLY_LOCATION = {
    "id": 999_999,
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
    "workstation_count": 1_000,
}


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_read_only_workstation_fields_are_not_written(editor_client, workstation, method):
    """Accepted (a body read from the API can be sent back) and ignored."""
    url = LIST if method == "post" else f"{LIST}{workstation.pk}/"
    response = getattr(editor_client, method)(
        url, {**WS_BODY, **READ_ONLY_WORKSTATION}, format="json"
    )
    assert response.status_code in (200, 201), response.json()
    data = response.json()
    assert data["id"] != 999_999
    assert data["created_at"] > "2001" and data["updated_at"] > "2001"
    assert data["assigned_to_username"] is None
    assert not Workstation.objects.filter(pk=999_999).exists()
    assert Workstation.objects.filter(assigned_to__isnull=False).count() == 0
    assert list(Location.objects.values_list("name", flat=True)) == ["Lab"]
    assert Workstation.objects.filter(created_at__year=2000).count() == 0


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_read_only_location_fields_are_not_written(editor_client, workstation, method):
    url = LOCATIONS if method == "post" else f"{LOCATIONS}{workstation.location_id}/"
    response = getattr(editor_client, method)(
        url, {**LOC_BODY, **READ_ONLY_LOCATION}, format="json"
    )
    assert response.status_code in (200, 201), response.json()
    data = response.json()
    assert data["id"] != 999_999
    assert data["workstation_count"] in (0, 1)
    assert data["created_at"] > "2001"
    assert not Location.objects.filter(pk=999_999).exists()
    assert Location.objects.filter(created_at__year=2000).count() == 0


# Who may change what, by any route -------------------------------------------------------------


@pytest.fixture
def adder(db):
    """May view and add workstations and locations, not change or delete them."""
    return user_with(
        "adder", "view_workstation", "add_workstation", "view_location", "add_location"
    )


@pytest.fixture
def location_editor(db):
    """May change locations, not workstations."""
    return user_with("location-editor", "view_location", "change_location", "view_workstation")


def assert_unchanged(workstation: Workstation, before: dict) -> None:
    assert snapshot(Workstation, workstation.pk) == before
    assert Workstation.objects.count() == 1


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_without_change_permission_put_patch_and_delete_are_403(adder, workstation, method):
    before = snapshot(Workstation, workstation.pk)
    response = getattr(token_client(adder), method)(
        f"{LIST}{workstation.pk}/", {**WS_BODY, "notes": "changed"}, format="json"
    )
    assert response.status_code == 403
    assert_unchanged(workstation, before)


@pytest.mark.parametrize(
    "header", ["HTTP_X_HTTP_METHOD_OVERRIDE", "HTTP_X_HTTP_METHOD", "HTTP_X_METHOD_OVERRIDE"]
)
@pytest.mark.parametrize("override", ["PUT", "PATCH", "DELETE"])
def test_method_override_headers_are_not_honoured(adder, workstation, header, override):
    """A POST stays a POST: on a detail URL it is 405, whatever header asks otherwise."""
    before = snapshot(Workstation, workstation.pk)
    client = token_client(adder)
    response = client.post(
        f"{LIST}{workstation.pk}/", {"notes": "changed"}, format="json", **{header: override}
    )
    assert response.status_code == 405
    # On the list, the same POST is a create (which adder may do), never a change or delete.
    response = client.post(
        LIST, {**WS_BODY, "notes": "changed"}, format="json", **{header: override}
    )
    assert response.status_code == 201
    assert snapshot(Workstation, workstation.pk) == before
    assert Workstation.objects.count() == 2


@pytest.mark.parametrize("override", ["PUT", "PATCH", "DELETE"])
def test_form_method_field_is_not_honoured(adder, workstation, override):
    """The ``_method`` form field of old browsable-API versions changes nothing either."""
    before = snapshot(Workstation, workstation.pk)
    response = token_client(adder).post(
        f"{LIST}{workstation.pk}/",
        {"_method": override, "_content_type": "application/json", "_content": '{"notes": "x"}'},
        format="multipart",
    )
    assert response.status_code == 405
    assert_unchanged(workstation, before)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_summary_is_read_only(editor_client, reader_client, workstation, method):
    before = snapshot(Workstation, workstation.pk)
    assert getattr(editor_client, method)(SUMMARY, {"notes": "x"}, format="json").status_code == 405
    assert getattr(reader_client, method)(SUMMARY, {"notes": "x"}, format="json").status_code in (
        403,
        405,
    )
    assert_unchanged(workstation, before)


def test_changing_locations_does_not_reach_workstations(location_editor, workstation):
    client = token_client(location_editor)
    before = snapshot(Workstation, workstation.pk)
    other = LocationFactory(name="Other")
    # Moving a workstation is a workstation change, refused...
    response = client.patch(f"{LIST}{workstation.pk}/", {"location": other.pk}, format="json")
    assert response.status_code == 403
    # ...and cannot be done from the location's side.
    response = client.patch(
        f"{LOCATIONS}{other.pk}/", {"workstations": [workstation.pk]}, format="json"
    )
    assert response.status_code == 400
    # Changing the location itself is allowed, and changes no workstation.
    response = client.patch(f"{LOCATIONS}{workstation.location_id}/", {"room": "7"}, format="json")
    assert response.status_code == 200
    assert_unchanged(workstation, before)


def test_browsable_api_offers_no_write_form_without_permission(reader, editor, workstation):
    url = f"{LIST}{workstation.pk}/"
    reader_page = token_client(reader).get(url, HTTP_ACCEPT="text/html").content.decode()
    editor_page = token_client(editor).get(url, HTTP_ACCEPT="text/html").content.decode()
    for marker in ('data-method="PUT"', 'data-method="PATCH"', 'data-method="DELETE"'):
        assert marker in editor_page
        assert marker not in reader_page


def test_browsable_api_form_post_with_session_needs_permission(reader, workstation):
    """The browsable API's form, submitted with a reader's session and a valid CSRF token."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(reader)
    before = snapshot(Workstation, workstation.pk)
    page = client.get(f"{LIST}{workstation.pk}/", HTTP_ACCEPT="text/html")
    csrf = page.cookies["csrftoken"].value
    for method in ("put", "patch", "delete"):
        response = getattr(client, method)(
            f"{LIST}{workstation.pk}/",
            {"notes": "changed"},
            format="json",
            HTTP_X_CSRFTOKEN=csrf,
        )
        assert response.status_code == 403, method
    assert_unchanged(workstation, before)


def test_session_write_without_csrf_token_is_403(editor, workstation):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(editor)
    before = snapshot(Workstation, workstation.pk)
    response = client.patch(f"{LIST}{workstation.pk}/", {"notes": "changed"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert_unchanged(workstation, before)
