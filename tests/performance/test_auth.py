"""Cached token authentication: warm reads run no SQL, and every change to who a token is or
what they may do takes effect on the very next request."""

from __future__ import annotations

import io
import pickletools

import msgpack
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance.cache.keys import AUTH_NAMESPACE
from tests.factories import WorkstationFactory

LIST = "/api/workstations/?page_size=5"
#: A list whose reads need the ``view_workstation`` permission (``read_path_urls``).
VIEW_PERMISSION = "/api/view-permission/?page_size=5"


def _token_client(user) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_ACCEPT="application/json")
    return client


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


# What the cache holds for a token ---------------------------------------------------------------


def _auth_entries(redis_cache, redis_client) -> list[bytes]:
    """The raw bytes of every ``auth`` entry of this test's cache, as Redis holds them."""
    match = redis_cache.client.pattern(f"{AUTH_NAMESPACE}:*")
    return [redis_client.get(key) for key in redis_client.scan_iter(match=match, count=1000)]


def _reads_as_pickle(raw: bytes) -> bool:
    """Whether ``raw`` is a pickle's opcode stream, as ``pickletools`` reads one: parsed, with
    its stack checked, never unpickled."""
    try:
        pickletools.dis(raw, out=io.StringIO())
    except Exception:
        return False
    return True


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return value is None or type(value) in (str, int, float, bool)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_auth_entries_hold_no_password_hash_and_no_pickle(redis_cache, redis_client, reader, staff):
    """Whoever can read the Redis (it may be shared) learns no password hash from it, and
    whoever can write to it cannot make this service run code by what it reads back."""
    WorkstationFactory.create_batch(2)
    users = [reader, staff]
    for user in users:
        client = _token_client(user)
        assert client.get(LIST).status_code == 200
        assert client.get(LIST)["X-Cache"] == "HIT"
    entries = _auth_entries(redis_cache, redis_client)
    assert len(entries) == len(users)
    hashes = [get_user_model().objects.get(pk=user.pk).password for user in users]
    for raw in entries:
        for hashed in hashes:
            assert hashed.encode() not in raw
            assert hashed.rpartition("$")[2].encode() not in raw  # not even its digest
        assert not raw.startswith(b"\x80")  # PROTO, the first opcode of any pickle since 2
        assert not _reads_as_pickle(raw)
        assert _plain(msgpack.unpackb(raw))


@pytest.mark.urls("tests.performance.read_path_urls")
@pytest.mark.django_db(transaction=True)
def test_a_warm_hit_asks_model_permissions_without_sql(
    cache_backend, editor, reader, django_assert_num_queries
):
    """The permission set travels with the token's entry: ``has_perm`` on a warm hit runs no
    SQL, and answers what the database would."""
    WorkstationFactory.create_batch(2)
    allowed = _token_client(editor)
    assert allowed.get(VIEW_PERMISSION)["X-Cache"] == "MISS"
    with django_assert_num_queries(0):
        response = allowed.get(VIEW_PERMISSION)
    assert response.status_code == 200
    assert response["X-Cache"] == "HIT"

    refused = _token_client(reader)
    assert refused.get(VIEW_PERMISSION).status_code == 403
    with django_assert_num_queries(0):
        assert refused.get(VIEW_PERMISSION).status_code == 403


@pytest.mark.urls("tests.performance.read_path_urls")
@pytest.mark.django_db(transaction=True)
def test_permissions_granted_through_a_group_are_honoured_warm(
    cache_backend, reader, django_assert_num_queries
):
    WorkstationFactory.create_batch(2)
    viewers = Group.objects.create(name="viewers")
    viewers.permissions.add(Permission.objects.get(codename="view_workstation"))
    reader.groups.add(viewers)
    client = _token_client(reader)
    assert client.get(VIEW_PERMISSION).status_code == 200
    with django_assert_num_queries(0):
        assert client.get(VIEW_PERMISSION).status_code == 200

    viewers.permissions.clear()
    assert client.get(VIEW_PERMISSION).status_code == 403


@pytest.mark.urls("tests.performance.read_path_urls")
@pytest.mark.django_db(transaction=True)
def test_a_deleted_permission_is_refused_on_the_next_request(cache_backend, editor):
    """The permission set is cached with the token: removing the permission itself (not only a
    membership) ends it too."""
    WorkstationFactory.create_batch(2)
    client = _token_client(editor)
    assert client.get(VIEW_PERMISSION).status_code == 200
    assert client.get(VIEW_PERMISSION).status_code == 200
    Permission.objects.get(codename="view_workstation").delete()
    assert client.get(VIEW_PERMISSION).status_code == 403


@pytest.mark.redis
@pytest.mark.urls("tests.performance.read_path_urls")
@pytest.mark.django_db(transaction=True)
def test_an_entry_copied_under_another_tokens_key_grants_nothing(
    redis_cache, redis_client, reader, staff
):
    """Whoever can write to the Redis can read a staff user's entry there, and knows the key of
    a token of their own (a hash of it) or of one they make up: a copy under that key must not
    make its bearer the staff user."""
    from performance.cache.keys import generation_key, token_key

    WorkstationFactory.create_batch(2)
    reader_token = Token.objects.create(user=reader).key  # (a new token bumps the generation)
    staff_only = "/api/staff-only/workstations/?page_size=5"
    assert _token_client(staff).get(staff_only).status_code == 200
    [raw] = _auth_entries(redis_cache, redis_client)
    generation = redis_cache.get(generation_key(AUTH_NAMESPACE))
    made_up = "f" * 40
    for token in (reader_token, made_up):
        redis_client.set(redis_cache.client.make_key(token_key(generation, token)), raw, ex=60)
    redis_cache.state.tokens.clear()

    reader_client = APIClient()
    reader_client.credentials(HTTP_AUTHORIZATION=f"Token {reader_token}")
    assert reader_client.get(staff_only).status_code == 403
    impostor = APIClient()
    impostor.credentials(HTTP_AUTHORIZATION=f"Token {made_up}")
    assert impostor.get(staff_only).status_code == 401


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
