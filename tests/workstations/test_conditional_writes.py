"""ETags on single objects, and If-Match on PUT, PATCH and DELETE (RFC 9110, 13.1.1).

Transactional: writes invalidate the cached responses when they commit, and the ETag of the
next GET is what the tests compare with.
"""

from __future__ import annotations

import pytest

from tests.factories import LocationFactory, WorkstationFactory
from workstations import services
from workstations.models import Location, Workstation

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/api/workstations/"
LOCATIONS = "/api/locations/"


@pytest.fixture
def workstation(db) -> Workstation:
    return WorkstationFactory(notes="", department="Engineering")


def path(workstation: Workstation) -> str:
    return f"{LIST}{workstation.pk}/"


def etag_of(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response["ETag"]


def changed_elsewhere(workstation: Workstation) -> None:
    """Another client's write, committed."""
    services.workstation_update(workstation=workstation, data={"notes": "changed by someone else"})


def test_the_etag_changes_with_the_object_and_a_write_answers_the_next_one(
    staff_client, workstation
):
    before = etag_of(staff_client, path(workstation))
    response = staff_client.patch(
        path(workstation), {"department": "Sales"}, format="json", HTTP_IF_MATCH=before
    )
    assert response.status_code == 200, response.content
    after = etag_of(staff_client, path(workstation))
    assert after != before
    assert response["ETag"] == after  # the one to send with the next write


def test_a_stale_if_match_is_412_with_the_current_etag_and_changes_nothing(
    staff_client, workstation
):
    stale = etag_of(staff_client, path(workstation))
    changed_elsewhere(workstation)
    response = staff_client.patch(
        path(workstation), {"department": "Sales"}, format="json", HTTP_IF_MATCH=stale
    )
    assert response.status_code == 412
    current = etag_of(staff_client, path(workstation))
    assert response["ETag"] == current
    assert type(response.headers["ETag"]) is str  # a WSGI server refuses anything else
    assert response.json()["etag"] == current
    assert "If-Match" in response.json()["detail"]
    assert Workstation.objects.get(pk=workstation.pk).department == "Engineering"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_every_write_refuses_a_stale_if_match(staff_client, workstation, method):
    stale = etag_of(staff_client, path(workstation))
    changed_elsewhere(workstation)
    body = {"asset_tag": workstation.asset_tag, "hostname": "renamed", "department": "Sales"}
    response = getattr(staff_client, method)(
        path(workstation), body, format="json", HTTP_IF_MATCH=stale
    )
    assert response.status_code == 412, response.content
    stored = Workstation.objects.get(pk=workstation.pk)  # still there, unchanged
    assert (stored.hostname, stored.department) == (workstation.hostname, "Engineering")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_current_if_match_proceeds(staff_client, workstation, method):
    current = etag_of(staff_client, path(workstation))
    body = {"asset_tag": workstation.asset_tag, "hostname": "renamed"}
    response = getattr(staff_client, method)(
        path(workstation), body, format="json", HTTP_IF_MATCH=f'"other", {current}'
    )
    assert response.status_code in (200, 204), response.content


def test_if_match_star_and_no_if_match_proceed(staff_client, workstation):
    changed_elsewhere(workstation)
    star = staff_client.patch(path(workstation), {"os": "Linux"}, format="json", HTTP_IF_MATCH="*")
    plain = staff_client.patch(path(workstation), {"cpu": "Arm"}, format="json")
    assert (star.status_code, plain.status_code) == (200, 200)
    stored = Workstation.objects.get(pk=workstation.pk)
    assert (stored.os, stored.cpu, stored.notes) == ("Linux", "Arm", "changed by someone else")


def test_if_match_compares_strongly(staff_client, workstation):
    """A weak tag never matches If-Match, even with the same opaque value."""
    current = etag_of(staff_client, path(workstation))
    response = staff_client.patch(
        path(workstation), {"os": "Linux"}, format="json", HTTP_IF_MATCH=f"W/{current}"
    )
    assert response.status_code == 412


def test_an_if_match_without_an_etag_is_a_400_naming_it(staff_client, workstation):
    """Unquoted, the header holds no ETag: ignoring it would write unguarded."""
    current = etag_of(staff_client, path(workstation)).strip('"')
    response = staff_client.patch(
        path(workstation), {"os": "Linux"}, format="json", HTTP_IF_MATCH=current
    )
    assert response.status_code == 400
    assert "If-Match" in response.json()
    assert Workstation.objects.get(pk=workstation.pk).os == workstation.os


def test_a_created_workstation_carries_the_etag_of_its_get(staff_client):
    response = staff_client.post(LIST, {"asset_tag": "AT-E", "hostname": "ws-etag"}, format="json")
    assert response.status_code == 201
    assert response["ETag"] == etag_of(staff_client, f"{LIST}{response.json()['id']}/")


def test_locations_honour_if_match_too(staff_client):
    location = LocationFactory(name="Lab")
    url = f"{LOCATIONS}{location.pk}/"
    stale = etag_of(staff_client, url)
    services.location_update(location=location, data={"building": "East"})
    response = staff_client.patch(url, {"room": "2"}, format="json", HTTP_IF_MATCH=stale)
    assert response.status_code == 412
    assert response["ETag"] == etag_of(staff_client, url)
    current = response["ETag"]
    response = staff_client.patch(url, {"room": "2"}, format="json", HTTP_IF_MATCH=current)
    assert response.status_code == 200
    assert Location.objects.get(pk=location.pk).room == "2"
