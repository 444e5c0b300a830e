"""Cached API responses: same bytes on a hit, never across a boundary, never before auth."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from performance import cache as perf_cache
from tests.factories import LocationFactory, WorkstationFactory
from workstations.api.views import WorkstationViewSet
from workstations.choices import Status

from .support import LIST, LOCATIONS, SUMMARY, get, namespace_stats

pytestmark = pytest.mark.django_db

DUMMY_CACHE = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


@pytest.fixture
def workstations(db):
    location = LocationFactory(name="Lab")
    return [
        WorkstationFactory(hostname=f"ws-{n}", location=location, status=status)
        for n, status in enumerate([Status.STAGED, Status.IN_STOCK, Status.STAGED])
    ]


@pytest.mark.parametrize("path", [LIST, SUMMARY, LOCATIONS, "detail"])
def test_second_get_is_a_hit_with_identical_bytes_and_etag(cache_backend, api, workstations, path):
    if path == "detail":
        path = f"{LIST}{workstations[0].pk}/"
    first = get(api, path)
    second = get(api, path)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.content == first.content
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Content-Type"] == first.headers["Content-Type"] == "application/json"
    # Shared HTTP caches must not hand one user's response to another.
    assert "Authorization" in second.headers["Vary"]


def test_if_none_match_gives_304_without_a_body_on_hit_and_on_miss(
    cache_backend, api, workstations
):
    etag = get(api).headers["ETag"]

    on_hit = get(api, HTTP_IF_NONE_MATCH=etag)
    assert (on_hit.status_code, on_hit.headers["X-Cache"]) == (304, "HIT")
    assert on_hit.content == b""
    assert on_hit.headers["ETag"] == etag

    cache_backend.clear()
    on_miss = get(api, HTTP_IF_NONE_MATCH=f'"other", {etag}')
    assert (on_miss.status_code, on_miss.headers["X-Cache"]) == (304, "MISS")
    assert on_miss.content == b""

    stale = get(api, HTTP_IF_NONE_MATCH='"not-the-current-etag"')
    assert (stale.status_code, stale.headers["X-Cache"]) == (200, "HIT")
    assert stale.json()["count"] == 3


def test_query_parameters_in_another_order_share_one_entry(cache_backend, api, workstations):
    first = get(api, f"{LIST}?status=staged&ordering=-hostname&page_size=1")
    second = get(api, f"{LIST}?page_size=1&ordering=-hostname&status=staged")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.content == first.content
    assert [ws["hostname"] for ws in second.json()["results"]] == ["ws-2"]


def test_repeated_parameters_in_another_order_are_another_request(cache_backend, api, workstations):
    # The ordering filter reads every value, in order: these two ask for opposite orders.
    descending = get(api, f"{LIST}?ordering=-hostname&ordering=hostname")
    ascending = get(api, f"{LIST}?ordering=hostname&ordering=-hostname")
    assert ascending.headers["X-Cache"] == "MISS"
    assert [ws["hostname"] for ws in ascending.json()["results"]] == ["ws-0", "ws-1", "ws-2"]
    assert [ws["hostname"] for ws in descending.json()["results"]] == ["ws-2", "ws-1", "ws-0"]


def test_different_query_strings_get_different_entries(cache_backend, api, workstations):
    staged = get(api, LIST, {"status": "staged"})
    in_stock = get(api, LIST, {"status": "in_stock"})
    assert (staged.headers["X-Cache"], in_stock.headers["X-Cache"]) == ("MISS", "MISS")
    assert (staged.json()["count"], in_stock.json()["count"]) == (2, 1)
    assert get(api, LIST, {"status": "in_stock"}).json()["count"] == 1


def test_the_browsable_api_is_never_cached(cache_backend, api, workstations):
    for _ in range(2):
        response = api.get(LIST, {"format": "api"})
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert "X-Cache" not in response.headers
    # ...and a JSON client after it is not served the HTML.
    response = get(api)
    assert (response.headers["X-Cache"], response.headers["Content-Type"]) == (
        "MISS",
        "application/json",
    )


def test_format_parameter_is_part_of_the_key(cache_backend, api, workstations):
    # Pagination links repeat the query string, so ?format=json changes the bytes.
    by_header = get(api, LIST, {"page_size": 1})
    by_format = api.get(LIST, {"page_size": 1, "format": "json"})
    assert by_format.headers["X-Cache"] == "MISS"
    assert "format=json" in by_format.json()["next"]
    assert "format=json" not in by_header.json()["next"]
    assert get(api, LIST, {"page_size": 1}).content == by_header.content


def test_hosts_get_their_own_entries_and_links(cache_backend, api, workstations, settings):
    settings.ALLOWED_HOSTS = ["a.example.com", "b.example.com"]
    first = get(api, LIST, {"page_size": 1}, HTTP_HOST="a.example.com")
    second = get(api, LIST, {"page_size": 1}, HTTP_HOST="b.example.com")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "MISS")
    assert first.json()["next"].startswith("http://a.example.com/")
    assert second.json()["next"].startswith("http://b.example.com/")
    again = get(api, LIST, {"page_size": 1}, HTTP_HOST="b.example.com")
    assert again.headers["X-Cache"] == "HIT"
    assert again.json()["next"].startswith("http://b.example.com/")


def test_a_proxy_setting_changed_gives_its_own_entries_and_links(
    cache_backend, api, workstations, settings
):
    """What a request's scheme and host are is remembered per headers, and forgotten when the
    settings that decide it change: the same headers then make another key and other links."""
    settings.ALLOWED_HOSTS = ["a.example.com", "b.example.com"]
    headers = {"HTTP_HOST": "a.example.com", "HTTP_X_FORWARDED_HOST": "b.example.com"}
    headers["HTTP_X_FORWARDED_PROTO"] = "https"
    for _ in range(2):
        direct = get(api, LIST, {"page_size": 1}, **headers)
        assert direct.json()["next"].startswith("http://a.example.com/")
    settings.USE_X_FORWARDED_HOST = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    for outcome in ("MISS", "HIT"):
        proxied = get(api, LIST, {"page_size": 1}, **headers)
        assert proxied.headers["X-Cache"] == outcome
        assert proxied.json()["next"].startswith("https://b.example.com/")
    settings.ALLOWED_HOSTS = ["a.example.com"]
    assert get(api, LIST, {"page_size": 1}, **headers).status_code == 400


@pytest.mark.parametrize("times", [1, 3])
def test_conditional_answers_are_the_same_however_often_asked(
    cache_backend, api, workstations, times
):
    """A warm hit remembers what Django's conditional handling decided for the same headers:
    asking again answers the same, with the headers of a cached representation."""
    etag = get(api).headers["ETag"]
    weak = f"W/{etag}"
    cases = [
        ({"HTTP_IF_NONE_MATCH": f'"other", {weak}'}, 304),  # weak comparison, a list
        ({"HTTP_IF_NONE_MATCH": "*"}, 304),
        ({"HTTP_IF_NONE_MATCH": '"other"'}, 200),
        ({"HTTP_IF_MATCH": weak}, 412),  # If-Match compares strongly
        ({"HTTP_IF_MATCH": etag}, 200),
    ]
    for _ in range(times):
        for headers, status in cases:
            response = get(api, **headers)
            assert (response.status_code, response.headers["X-Cache"]) == (status, "HIT")
            assert response.headers["ETag"] == etag
            assert (response.content == b"") == (status != 200)


@pytest.mark.parametrize(
    ("path", "status"), [(f"{LIST}?status=bogus", 400), (f"{LIST}999999/", 404)]
)
def test_errors_are_never_cached(cache_backend, api, workstations, path, status):
    for _ in range(2):
        response = get(api, path)
        assert response.status_code == status
        assert response.headers.get("X-Cache") != "HIT"
    assert namespace_stats("workstations")["sets"] == 0


def test_anonymous_gets_401_even_when_the_entry_is_warm(cache_backend, api, workstations):
    get(api)
    assert get(api).headers["X-Cache"] == "HIT"
    response = get(APIClient())
    assert response.status_code == 401
    assert "results" not in response.json()
    assert "X-Cache" not in response.headers


def test_invalid_token_gets_401_even_when_the_entry_is_warm(cache_backend, api, workstations):
    get(api)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert get(client).status_code == 401


@pytest.mark.parametrize("path", [LIST, SUMMARY, LOCATIONS])
def test_a_hit_runs_no_sql_and_a_miss_as_much_as_no_cache(
    cache_backend, api, workstations, path, django_assert_num_queries
):
    with override_settings(CACHES=DUMMY_CACHE), CaptureQueriesContext(connection) as uncached:
        response = get(api, path)
        assert response.status_code == 200
        assert "X-Cache" not in response.headers or response.headers["X-Cache"] == "MISS"
    assert len(uncached) > 0

    with CaptureQueriesContext(connection) as miss:
        assert get(api, path).headers["X-Cache"] == "MISS"
    assert len(miss) == len(uncached)

    with django_assert_num_queries(0):
        assert get(api, path).headers["X-Cache"] == "HIT"


def test_every_reader_shares_the_entry(cache_backend, api, workstations, reader_client):
    get(api)
    response = get(reader_client)
    assert response.headers["X-Cache"] == "HIT"
    assert response.json()["count"] == 3


# Stampede: one cold key, many callers, one computation -----------------------------------------

THREADS = 20


@pytest.mark.django_db(transaction=True)
def test_concurrent_cold_requests_compute_once(cache_backend, reader, workstations, monkeypatch):
    waiting: set[int] = set()
    waiting_lock = threading.Lock()
    all_waiting = threading.Event()
    computed = []

    def sleep(seconds: float) -> None:
        with waiting_lock:
            waiting.add(threading.get_ident())
            if len(waiting) == THREADS - 1:
                all_waiting.set()
        time.sleep(seconds)

    original = WorkstationViewSet.filter_queryset

    def filter_queryset(view, queryset):
        # The winner holds on until every other request is waiting for its result, so the
        # stampede is real whatever the scheduling.
        computed.append(threading.get_ident())
        all_waiting.wait(timeout=10)
        return original(view, queryset)

    monkeypatch.setattr(WorkstationViewSet, "sleep", staticmethod(sleep))
    monkeypatch.setattr(WorkstationViewSet, "stampede_wait", 30.0)
    monkeypatch.setattr(WorkstationViewSet, "filter_queryset", filter_queryset)
    start = threading.Barrier(THREADS)

    def request(_: int):
        try:
            client = APIClient()
            client.force_authenticate(user=reader)
            start.wait(timeout=10)
            response = get(client)
            return response.status_code, response.headers.get("X-Cache"), response.content
        finally:
            connections.close_all()

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(request, range(THREADS), timeout=60))

    assert len(computed) == 1
    assert namespace_stats("workstations")["sets"] == 1
    # One response each, counted as the client sees it: the waiters were answered from the
    # cache, whatever lookups they made while they waited.
    assert namespace_stats("workstations")["hits"] == THREADS - 1
    assert namespace_stats("workstations")["misses"] == 1
    assert {status for status, _, _ in results} == {200}
    assert sorted(outcome for _, outcome, _ in results) == ["HIT"] * (THREADS - 1) + ["MISS"]
    assert len({body for _, _, body in results}) == 1
    assert json.loads(results[0][2])["count"] == 3


# Warming ------------------------------------------------------------------------------------------


def test_warm_fills_the_first_pages_for_the_configured_hosts(
    cache_backend, api, workstations, settings
):
    settings.CACHE_WARM_HOSTS = ["inventory.example.com", "127.0.0.1:8000"]
    settings.ALLOWED_HOSTS = ["inventory.example.com", "127.0.0.1", "other.example.com"]
    filled = perf_cache.warm()
    assert filled == {"workstations": 8, "locations": 2}

    for host in settings.CACHE_WARM_HOSTS:
        for path in (LIST, SUMMARY, f"{LIST}?status=deployed", LOCATIONS):
            response = get(api, path, HTTP_HOST=host)
            assert (response.status_code, response.headers["X-Cache"]) == (200, "HIT"), path
        assert get(api, LIST, HTTP_HOST=host).json()["count"] == 3
    assert get(api, LIST, HTTP_HOST="other.example.com").headers["X-Cache"] == "MISS"
    assert perf_cache.warm() == {"workstations": 0, "locations": 0}


def test_warm_skips_hosts_that_are_not_allowed(cache_backend, api, workstations, settings):
    settings.CACHE_WARM_HOSTS = ["evil.example.com"]
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    assert perf_cache.warm() == {"workstations": 0, "locations": 0}
    assert namespace_stats("workstations")["sets"] == 0
