"""Passwords and tokens never appear in logs, error bodies, the console output, /metrics or the
admin's Cache performance page."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from performance import cache as perf_cache
from tests.factories import UserFactory, WorkstationFactory

from .conftest import TOKEN_URL

pytestmark = pytest.mark.django_db

PASSWORD = "Sw0rdfish-and-chips-4242"
WRONG_PASSWORD = "Wr0ng-guess-9731-zzz"


@pytest.fixture
def user(db):
    user = UserFactory(username="operator", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def test_passwords_and_tokens_are_never_shown(user, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="performance.requests")
    WorkstationFactory()
    client = APIClient()

    wrong = client.post(TOKEN_URL, {"username": "operator", "password": WRONG_PASSWORD})
    assert wrong.status_code == 400
    right = client.post(TOKEN_URL, {"username": "operator", "password": PASSWORD}, format="json")
    assert right.status_code == 200
    token = right.json()["token"]

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    bodies = {"wrong password": wrong.content, "token": b""}
    for path in ("/api/workstations/", "/api/workstations/summary/", "/api/locations/"):
        response = api.get(path)
        assert response.status_code == 200
        bodies[path] = response.content
    # A client that puts secrets where they do not belong: the query string, a bad token.
    misplaced = api.get("/api/workstations/", {"password": PASSWORD, "token": token})
    assert misplaced.status_code == 400  # parameters no endpoint reads: named, never echoed
    bodies["misplaced"] = misplaced.content
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION=f"Token {token}x")
    assert bad.get("/api/workstations/").status_code == 401
    bodies["bad token"] = bad.get("/api/workstations/").content
    stats = api.get("/api/performance/cache-stats/")
    assert stats.status_code == 200
    bodies["cache stats"] = stats.content

    staff = APIClient()
    staff.force_login(user)
    metrics = staff.get("/metrics")
    assert metrics.status_code == 200
    bodies["/metrics"] = metrics.content
    console = staff.get(reverse("admin:performance_cache"))
    assert console.status_code == 200
    bodies["cache performance page"] = console.content

    captured = capfd.readouterr()
    assert caplog.records  # the request log did run, at DEBUG
    assert any(r.name == "performance.requests" for r in caplog.records)
    places = {
        **{name: body.decode() for name, body in bodies.items()},
        "log records": caplog.text,
        "log arguments": repr([(r.msg, r.args, r.__dict__) for r in caplog.records]),
        "stdout": captured.out,
        "stderr": captured.err,
        "cache keys": repr(sorted(perf_cache.backend().logical_keys("*"))),
    }
    for place, text in places.items():
        for secret in (PASSWORD, WRONG_PASSWORD, token):
            assert secret not in text, f"a secret is shown in {place}"
