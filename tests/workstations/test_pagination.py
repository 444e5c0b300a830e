"""List counts are cached with the responses, and never stale after a write."""

from __future__ import annotations

import pytest

from tests.factories import WorkstationFactory
from workstations import services

PAGE = "/api/workstations/?page_size=2&page={}"


@pytest.fixture
def listed(editor_client):
    WorkstationFactory.create_batch(5)
    return editor_client


@pytest.mark.django_db(transaction=True)
def test_later_pages_reuse_the_count(listed, django_assert_num_queries):
    assert listed.get(PAGE.format(1), HTTP_ACCEPT="application/json").json()["count"] == 5
    # A cold page of the same list: its rows are read (none rendered yet); its ids and its
    # count are not, remembered with the list.
    with django_assert_num_queries(1):
        response = listed.get(PAGE.format(2), HTTP_ACCEPT="application/json")
    assert response["X-Cache"] == "MISS"
    assert response.json()["count"] == 5


@pytest.mark.django_db(transaction=True)
def test_a_write_makes_the_count_fresh(listed):
    assert listed.get(PAGE.format(1), HTTP_ACCEPT="application/json").json()["count"] == 5
    services.workstation_create(data={"asset_tag": "AT-X", "hostname": "x-1", "status": "planned"})
    fresh = listed.get(PAGE.format(3), HTTP_ACCEPT="application/json")
    assert fresh.json()["count"] == 6
    workstation = fresh.json()["results"][0]
    assert listed.delete(f"/api/workstations/{workstation['id']}/").status_code == 204
    assert listed.get(PAGE.format(1), HTTP_ACCEPT="application/json").json()["count"] == 5
