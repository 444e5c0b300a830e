"""Cached token authentication: warm reads run no SQL, and every change to who a token is or
what they may do takes effect on the very next request."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import WorkstationFactory

LIST = "/api/workstations/?page_size=5"


@pytest.fixture
def token_client(reader):
    WorkstationFactory.create_batch(3)
    token = Token.objects.create(user=reader)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_ACCEPT="application/json")
    return client, token


@pytest.mark.django_db(transaction=True)
def test_a_warm_hit_with_a_token_runs_no_sql(token_client, django_assert_num_queries):
    client, _ = token_client
    assert client.get(LIST)["X-Cache"] == "MISS"
    with django_assert_num_queries(0):
        response = client.get(LIST)
    assert response.status_code == 200
    assert response["X-Cache"] == "HIT"


@pytest.mark.django_db(transaction=True)
def test_a_deleted_token_is_refused_on_the_next_request(token_client):
    client, token = token_client
    assert client.get(LIST).status_code == 200
    token.delete()
    assert client.get(LIST).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_deactivated_user_is_refused_on_the_next_request(token_client, reader):
    client, _ = token_client
    assert client.get(LIST).status_code == 200
    reader.is_active = False
    reader.save()
    assert client.get(LIST).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_granting_and_revoking_rights_takes_effect_at_once(token_client, reader):
    client, _ = token_client
    body = {"asset_tag": "AT-NEW-1", "hostname": "new-1", "status": "planned"}
    assert client.get(LIST).status_code == 200  # the user is now cached
    assert client.post("/api/workstations/", body, format="json").status_code == 403

    editors = Group.objects.create(name="editors")
    editors.permissions.add(Permission.objects.get(codename="add_workstation"))
    reader.groups.add(editors)
    assert client.post("/api/workstations/", body, format="json").status_code == 201

    editors.permissions.clear()
    body = {"asset_tag": "AT-NEW-2", "hostname": "new-2", "status": "planned"}
    assert client.post("/api/workstations/", body, format="json").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_the_token_itself_is_never_stored_in_the_cache(token_client):
    from performance import cache

    client, token = token_client
    client.get(LIST)
    backend = cache.backend()
    keys = list(backend.logical_keys("*"))
    assert all(token.key not in key for key in keys)
    for key in keys:
        assert token.key not in repr(backend.get(key))
