"""A warm read gives DRF's answer: the cache decides nothing DRF would decide otherwise.

Each request is sent twice, cold (the entry is not cached yet) and warm (it is): the status a
client gets must not depend on whether somebody else's request filled the cache before.
"""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import WorkstationFactory

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/api/workstations/?page_size=5"


def token_client(user, *, suffix: str = "") -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}{suffix}")
    return client


@pytest.fixture
def machines(db):
    return WorkstationFactory.create_batch(3)


def cold_and_warm(warmer: APIClient, client: APIClient, url: str, **extra) -> tuple[int, int]:
    """The status ``client`` gets for ``url`` before and after ``warmer`` filled the cache."""
    cold = client.get(url, **extra)
    warmed = [warmer.get(url).status_code for _ in range(2)]
    assert warmed == [200, 200], "the warming client must be able to read"
    warm = client.get(url, **extra)
    return cold.status_code, warm.status_code


@pytest.mark.urls("tests.performance.read_path_urls")
def test_a_permission_that_restricts_reads_holds_on_warm_hits(
    cache_backend, machines, reader, staff
):
    """The view's permission objects are asked, not guessed from their classes."""
    url = "/api/staff-only/workstations/?page_size=5"
    assert cold_and_warm(token_client(staff), token_client(reader), url) == (403, 403)


@pytest.mark.parametrize("accept", ["", "text/csv", "application/xml"])
def test_an_accept_no_renderer_offers_is_406_warm_as_cold(cache_backend, machines, reader, accept):
    reader_token = token_client(reader)
    assert cold_and_warm(reader_token, reader_token, LIST, HTTP_ACCEPT=accept) == (406, 406)


@pytest.mark.parametrize(
    ("suffix", "status"),
    [("\xa0", 401), ("\x85", 401), (" x", 401), ("\x0b", 200), ("\t", 200)],
    ids=["no-break space", "NEL", "two words", "vertical tab", "tab"],
)
def test_a_token_header_is_read_as_drf_reads_it(cache_backend, machines, reader, suffix, status):
    """DRF reads the header as bytes and splits it on ASCII white space only: a token followed
    by a no-break space or a NEL is not the token, one followed by a tab is."""
    client = token_client(reader, suffix=suffix)
    assert cold_and_warm(token_client(reader), client, LIST) == (status, status)


def test_warm_hits_are_throttled_like_any_read(cache_backend, machines, reader, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "user": "5/min",
        },
    }
    client = token_client(reader)
    statuses = [client.get(LIST).status_code for _ in range(30)]
    assert statuses == [200] * 5 + [429] * 25
    refused = client.get(LIST)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"]


@pytest.fixture
def by_token_and_session(machines, reader):
    session = APIClient()
    session.force_login(reader)
    return {"early read": token_client(reader), "DRF's path": session}


@pytest.mark.parametrize("path", ["early read", "DRF's path"])
@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("HTTP_IF_NONE_MATCH", "{etag}", 304),
        ("HTTP_IF_NONE_MATCH", "W/{etag}", 304),  # weak comparison
        ("HTTP_IF_NONE_MATCH", '"other", {etag}', 304),  # a list
        ("HTTP_IF_NONE_MATCH", "*", 304),
        ("HTTP_IF_NONE_MATCH", '"other"', 200),
        ("HTTP_IF_MATCH", "{etag}", 200),
        ("HTTP_IF_MATCH", '"other"', 412),  # RFC 9110: the precondition failed
    ],
)
def test_conditional_requests_follow_rfc_9110(
    cache_backend, by_token_and_session, path, header, value, status
):
    client = by_token_and_session[path]
    etag = client.get(LIST, HTTP_ACCEPT="application/json")["ETag"]
    response = client.get(LIST, HTTP_ACCEPT="application/json", **{header: value.format(etag=etag)})
    assert response.status_code == status
    assert response["ETag"] == etag
    assert response["X-Cache"] == "HIT"
    if status == 304:
        assert response.content == b""
