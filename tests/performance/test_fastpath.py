"""The warm-hit fast path: the same bytes and headers as DRF's path, for the same people."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance import cache as perf_cache
from performance.api.views import CacheStatsView
from performance.cache.fastpath import reads_need_only_authentication
from tests.factories import WorkstationFactory
from workstations.api.views import LocationViewSet, WorkstationViewSet

LIST = "/api/workstations/?page_size=5&status=staged"
HEADERS = ("Content-Type", "ETag", "X-Cache", "Cache-Control", "Allow")


@pytest.fixture
def clients(reader):
    WorkstationFactory.create_batch(4)
    token = Token.objects.create(user=reader)
    by_token = APIClient()
    by_token.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    by_session = APIClient()
    by_session.force_login(reader)
    return by_token, by_session


def _round_trips() -> int:
    return perf_cache.stats(include_keys=False)["totals"]["calls"]


def _lookups() -> int:
    stats = perf_cache.stats(include_keys=False)
    return stats["totals"]["hits"] + stats["totals"]["misses"]


@pytest.mark.django_db(transaction=True)
def test_a_token_hit_matches_the_drf_path_byte_for_byte(clients):
    by_token, by_session = clients
    first = by_session.get(LIST, HTTP_ACCEPT="application/json")  # fills the entry
    assert first["X-Cache"] == "MISS"
    drf_hit = by_session.get(LIST, HTTP_ACCEPT="application/json")
    fast_hit = by_token.get(LIST, HTTP_ACCEPT="application/json")
    assert fast_hit.status_code == drf_hit.status_code == 200
    assert fast_hit.content == drf_hit.content == first.content
    for name in HEADERS:
        assert fast_hit[name] == drf_hit[name], name
    assert set(fast_hit["Vary"].split(", ")) == set(drf_hit["Vary"].split(", "))


@pytest.mark.django_db(transaction=True)
def test_a_token_hit_costs_two_round_trips_and_no_sql(clients, django_assert_num_queries):
    by_token, _ = clients
    by_token.get(LIST)
    by_token.get(LIST)
    perf_cache.reset_stats()
    with django_assert_num_queries(0):
        assert by_token.get(LIST)["X-Cache"] == "HIT"
    # Two generations, then the token lookup and the entry: four keys in two round trips.
    assert _lookups() == 4
    assert _round_trips() == 2


@pytest.mark.django_db(transaction=True)
def test_if_none_match_gives_304_on_the_fast_path(clients):
    by_token, _ = clients
    etag = by_token.get(LIST)["ETag"]
    response = by_token.get(LIST, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag


@pytest.mark.django_db(transaction=True)
def test_an_unknown_token_never_gets_the_cached_bytes(clients):
    by_token, _ = clients
    assert by_token.get(LIST).status_code == 200
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token " + "f" * 40)
    response = stranger.get(LIST)
    assert response.status_code == 401
    assert b"results" not in response.content


@pytest.mark.django_db(transaction=True)
def test_the_browsable_api_and_other_formats_take_the_drf_path(clients):
    by_token, _ = clients
    by_token.get(LIST)
    html = by_token.get(LIST, HTTP_ACCEPT="text/html")
    assert html.status_code == 200
    assert "X-Cache" not in html
    assert b"<html" in html.content.lower()


def test_only_views_any_reader_may_read_are_served_early():
    assert reads_need_only_authentication(WorkstationViewSet)
    assert reads_need_only_authentication(LocationViewSet)
    assert not reads_need_only_authentication(CacheStatsView)
