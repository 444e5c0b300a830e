"""Who may do what on the API, and the two ways to authenticate."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import LocationFactory, WorkstationFactory
from workstations.models import Location, Workstation

pytestmark = pytest.mark.django_db

LIST = "/api/workstations/"
SUMMARY = "/api/workstations/summary/"
LOCATIONS = "/api/locations/"
PASSWORD = "correct-horse-battery"  # tests/factories.py: UserFactory


def detail(workstation: Workstation) -> str:
    return f"/api/workstations/{workstation.pk}/"


def new_workstation(**overrides) -> dict:
    return {"asset_tag": "AT-NEW", "hostname": "new-host", **overrides}


@pytest.fixture
def workstation(db) -> Workstation:
    return WorkstationFactory()


# Anonymous ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [LIST, SUMMARY, LOCATIONS])
def test_anonymous_read_is_401_with_www_authenticate(anon_client, url):
    response = anon_client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"  # the documented scheme (Token is accepted too)


def test_anonymous_detail_is_401(anon_client, workstation):
    response = anon_client.get(detail(workstation))
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_anonymous_create_is_401_and_writes_nothing(anon_client):
    response = anon_client.post(LIST, new_workstation(), format="json")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    assert not Workstation.objects.exists()


def test_anonymous_bad_token_is_401(anon_client):
    anon_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert anon_client.get(LIST).status_code == 401


# Reader: authenticated, no model permission -----------------------------------------------


@pytest.mark.parametrize("url", [LIST, SUMMARY, LOCATIONS])
def test_reader_may_read_lists(reader_client, url, workstation):
    assert reader_client.get(url).status_code == 200


def test_reader_may_read_detail(reader_client, workstation):
    response = reader_client.get(detail(workstation))
    assert response.status_code == 200
    assert response.json()["hostname"] == workstation.hostname


def test_reader_may_not_create(reader_client):
    response = reader_client.post(LIST, new_workstation(), format="json")
    assert response.status_code == 403
    assert not Workstation.objects.exists()


def test_reader_may_not_update(reader_client, workstation):
    put = reader_client.put(detail(workstation), new_workstation(), format="json")
    patch = reader_client.patch(detail(workstation), {"hostname": "changed"}, format="json")
    assert (put.status_code, patch.status_code) == (403, 403)
    workstation.refresh_from_db()
    assert workstation.hostname != "changed"


def test_reader_may_not_delete(reader_client, workstation):
    assert reader_client.delete(detail(workstation)).status_code == 403
    assert Workstation.objects.filter(pk=workstation.pk).exists()


def test_reader_may_not_write_locations(reader_client):
    location = LocationFactory()
    assert reader_client.post(LOCATIONS, {"name": "X"}, format="json").status_code == 403
    assert reader_client.delete(f"{LOCATIONS}{location.pk}/").status_code == 403
    assert Location.objects.count() == 1


# Editor: model permissions, not staff -----------------------------------------------------


def test_editor_may_create_update_and_delete(editor_client):
    created = editor_client.post(LIST, new_workstation(), format="json")
    assert created.status_code == 201, created.json()
    url = f"{LIST}{created.json()['id']}/"

    patched = editor_client.patch(url, {"department": "Finance"}, format="json")
    assert patched.status_code == 200
    put = editor_client.put(url, new_workstation(hostname="renamed"), format="json")
    assert put.status_code == 200
    assert Workstation.objects.get().hostname == "renamed"

    assert editor_client.delete(url).status_code == 204
    assert not Workstation.objects.exists()


def test_editor_may_manage_locations(editor_client):
    created = editor_client.post(LOCATIONS, {"name": "Lab"}, format="json")
    assert created.status_code == 201
    url = f"{LOCATIONS}{created.json()['id']}/"
    assert editor_client.patch(url, {"room": "12"}, format="json").status_code == 200
    assert editor_client.delete(url).status_code == 204
    assert not Location.objects.exists()


# Staff superuser ---------------------------------------------------------------------------


def test_staff_may_do_everything(staff_client, workstation):
    assert staff_client.get(LIST).status_code == 200
    assert staff_client.get(SUMMARY).status_code == 200
    assert staff_client.post(LIST, new_workstation(), format="json").status_code == 201
    response = staff_client.patch(detail(workstation), {"notes": "x"}, format="json")
    assert response.status_code == 200
    assert staff_client.delete(detail(workstation)).status_code == 204
    assert Workstation.objects.count() == 1


# Token and session authentication ---------------------------------------------------------


def test_token_endpoint_returns_a_token_that_works(reader):
    client = APIClient()
    response = client.post(
        "/api/auth/token/", {"username": "reader", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]

    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(LIST).status_code == 200


def test_token_endpoint_bad_password_is_400(reader):
    response = APIClient().post(
        "/api/auth/token/", {"username": "reader", "password": "wrong"}, format="json"
    )
    assert response.status_code == 400
    assert "token" not in response.json()


def test_session_authentication_works(reader):
    client = APIClient()
    assert client.login(username="reader", password=PASSWORD)
    assert client.get(LIST).status_code == 200
    assert client.post(LIST, new_workstation(), format="json").status_code == 403


def test_session_authentication_write_with_rights(editor):
    client = APIClient()
    assert client.login(username="editor", password=PASSWORD)
    assert client.post(LIST, new_workstation(), format="json").status_code == 201
