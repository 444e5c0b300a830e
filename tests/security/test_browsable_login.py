"""The browsable API links to a login page, and logging in there opens it."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import WorkstationFactory

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
LOGIN = "/api/auth/login/"


def test_an_anonymous_visitor_is_offered_the_login_page():
    """Before, the 401 page had no way in: DRF shows "Log in" only when its login URL exists."""
    response = Client().get("/api/workstations/", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 401
    assert f"href='{LOGIN}?next=/api/workstations/'" in response.content.decode()


def test_logging_in_there_opens_the_browsable_api(reader):
    WorkstationFactory(hostname="ws-browsed")
    client = Client()
    page = client.get(LOGIN, {"next": "/api/workstations/"})
    assert page.status_code == 200
    response = client.post(
        f"{LOGIN}?next=/api/workstations/", {"username": "reader", "password": PASSWORD}
    )
    assert (response.status_code, response["Location"]) == (302, "/api/workstations/")
    listing = client.get("/api/workstations/", HTTP_ACCEPT=BROWSER)
    assert listing.status_code == 200
    assert "ws-browsed" in listing.content.decode()
    assert "/api/auth/logout/" in listing.content.decode()


def test_the_login_page_is_throttled_like_the_others(reader, rates):
    rates(login_address="2/min", login_username="100/min")
    client = Client()
    answers = [
        client.post(LOGIN, {"username": "reader", "password": "wrong"}).status_code
        for _ in range(3)
    ]
    assert answers == [200, 200, 429]
