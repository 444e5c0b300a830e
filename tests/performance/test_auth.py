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


# The scheme: Bearer (documented) or Token; any other named in a 401 ----------------------------


def _client(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header, HTTP_ACCEPT="application/json")
    return client


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "Token"])
@pytest.mark.django_db(transaction=True)
def test_a_token_is_accepted_under_bearer_and_token(token_client, scheme):
    _, token = token_client
    response = _client(f"{scheme} {token.key}").get(LIST)
    assert response.status_code == 200
    assert response.json()["count"] == 3


@pytest.mark.parametrize(("first", "then"), [("Token", "Bearer"), ("Bearer", "Token")])
@pytest.mark.django_db(transaction=True)
def test_a_bearer_request_is_a_warm_hit_like_a_token_one(
    token_client, django_assert_num_queries, first, then
):
    """One reading of the header for both paths: the early read answers either scheme."""
    _, token = token_client
    assert _client(f"{first} {token.key}").get(LIST)["X-Cache"] == "MISS"
    with django_assert_num_queries(0):
        response = _client(f"{then} {token.key}").get(LIST)
    assert (response.status_code, response["X-Cache"]) == (200, "HIT")


@pytest.mark.parametrize("header", ["Basic cmVhZGVyOnNlY3JldA==", "JWT {key}", "Tokens {key}"])
@pytest.mark.django_db(transaction=True)
def test_another_scheme_is_a_401_naming_the_one_to_use_cold_and_warm(token_client, header):
    _, token = token_client
    client = _client(header.format(key=token.key))
    cold = client.get(LIST)
    assert _client(f"Bearer {token.key}").get(LIST).status_code == 200  # the entry is now there
    warm = client.get(LIST)
    for response in (cold, warm):
        assert response.status_code == 401
        assert "Bearer <token>" in response.json()["detail"]
        assert response["WWW-Authenticate"] == "Bearer"
        assert "X-Cache" not in response


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("Bearer", "No credentials provided"),
        ("Bearer a b", "should not contain spaces"),
        ("Bearer not-a-token", "Invalid token."),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_a_bad_bearer_header_gets_drfs_own_answer(token_client, header, says):
    response = _client(header).get(LIST)
    assert response.status_code == 401
    assert says in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_without_a_header_the_answer_is_unchanged(token_client):
    response = APIClient().get(LIST, HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
