"""The query contract on the cached read path: a refused query string is refused warm as cold,
before any cache key is made for it (docs/design.md, "A cached GET").

Requests carry a token, so warm ones are answered by the early read (``read_early``).
"""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance import cache as perf_cache
from tests.factories import WorkstationFactory
from workstations.api.base import StrictQueryMixin

from .support import LIST, LOCATIONS, SUMMARY, namespace_stats

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = [
    pytest.param(LIST, {"stauts": "deployed"}, ["stauts"], id="unknown-name"),
    pytest.param(LIST, {"assigned_to__username": "alice"}, ["assigned_to__username"], id="lookup"),
    pytest.param(LIST, {"ordering": "bogus"}, ["ordering"], id="ordering"),
    pytest.param(LIST, {"page_size": "abc"}, ["page_size"], id="page-size"),
    pytest.param(LIST, {"page_size": "0"}, ["page_size"], id="page-size-0"),
    pytest.param(LIST, {"search": "x" * 201}, ["search"], id="search-too-long"),
    pytest.param(SUMMARY, {"page_size": "5"}, ["page_size"], id="summary-is-not-paginated"),
    pytest.param(LOCATIONS, {"ordering": "-hostname"}, ["ordering"], id="location-ordering"),
]
#: Those an older release answered 200 (it refused an overlong search already, when filtering).
ONCE_ANSWERED = [param for param in REFUSED if param.id != "search-too-long"]


@pytest.fixture
def client(reader) -> APIClient:
    WorkstationFactory.create_batch(3)
    token = Token.objects.create(user=reader)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}", HTTP_ACCEPT="application/json")
    return client


def response_keys() -> set[str]:
    backend = perf_cache.backend()
    return {key for key in backend.logical_keys("*") if not key.startswith(("auth:", "throttle:"))}


@pytest.mark.parametrize(("path", "params", "named"), REFUSED)
def test_a_refused_query_makes_no_cache_key_and_counts_no_miss(
    cache_backend, client, path, params, named
):
    assert client.get(path)["X-Cache"] == "MISS"  # the namespace, generation and user warm
    assert client.get(path)["X-Cache"] == "HIT"
    keys, before = response_keys(), namespace_stats(path.split("/")[2])

    for _ in range(2):
        response = client.get(path, params)
        assert response.status_code == 400
        assert list(response.json()) == named
        assert "X-Cache" not in response

    assert response_keys() == keys
    assert namespace_stats(path.split("/")[2])["misses"] == before["misses"]


@pytest.mark.parametrize(("path", "params", "named"), ONCE_ANSWERED)
def test_a_refused_query_is_refused_even_with_an_entry_under_its_key(
    cache_backend, client, monkeypatch, path, params, named
):
    """An entry stored under a refused query's key (by a release that answered it, on a shared
    Redis) is never served: the early read asks the contract before it makes the key."""
    with monkeypatch.context() as older_release:
        older_release.setattr(StrictQueryMixin, "query_errors", lambda self, request: {})
        assert client.get(path, params).status_code == 200
        assert client.get(path, params)["X-Cache"] == "HIT"
    # What the older release's process settled for the request went with that process.
    cache_backend.state.settled.clear()

    response = client.get(path, params)
    assert (response.status_code, list(response.json())) == (400, named)


def test_an_accepted_query_is_still_a_warm_hit(cache_backend, client):
    query = {"status": "deployed", "ordering": ["-purchase_date", "hostname"], "page_size": "2"}
    assert client.get(LIST, query)["X-Cache"] == "MISS"
    assert client.get(LIST, query)["X-Cache"] == "HIT"


def test_anonymous_requests_are_refused_for_who_they_are_first(cache_backend, client):
    """The contract is asked after authentication, as DRF's ``initial()`` orders its checks."""
    response = APIClient().get(LIST, {"stauts": "deployed"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 401


def test_warming_the_cache_leaves_the_summary_unpaginated(cache_backend, client, settings):
    """The warmer made its views without the summary's own settings (no pagination), and the
    contract remembered what that view read for every summary request after it."""
    from workstations.warming import warm_workstations

    settings.CACHE_WARM_HOSTS = ["testserver"]
    assert warm_workstations() > 0
    response = client.get(SUMMARY, {"page_size": "5"})
    assert (response.status_code, list(response.json())) == (400, ["page_size"])
