"""A list page nobody asked for yet, in a list whose generations and count are cached: what the
early read found is not read again on DRF's path, the count is shared by every page of the list,
and the page is stored in the step that releases its lock (``cache.responses``, "A cached GET";
docs/design.md, "List pages")."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from performance import cache as perf_cache
from performance.cache import sync
from performance.cache.keys import lock_key
from project import settings as project_settings
from project.renderers import FastJSONRenderer
from tests.factories import LocationFactory, WorkstationFactory
from workstations import selectors, services
from workstations.api import views
from workstations.api.serializers import WorkstationSerializer
from workstations.models import Workstation

LIST = "/api/workstations/"


@pytest.fixture
def by_token(reader, transactional_db) -> APIClient:
    for n in range(6):
        WorkstationFactory(hostname=f"ws-{n}", status="staged" if n % 2 else "in_stock")
    assert sync.sync()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=reader).key}")
    return client


def _round_trips() -> int:
    return perf_cache.stats(include_keys=False)["totals"]["calls"]


def _cold(client: APIClient, path: str, n: int):
    """``path`` under a media type nobody asked for yet (a new key, the same SQL and body)."""
    return client.get(path, HTTP_ACCEPT=f"application/json; cold={n}")


@pytest.mark.redis
def test_a_cold_page_of_a_list_read_before_costs_four_round_trips_and_no_query(
    redis_cache, by_token, django_assert_num_queries
):
    by_token.get(f"{LIST}?page_size=10")  # the token, the generations, the list, every row
    for _ in range(2):  # this page; the purge epoch
        _cold(by_token, f"{LIST}?page_size=2", 0)
    perf_cache.reset_stats()
    with django_assert_num_queries(0):  # the page's ids and count: remembered with the list
        response = _cold(by_token, f"{LIST}?page_size=2", 1)
    assert response["X-Cache"] == "MISS"
    # The early read (generations, the token's); the entry looked up, with the lock and the
    # list's ids with its count read ahead; the rows with their generations; the store (which
    # releases the lock). (For a page nobody asked for in any media type, its generation is
    # seeded by the lookup: the test below.)
    assert _round_trips() == 4
    assert _cold(by_token, f"{LIST}?page_size=2", 1)["X-Cache"] == "HIT"


@pytest.mark.redis
def test_a_page_asked_for_the_first_time_is_seeded_locked_and_read_ahead_in_one_round_trip(
    redis_cache, by_token, django_assert_num_queries
):
    by_token.get(f"{LIST}?page_size=10")  # the token, the generations, the list, every row
    perf_cache.reset_stats()
    with django_assert_num_queries(0):
        response = by_token.get(f"{LIST}?page_size=2&page=2")
    assert response["X-Cache"] == "MISS"
    # The early read (the page's generation missing: nobody asked for it); the lookup: the
    # generation seeded, the lock, the list's ids read ahead; the rows; the store.
    assert _round_trips() == 4
    assert by_token.get(f"{LIST}?page_size=2&page=2")["X-Cache"] == "HIT"


def test_a_page_whose_generation_another_request_seeded_first_is_keyed_by_theirs(
    cache_backend, by_token, monkeypatch
):
    """Two requests for a page nobody asked for: each proposes a generation with its lookup,
    the first stored wins, and the other keys the page by it — so it is stored once, where
    the next request looks."""
    path = f"{LIST}?page_size=2&page=3"
    by_token.get(f"{LIST}?page_size=10")  # the token, the generations, the list's ids
    cache = perf_cache.backend()
    lookup = type(cache).lookup
    theirs = []

    def seeded_first(self, key, lock, lock_timeout, ahead=(lambda: ()), seed=None):
        if seed is not None and not theirs:  # the other request's seed lands just before
            theirs.append(seed.value - 1000)
            assert self.add(seed.key, theirs[0], seed.lives)
        return lookup(self, key, lock, lock_timeout, ahead, seed)

    monkeypatch.setattr(type(cache), "lookup", seeded_first)
    response = by_token.get(path)
    assert response.status_code == 200 and response["X-Cache"] == "MISS"
    assert theirs
    assert perf_cache.backend().get(_page_generation_key(by_token, path)) == theirs[0]
    assert by_token.get(path)["X-Cache"] == "HIT"


def _page_generation_key(client: APIClient, path: str) -> str:
    """The generation key of the page ``path`` (what ``CachedResponseMixin._scopes`` reads)."""
    from django.test import RequestFactory

    from performance.cache.keys import generation_key, page_digest, page_scope

    return generation_key(page_scope("workstations", page_digest(RequestFactory().get(path))))


def test_a_lock_taken_by_the_early_lookup_is_given_back_if_nothing_is_computed(
    cache_backend, by_token, monkeypatch
):
    """The early read takes a missing page's lock with its lookup; when DRF's path then
    answers without computing the page (here: a failure before it), the lock is given back,
    so that the next request computes the page rather than waiting for one that never comes."""
    path = f"{LIST}?page_size=2"
    by_token.get(path)  # the token and the generations are cached: the early read settles
    waits = []
    monkeypatch.setattr(
        "performance.cache.responses.CachedResponseMixin.sleep",
        staticmethod(waits.append),
    )
    original = views.WorkstationViewSet.initial

    def failing(self, request, *args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(views.WorkstationViewSet, "initial", failing)
    by_token.raise_request_exception = False
    assert _cold(by_token, path, 1).status_code == 500
    monkeypatch.setattr(views.WorkstationViewSet, "initial", original)
    response = _cold(by_token, path, 1)
    assert response["X-Cache"] == "MISS" and response.status_code == 200
    assert waits == []  # computed at once: no lock was left behind
    assert _cold(by_token, path, 1)["X-Cache"] == "HIT"


def test_the_lock_taken_to_compute_a_page_is_released_by_its_store(cache_backend, by_token):
    response = _cold(by_token, f"{LIST}?page_size=2", 1)
    assert response["X-Cache"] == "MISS"
    cache = perf_cache.backend()
    if hasattr(cache, "_cache"):  # local memory: the process's own dictionary
        stored = [str(key) for key in cache._cache]
    else:
        stored = [key.decode() for key in cache.client.get_client().keys("*")]
    assert any(":workstations:" in key for key in stored)  # (the page is there)
    assert [key for key in stored if lock_key("workstations") in key] == []


@pytest.mark.redis
def test_a_cold_detail_costs_four_round_trips_and_is_stored_with_its_lock_released(
    redis_cache, by_token, django_assert_num_queries
):
    """A detail whose row was rendered before, under a key nobody asked for: the early read,
    the lookup (with the lock), the row with its generation, and the store, which releases
    the lock in the same round trip."""
    machine = Workstation.objects.order_by("pk").first()
    path = f"{LIST}{machine.pk}/"
    by_token.get(f"{LIST}?page_size=10")  # the token, the generations, every row rendered
    _cold(by_token, path, 0)  # the object's generation; the purge epoch
    perf_cache.reset_stats()
    with django_assert_num_queries(0):
        response = _cold(by_token, path, 1)
    assert response["X-Cache"] == "MISS" and response.json()["id"] == machine.pk
    assert _round_trips() == 4
    raw = perf_cache.backend().client.get_client()
    assert [key for key in raw.keys("*") if b":_lock:" in key] == []
    assert _cold(by_token, path, 1)["X-Cache"] == "HIT"


@pytest.mark.redis
def test_what_a_cold_page_remembers_is_stored_with_it_in_one_round_trip(
    redis_cache, by_token, django_assert_num_queries
):
    """A page of a list whose ids are not remembered, with rows never rendered: the list's ids
    and the rows, read from the database, are remembered — stored with the page, in the round
    trip that stores it, not one round trip each."""
    by_token.get(f"{LIST}?page_size=10")  # the token, the generations, every row rendered
    for n in range(2):  # two rows never rendered; the lists' layout moves
        services.workstation_create(
            data={"asset_tag": f"AT-NEW-{n}", "hostname": f"ws-new-{n}", "serial_number": ""}
        )
    _cold(by_token, f"{LIST}?page_size=10", 0)  # the generations as they are now
    services.workstation_create(
        data={"asset_tag": "AT-NEW-2", "hostname": "ws-new-2", "serial_number": ""}
    )
    perf_cache.reset_stats()
    with django_assert_num_queries(2):  # the list's ids (and count); the rows not rendered
        response = _cold(by_token, f"{LIST}?page_size=10", 1)
    assert response["X-Cache"] == "MISS"
    assert [row["hostname"] for row in response.json()["results"]][-3:] == [
        "ws-new-0",
        "ws-new-1",
        "ws-new-2",
    ]
    # The early read; the lookup (the lock, the ids read ahead: missing); the rows with their
    # generations; the store, with the ids and the rows rendered.
    assert _round_trips() == 4
    # What was remembered is there for the next page of the same list, in another media type.
    with django_assert_num_queries(0):
        again = _cold(by_token, f"{LIST}?page_size=10", 2)
    assert again["X-Cache"] == "MISS" and again.content == response.content


@pytest.mark.redis
def test_a_page_stored_where_the_server_has_not_seen_its_script_yet(
    redis_cache, by_token, monkeypatch
):
    """The store of a page that takes remembered values along names its script by digest; a
    server that does not know it (restarted, flushed) gets it, and the page is stored."""
    from performance.cache import redis as redis_backend

    by_token.get(f"{LIST}?page_size=10")
    services.workstation_create(data={"asset_tag": "AT-S", "hostname": "ws-s", "serial_number": ""})
    monkeypatch.setattr(redis_backend._STORE_PAGE, "sha", "0" * 40)  # (no such script)
    assert _cold(by_token, f"{LIST}?page_size=10", 1)["X-Cache"] == "MISS"
    assert _cold(by_token, f"{LIST}?page_size=10", 1)["X-Cache"] == "HIT"


def _handed_out(redis_cache, monkeypatch) -> list[int]:
    """Filled with a 1 each time the primary's pool hands a connection out, from now until
    ``monkeypatch.undo()``; the statistics, which go to Redis by the clock, are not sent
    meanwhile."""
    pool = redis_cache.client.redis().connection_pool
    handed: list[int] = []
    get_connection = pool.get_connection

    def counted(*args, **kwargs):
        handed.append(1)
        return get_connection(*args, **kwargs)

    monkeypatch.setattr(type(redis_cache), "flush_interval", 3600.0)
    monkeypatch.setattr(pool, "get_connection", counted)
    return handed


@pytest.mark.redis
def test_a_cold_page_s_lookup_runs_on_the_thread_s_connection(redis_cache, by_token, monkeypatch):
    """A miss's scripts by digest (the early read with the request's rates, the lookup, the
    page's store) go on the connection this thread keeps, as the warm read without rates does:
    none of a cold page's four round trips asks the pool for a connection (a hand-over: its
    lock, a readiness poll, its accounting)."""
    by_token.get(f"{LIST}?page_size=10")  # the token, the generations, the list, every row
    for _ in range(2):
        _cold(by_token, f"{LIST}?page_size=2", 0)
    perf_cache.reset_stats()
    handed = _handed_out(redis_cache, monkeypatch)
    response = _cold(by_token, f"{LIST}?page_size=2", 1)
    assert (response.status_code, response["X-Cache"]) == (200, "MISS")
    assert handed == []
    monkeypatch.undo()
    assert _round_trips() == 4
    assert _cold(by_token, f"{LIST}?page_size=2", 1)["X-Cache"] == "HIT"


@pytest.mark.redis
def test_a_miss_stores_what_it_computed_on_the_thread_s_connection(
    redis_cache, by_token, monkeypatch
):
    """What a miss stores — a page with the list's ids and the rows it rendered on the way, a
    detail with the release of its lock — goes in one round trip on the connection this
    thread keeps, not a pipeline of redis-py's on one the pool hands out."""
    for _ in range(2):  # the token, the generations, the list, every row; the purge epoch
        by_token.get(f"{LIST}?page_size=10")
    created = services.workstation_create(
        data={"asset_tag": "AT-T", "hostname": "ws-t", "serial_number": ""}
    )
    # Changed once: its generation is there (one never changed is seeded first, on its own).
    services.workstation_update(workstation=created, data={"notes": "changed"})
    perf_cache.reset_stats()
    handed = _handed_out(redis_cache, monkeypatch)
    page = _cold(by_token, f"{LIST}?page_size=10", 1)  # the list's ids and the new row: stored
    detail = _cold(by_token, f"{LIST}{created.pk}/", 1)  # its row, remembered by the page
    assert (page.status_code, page["X-Cache"]) == (200, "MISS")
    assert (detail.status_code, detail["X-Cache"]) == (200, "MISS")
    assert handed == []
    monkeypatch.undo()
    assert _round_trips() == 8  # four each
    assert _cold(by_token, f"{LIST}?page_size=10", 1).content == page.content
    assert _cold(by_token, f"{LIST}{created.pk}/", 1)["X-Cache"] == "HIT"


@pytest.mark.redis
def test_a_lookup_where_the_server_has_not_seen_its_script_yet(redis_cache, by_token, monkeypatch):
    """A miss's lookup names its script by digest; a server that does not know it (restarted,
    flushed) gets it, and the page is computed and stored as ever."""
    from performance.cache import redis as redis_backend

    by_token.get(f"{LIST}?page_size=10")
    monkeypatch.setattr(redis_backend._LOOKUP, "sha", "0" * 40)  # (no such script)
    assert _cold(by_token, f"{LIST}?page_size=3", 1)["X-Cache"] == "MISS"
    assert _cold(by_token, f"{LIST}?page_size=3", 1)["X-Cache"] == "HIT"


def test_what_a_response_not_stored_remembered_is_stored_all_the_same(
    cache_backend, by_token, django_assert_num_queries
):
    """A page past the end of a list is a 404, not stored; the list's ids it read on the way
    are remembered all the same: the list's pages read no ids."""
    by_token.get(f"{LIST}?page_size=10")  # the token, the generations
    services.workstation_create(data={"asset_tag": "AT-E", "hostname": "ws-e", "serial_number": ""})
    assert by_token.get(f"{LIST}?page_size=2&page=50").status_code == 404
    with django_assert_num_queries(0):
        assert by_token.get(f"{LIST}?page_size=2&page=2").status_code == 200


def test_writes_wait_for_their_own_cache_s_store_only(settings):
    """Within one cache's ``writes_deferred``, another cache's writes are made at once, and
    its store takes none of the first cache's along."""
    from django.core.cache import caches

    from .support import LOCMEM, unique

    settings.CACHES = {
        alias: {"BACKEND": LOCMEM, "LOCATION": unique(alias), "KEY_PREFIX": unique(alias)}
        for alias in ("default", "other")
    }
    mine, other = caches["default"], caches["other"]
    with mine.writes_deferred():
        mine.set_later({"workstations:mine": 1}, 60)
        other.set_later({"workstations:other": 2}, 60)
        assert other.get("workstations:other") == 2
        assert mine.get("workstations:mine") is None  # waiting for its store
        other.store("workstations:page", 3, 60)
        assert other.get("workstations:mine") is None
        assert mine.get("workstations:mine") is None
        mine.store("workstations:page", 4, 60)
        assert mine.get("workstations:mine") == 1
    assert (mine.get("workstations:page"), other.get("workstations:page")) == (4, 3)


def test_every_page_and_order_of_a_list_shares_its_count(cache_backend, by_token):
    first = by_token.get(f"{LIST}?page_size=2&status=staged")
    assert first.json()["count"] == 3
    for path in (
        f"{LIST}?page_size=2&status=staged&page=2",
        f"{LIST}?status=staged&page_size=1&ordering=-hostname",
        f"{LIST}?page=3&status=staged&page_size=1",
    ):
        with CaptureQueriesContext(connection) as queries:
            response = by_token.get(path)
        assert response["X-Cache"] == "MISS"
        assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"]]
        assert response.json()["count"] == 3


def test_lists_that_hold_other_rows_count_apart(cache_backend, by_token):
    counts = {
        query: by_token.get(f"{LIST}?{query}").json()["count"]
        for query in ("status=staged", "status=in_stock", "status=staged&status=in_stock", "")
    }
    assert counts == {
        "status=staged": 3,
        "status=in_stock": 3,
        "status=staged&status=in_stock": 6,
        "": 6,
    }
    WorkstationFactory(hostname="ws-new", status="staged")
    assert sync.sync()  # taken in, as the sweep does
    assert by_token.get(f"{LIST}?status=staged").json()["count"] == 4


def _awkward_workstation() -> Workstation:
    """One with what JSON writes in more than one way: non-ASCII text, U+2028, quotes, a
    backslash, a decimal; taken in, as the sweep does."""
    machine = WorkstationFactory(
        hostname="ws-00",
        location=LocationFactory(name="Zürich / Büro 3"),
        notes='line\u2028separator, "quotes", \\ and ünïcode',
        purchase_cost=Decimal("899.5"),
    )
    assert sync.sync()
    return machine


def _rows_sql(queries) -> list[str]:
    return [q["sql"] for q in queries if "workstations_workstation" in q["sql"]]


def test_a_page_of_rows_rendered_apart_has_the_bytes_of_the_page_rendered_whole(
    cache_backend, by_token
):
    _awkward_workstation()
    path = f"{LIST}?page_size=3"
    computed = _cold(by_token, path, 1)  # rows rendered and kept
    assembled = _cold(by_token, path, 2)  # a new key: rows from the cache
    assert computed["X-Cache"] == assembled["X-Cache"] == "MISS"
    rows = selectors.workstation_list().order_by("hostname", "pk")[:3]
    whole = {
        "count": 7,
        "next": "http://testserver/api/workstations/?page=2&page_size=3",
        "previous": None,
        "results": WorkstationSerializer(rows, many=True).data,
    }
    for renderer in (FastJSONRenderer(), JSONRenderer()):
        assert computed.content == assembled.content == renderer.render(whole)
    assert b"\\u2028" in computed.content
    indented = by_token.get(path, HTTP_ACCEPT="application/json; indent=2")
    assert indented.content.startswith(b'{\n  "count": 7')
    assert indented.json() == computed.json()


@pytest.mark.parametrize("how", ["service", "update()"])
def test_a_changed_workstation_is_rendered_again_and_no_other_row(
    cache_backend, by_token, how, django_assert_num_queries
):
    path = f"{LIST}?page_size=4"
    _cold(by_token, path, 1)
    with django_assert_num_queries(0):  # the list's ids remembered; every row from the cache
        _cold(by_token, path, 2)
    changed = Workstation.objects.get(hostname="ws-2")
    if how == "service":
        services.workstation_update(workstation=changed, data={"notes": "changed"})
    else:
        Workstation.objects.filter(pk=changed.pk).update(notes="changed")
        assert sync.sync()
    with CaptureQueriesContext(connection) as queries:
        response = _cold(by_token, path, 3)
    (again,) = _rows_sql(queries.captured_queries)  # one row: a note moves no list
    assert f"IN ({changed.pk})" in again.replace('"workstations_workstation"."id" ', "")
    notes = {row["hostname"]: row["notes"] for row in response.json()["results"]}
    assert notes["ws-2"] == "changed"
    assert response.json() == by_token.get(path, HTTP_ACCEPT="application/json; indent=1").json()


def test_listing_the_whole_inventory_keeps_what_was_cached(settings, by_token):
    """The embedded default's bounds (``project/settings.py``) hold the rows of a large
    inventory besides the pages: listing every row, which keeps each rendered, does not push
    out the pages cached before."""
    settings.CACHES = {
        "default": {**project_settings.CACHES["default"], "LOCATION": f"rows-{uuid.uuid4()}"}
    }
    if project_settings.REDIS_URL:
        pytest.skip("the embedded default's bounds: this run's settings use Redis")
    Workstation.objects.bulk_create(
        Workstation(asset_tag=f"R-{n}", hostname=f"r-{n:05d}") for n in range(6000)
    )
    assert sync.sync()
    assert by_token.get(f"{LIST}?page_size=50")["X-Cache"] == "MISS"
    for page in range(1, 14):
        assert by_token.get(f"{LIST}?page_size=500&page={page}").status_code == 200
    assert by_token.get(f"{LIST}?page_size=50")["X-Cache"] == "HIT"


def test_a_detail_is_its_row_as_a_list_rendered_it(
    cache_backend, by_token, django_assert_num_queries
):
    machine = _awkward_workstation()
    detail = f"{LIST}{machine.pk}/"
    whole = WorkstationSerializer(selectors.workstation_list().get(pk=machine.pk)).data
    computed = _cold(by_token, detail, 1)  # the row rendered, kept
    assert computed["X-Cache"] == "MISS"
    assert computed.content == FastJSONRenderer().render(whole) == JSONRenderer().render(whole)
    by_token.get(f"{LIST}?page_size=10")  # every row rendered by a list
    for n, other in enumerate(Workstation.objects.exclude(pk=machine.pk)):
        with django_assert_num_queries(0):  # a cold detail: its row is there
            response = _cold(by_token, f"{LIST}{other.pk}/", n)
        assert response["X-Cache"] == "MISS"
        assert response.json()["hostname"] == other.hostname
    assert _cold(by_token, detail, 2).content == computed.content
    indented = by_token.get(detail, HTTP_ACCEPT="application/json; indent=2")
    assert indented.json() == computed.json()


@pytest.mark.parametrize("how", ["service", "delete()"])
def test_a_deleted_workstation_is_not_found_though_its_row_was_rendered(
    cache_backend, by_token, how
):
    machine = Workstation.objects.get(hostname="ws-3")
    detail = f"{LIST}{machine.pk}/"
    assert _cold(by_token, detail, 1).status_code == 200
    if how == "service":
        services.workstation_delete(workstation=machine)
    else:
        Workstation.objects.filter(pk=machine.pk).delete()
        assert sync.sync()
    gone = _cold(by_token, detail, 2)
    assert gone.status_code == 404
    assert gone.json() == by_token.get(f"{LIST}999999/").json()


@pytest.mark.redis
def test_rows_of_workstations_never_changed_are_seeded_in_one_round_trip(redis_cache, by_token):
    # One statement adds 70: more than a change notes one by one, so the namespace moves on
    # as a whole and none of them has a generation of its own yet.
    Workstation.objects.bulk_create(
        Workstation(asset_tag=f"B-{n}", hostname=f"b-{n:02d}") for n in range(70)
    )
    assert sync.sync()
    by_token.get(f"{LIST}?page_size=1")  # the token, the list's ids and count
    perf_cache.reset_stats()
    response = by_token.get(f"{LIST}?page_size=50")
    assert len(response.json()["results"]) == 50
    # The early read, the lookup (the page's generation seeded, the lock, the ids and count
    # read ahead), the rows and their generations, the fifty generations seeded together, the
    # page stored with the rows rendered.
    assert _round_trips() == 5
    assert _cold(by_token, f"{LIST}?page_size=50", 1).json() == response.json()


def _ids_sql(queries) -> list[str]:
    """The queries that read a list's ids or count (not its rows' columns)."""
    return [
        sql
        for sql in _rows_sql(queries.captured_queries)
        if '"asset_tag"' not in sql.split("FROM")[0]
    ]


def _hostnames(response) -> list[str]:
    return [row["hostname"] for row in response.json()["results"]]


def test_every_page_and_size_of_a_list_is_a_slice_of_its_ids_read_once(cache_backend, by_token):
    """A list's ids, in its order, and its count are read once per list (its filters and
    order): any page of any size within the first ``ID_WINDOW`` is a slice of them, with no
    query for ids or count — a list shorter than the window is counted by it."""
    with CaptureQueriesContext(connection) as queries:
        whole = by_token.get(f"{LIST}?page_size=10&status=staged")
    assert whole["X-Cache"] == "MISS" and whole.json()["count"] == 3
    assert len(_ids_sql(queries)) == 1 and "COUNT(" not in _ids_sql(queries)[0]
    expected = _hostnames(whole)
    for path, (start, stop) in (
        (f"{LIST}?page_size=2&status=staged", (0, 2)),
        (f"{LIST}?status=staged&page_size=2&page=2", (2, 3)),
        (f"{LIST}?page_size=1&page=3&status=staged", (2, 3)),
    ):
        with CaptureQueriesContext(connection) as queries:
            response = by_token.get(path)
        assert response["X-Cache"] == "MISS"
        assert _ids_sql(queries) == []
        assert response.json()["count"] == 3
        assert _hostnames(response) == expected[start:stop]
    with CaptureQueriesContext(connection) as queries:  # another order: its own ids
        reversed_ = by_token.get(f"{LIST}?page_size=10&status=staged&ordering=-hostname")
    assert len(_ids_sql(queries)) == 1
    assert _hostnames(reversed_) == expected[::-1]


def test_a_page_of_a_remembered_list_builds_no_filter(cache_backend, by_token):
    """A page within a list's remembered ids needs neither the list's query nor its filters:
    a location filter, whose value is checked by reading the location, reads nothing."""
    site = LocationFactory(name="Depot")
    Workstation.objects.filter(hostname__in=["ws-1", "ws-2", "ws-4"]).update(location=site)
    assert sync.sync()
    whole = by_token.get(f"{LIST}?location={site.pk}&page_size=3")  # the ids, every row
    assert whole.json()["count"] == 3 and _hostnames(whole) == ["ws-1", "ws-2", "ws-4"]
    with CaptureQueriesContext(connection) as queries:
        second = by_token.get(f"{LIST}?location={site.pk}&page_size=2&page=2")
    assert second["X-Cache"] == "MISS"
    assert _hostnames(second) == ["ws-4"] and second.json()["count"] == 3
    assert queries.captured_queries == []
    # A value the filter refuses is still refused, and a location with no workstation lists
    # none: each has ids of its own to read.
    refused = by_token.get(f"{LIST}?location=999999&page_size=2&page=2")
    assert refused.status_code == 400 and "location" in refused.json()
    empty = LocationFactory(name="Empty")
    assert by_token.get(f"{LIST}?location={empty.pk}&page_size=2").json()["count"] == 0


def test_a_page_of_a_remembered_list_follows_what_moves_it(cache_backend, by_token):
    """The ids are kept while the lists' layout stays: a change of a field the lists filter
    or order by (here a status) is in the next page; a change in place (a note) keeps them."""
    path = f"{LIST}?page_size=2&status=staged"
    assert _hostnames(by_token.get(path)) == ["ws-1", "ws-3"]
    services.workstation_update(
        workstation=Workstation.objects.get(hostname="ws-0"), data={"status": "staged"}
    )
    assert _hostnames(_cold(by_token, path, 1)) == ["ws-0", "ws-1"]
    assert _cold(by_token, path, 2).json()["count"] == 4
    Workstation.objects.filter(hostname="ws-1").update(status="in_stock")  # by any path
    assert sync.sync()
    assert _hostnames(_cold(by_token, path, 3)) == ["ws-0", "ws-3"]
    Workstation.objects.filter(hostname="ws-3").delete()
    assert sync.sync()
    assert _hostnames(_cold(by_token, path, 4)) == ["ws-0", "ws-5"]
    services.workstation_update(
        workstation=Workstation.objects.get(hostname="ws-5"), data={"notes": "moved nothing"}
    )
    with CaptureQueriesContext(connection) as queries:
        response = _cold(by_token, path, 5)
    assert [row["notes"] for row in response.json()["results"]] == ["", "moved nothing"]
    assert _ids_sql(queries) == []


def test_a_list_ordered_by_what_every_save_changes_is_read_again_after_any_change(
    cache_backend, by_token
):
    path = f"{LIST}?page_size=3&ordering=-updated_at"
    first = _hostnames(by_token.get(path))
    last = Workstation.objects.get(hostname=_hostnames(by_token.get(f"{path}&page=2"))[-1])
    services.workstation_update(workstation=last, data={"notes": "now the newest"})
    with CaptureQueriesContext(connection) as queries:
        assert _hostnames(_cold(by_token, path, 1)) == [last.hostname, *first[:2]]
    # Any change moves such a list: it keeps no ids (they would end as often as pages are
    # asked for), and a page reads its own.
    pages = [sql for sql in _ids_sql(queries) if "COUNT(" not in sql]
    assert [sql.rsplit("LIMIT", 1)[-1].strip() for sql in pages] == ["3"]


def test_pages_beyond_the_remembered_ids_are_read_as_before(cache_backend, by_token, monkeypatch):
    from workstations.api import pagination

    monkeypatch.setattr(pagination, "ID_WINDOW", 3)
    every = [f"ws-{n}" for n in range(6)]
    with CaptureQueriesContext(connection) as queries:
        first = by_token.get(f"{LIST}?page_size=2")
    assert first.json()["count"] == 6  # longer than the window: counted
    assert any("COUNT(" in sql for sql in _ids_sql(queries))
    assert _hostnames(first) == every[:2]
    with CaptureQueriesContext(connection) as queries:
        beyond = by_token.get(f"{LIST}?page_size=2&page=2")  # rows 3-4: past the window
    assert _hostnames(beyond) == every[2:4] and beyond.json()["count"] == 6
    assert len(_ids_sql(queries)) == 1
    assert _hostnames(by_token.get(f"{LIST}?page_size=2&page=3")) == every[4:]
    with CaptureQueriesContext(connection) as queries:
        within = by_token.get(f"{LIST}?page_size=3")
    assert _hostnames(within) == every[:3] and _ids_sql(queries) == []


def test_a_page_further_on_is_a_slice_of_its_own_window(cache_backend, by_token, monkeypatch):
    """Beyond the first window, each window of ids is read once, when a page of it is first
    asked for: every other page within it is a slice, with no query for ids."""
    from workstations.api import pagination

    monkeypatch.setattr(pagination, "ID_WINDOW", 2)
    every = [f"ws-{n}" for n in range(6)]
    assert _hostnames(by_token.get(f"{LIST}?page_size=2")) == every[:2]
    with CaptureQueriesContext(connection) as queries:
        third = by_token.get(f"{LIST}?page_size=2&page=3")  # the window from the fifth
    assert _hostnames(third) == every[4:] and third.json()["count"] == 6
    assert [sql.rsplit("LIMIT", 1)[-1].strip() for sql in _ids_sql(queries)] == ["2 OFFSET 4"]
    for path, expected in (
        (f"{LIST}?page_size=1&page=6", every[5:]),
        (f"{LIST}?page=5&page_size=1", every[4:5]),
    ):
        with CaptureQueriesContext(connection) as queries:
            response = by_token.get(path)
        assert response["X-Cache"] == "MISS" and response.json()["count"] == 6
        assert _hostnames(response) == expected and _ids_sql(queries) == []
    # A page across two windows reads its own slice; a change that moves the list, the
    # windows again.
    with CaptureQueriesContext(connection) as queries:
        across = by_token.get(f"{LIST}?page_size=3&page=2")
    assert _hostnames(across) == every[3:] and len(_ids_sql(queries)) == 1
    services.workstation_update(
        workstation=Workstation.objects.get(hostname="ws-0"), data={"hostname": "ws-9"}
    )
    assert _hostnames(_cold(by_token, f"{LIST}?page_size=1&page=6", 1)) == ["ws-9"]


@pytest.mark.redis
def test_a_cold_page_further_on_costs_four_round_trips_and_no_query(
    redis_cache, by_token, django_assert_num_queries, monkeypatch
):
    from workstations.api import pagination

    monkeypatch.setattr(pagination, "ID_WINDOW", 2)
    by_token.get(f"{LIST}?page_size=10")  # the token, the generations, the list, every row
    for _ in range(2):  # this page (and its window of ids); the purge epoch
        _cold(by_token, f"{LIST}?page_size=1&page=4", 0)
    perf_cache.reset_stats()
    with django_assert_num_queries(0):  # the first window (the count) and the page's: read ahead
        response = _cold(by_token, f"{LIST}?page_size=1&page=4", 1)
    assert response["X-Cache"] == "MISS" and _hostnames(response) == ["ws-3"]
    # The early read; the lookup (the entry, the lock, both windows of ids); the rows; the store.

    assert _round_trips() == 4


def test_ids_remembered_under_another_window_are_not_sliced_past_their_end(
    cache_backend, by_token, monkeypatch
):
    """Two versions of the service with other windows (a rolling deploy) do not share them:
    a page is never cut short by a window smaller than the one it expects."""
    from workstations.api import pagination

    monkeypatch.setattr(pagination, "ID_WINDOW", 3)
    assert _hostnames(by_token.get(f"{LIST}?page_size=2")) == ["ws-0", "ws-1"]
    monkeypatch.setattr(pagination, "ID_WINDOW", 5)
    page = by_token.get(f"{LIST}?page_size=2&page=2")
    assert _hostnames(page) == ["ws-2", "ws-3"] and page.json()["count"] == 6


@pytest.mark.parametrize("window", [6, 1000])  # the whole list exactly; more than the list
def test_the_last_page_of_a_remembered_list(cache_backend, by_token, monkeypatch, window):
    from workstations.api import pagination

    monkeypatch.setattr(pagination, "ID_WINDOW", window)
    assert by_token.get(f"{LIST}?page_size=4").json()["count"] == 6
    last = by_token.get(f"{LIST}?page_size=4&page=last")
    assert _hostnames(last) == ["ws-4", "ws-5"] and last.json()["count"] == 6
    assert by_token.get(f"{LIST}?page_size=4&page=3").status_code == 404


def test_a_cold_page_on_locmem_reads_its_cached_rows_as_they_were_kept(
    locmem_cache, by_token, monkeypatch
):
    """A row is kept with its generation as a pair of plain values, which the local-memory
    cache holds as it is: a cold page of rows rendered before decodes none of them (the list's
    ids, read ahead, are decoded: one value a page)."""
    by_token.get(f"{LIST}?page_size=10")  # the token, the generations, the list, every row
    first = _cold(by_token, f"{LIST}?page_size=4", 0)
    assert first["X-Cache"] == "MISS"
    serializer = locmem_cache._serializer
    decoded = []
    real_loads = serializer.loads

    def loads(value):
        decoded.append(value)
        return real_loads(value)

    monkeypatch.setattr(serializer, "loads", loads)
    again = _cold(by_token, f"{LIST}?page_size=4", 1)
    assert (again["X-Cache"], again.content) == ("MISS", first.content)
    assert [value for value in decoded if b"hostname" in value] == []
    assert len(decoded) == 1
