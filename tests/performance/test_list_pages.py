"""A list page stays cached through changes that cannot change it (docs/design.md, "One
object's change"): a workstation changed in place invalidates the pages that show it, and a
change that may move a workstation in a list (a status, a location, a new or deleted machine)
invalidates every page. Each test warms the pages, changes one workstation, and looks at what
the next reader gets: ``X-Cache`` and the rows.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from performance import cache as perf_cache
from performance.cache import sync
from performance.cache.keys import listings_key
from tests.factories import LocationFactory, WorkstationFactory
from workstations import services
from workstations.api.views import WorkstationViewSet
from workstations.choices import Status
from workstations.models import Workstation

from .support import LIST, SUMMARY, get
from .test_invalidation import committed, fresh, warm

PAGE_1 = f"{LIST}?page_size=2"
PAGE_2 = f"{LIST}?page_size=2&page=2"
IN_STOCK = f"{LIST}?page_size=2&status=in_stock"
BY_CHANGE = f"{LIST}?page_size=2&ordering=-updated_at"


@pytest.fixture
def machines(transactional_db):
    """ws-1 .. ws-4 at one location: pages of two, by host name; ws-4 in stock."""
    place = LocationFactory()
    made = [
        WorkstationFactory(hostname=f"ws-{n}", notes="original", location=place) for n in (1, 2, 3)
    ]
    made.append(
        WorkstationFactory(hostname="ws-4", notes="original", location=place, status="in_stock")
    )
    assert sync.sync()  # what the setup wrote, taken in as a server does when it starts
    return made


def notes_of(response) -> dict[str, str]:
    return {row["hostname"]: row["notes"] for row in response.json()["results"]}


def change_notes(machine: Workstation, how: str) -> None:
    if how == "service":
        services.workstation_update(workstation=machine, data={"notes": "changed"})
    else:
        Workstation.objects.filter(pk=machine.pk).update(notes="changed", updated_at=timezone.now())
        assert sync.sync()


ways = pytest.mark.parametrize("how", ["service", "update()"])


def write_while_a_page_is_computed(monkeypatch, machine: Workstation, notes: str) -> list:
    """The next list computed has read its generations and its rows when ``machine``'s notes
    change through the service (committed, taken in); the list returned says it happened."""
    original = WorkstationViewSet.get_paginated_response
    raced: list = []

    def write_after_the_query(view, data):
        if not raced:
            raced.append(True)
            services.workstation_update(workstation=machine, data={"notes": notes})
        return original(view, data)

    monkeypatch.setattr(WorkstationViewSet, "get_paginated_response", write_after_the_query)
    return raced


@committed
@ways
def test_a_workstation_changed_in_place_leaves_the_pages_that_do_not_show_it(
    cache_backend, api, machines, how
):
    warm(api, PAGE_1, PAGE_2, IN_STOCK, SUMMARY)

    change_notes(machines[0], how)  # ws-1: on page 1, not in stock

    assert notes_of(fresh(api, PAGE_1))["ws-1"] == "changed"
    for path in (PAGE_2, IN_STOCK, SUMMARY):
        assert get(api, path).headers["X-Cache"] == "HIT", path


@committed
@ways
def test_a_page_ordered_by_the_time_of_change_is_recomputed_by_any_change(
    cache_backend, api, machines, how
):
    warm(api, BY_CHANGE)

    change_notes(machines[1], how)  # ws-2

    first = fresh(api, BY_CHANGE).json()["results"][0]
    assert (first["hostname"], first["notes"]) == ("ws-2", "changed")


@committed
@pytest.mark.parametrize(
    "move",
    [
        lambda ws: services.workstation_update(workstation=ws, data={"status": Status.IN_STOCK}),
        lambda ws: Workstation.objects.filter(pk=ws.pk).update(hostname="ws-9"),
        lambda ws: WorkstationFactory(hostname="ws-0", location=ws.location),
        lambda ws: services.workstation_delete(workstation=ws),
    ],
    ids=["status", "host name", "created", "deleted"],
)
def test_a_change_that_may_move_a_workstation_recomputes_every_page(
    cache_backend, api, machines, move
):
    warm(api, PAGE_1, PAGE_2, IN_STOCK, SUMMARY)

    move(machines[0])  # ws-1, on page 1
    assert sync.sync()

    for path in (PAGE_1, PAGE_2, IN_STOCK, SUMMARY):
        after = fresh(api, path).json()
        perf_cache.invalidate("workstations")
        assert get(api, path).json() == after, path  # what the database says now


@committed
def test_a_page_computed_while_a_change_of_its_rows_is_taken_in_is_not_kept(
    cache_backend, api, machines, monkeypatch
):
    """The reader read its generations and its rows; the change commits and is taken in before
    the page is stored, when nothing yet says the page shows ws-1: it must not be stored."""
    write_while_a_page_is_computed(monkeypatch, machines[0], "written")

    racing = get(api, PAGE_1)
    assert racing.headers["X-Cache"] == "MISS"
    assert notes_of(racing)["ws-1"] == "original"  # it read before the write

    after = get(api, PAGE_1)
    assert after.headers["X-Cache"] == "MISS"
    assert notes_of(after)["ws-1"] == "written"
    assert get(api, PAGE_1).headers["X-Cache"] == "HIT"


@committed
def test_a_page_computed_while_a_change_of_other_rows_is_taken_in_is_kept(
    cache_backend, api, machines, monkeypatch
):
    """Under a steady stream of writes, most pages are computed while some change is taken in:
    a page is kept when none of the changes taken in meanwhile is to a row it shows."""
    warm(api, PAGE_2)  # a page before: the cache has noted which pages show what
    raced = write_while_a_page_is_computed(monkeypatch, machines[3], "elsewhere")

    assert get(api, PAGE_1).headers["X-Cache"] == "MISS"  # ws-1, ws-2; ws-4 changed meanwhile
    assert raced
    assert get(api, PAGE_1).headers["X-Cache"] == "HIT"


@committed
@pytest.mark.redis
@pytest.mark.parametrize("how", ["gone", "overwritten", "one object's gone"])
def test_a_cache_that_forgot_which_pages_show_which_workstations_recomputes_every_page(
    redis_cache, redis_client, api, machines, how
):
    """On Redis the notes are a key like any other: evicted, expired or overwritten. (With the
    local-memory cache they live in the process, as long as its entries.)"""
    warm(api, PAGE_1, PAGE_2)
    if how == "gone":  # evicted, or expired
        redis_cache.delete(listings_key("workstations"))
    elif how == "one object's gone":  # the set of ws-3's pages evicted, the index kept
        noted = redis_cache.client.make_key(listings_key("workstations"))
        assert redis_client.delete(f"{noted}:{machines[2].pk}") == 1
    else:  # another program wrote its own value there
        redis_cache.set(listings_key("workstations"), "not a hash", None)

    change_notes(machines[2], "service")  # ws-3, on page 2

    assert notes_of(fresh(api, PAGE_2))["ws-3"] == "changed"
    assert get(api, PAGE_1).headers["X-Cache"] == "MISS"


@committed
def test_rows_that_tie_come_in_the_order_of_their_keys(api, machines):
    Workstation.objects.filter(pk=machines[0].pk).update(notes="touched")  # moves it on disk
    by_status = [
        row["id"]
        for page in (1, 2)
        for row in get(api, f"{LIST}?ordering=status&page_size=2&page={page}").json()["results"]
    ]
    deployed = sorted(ws.pk for ws in machines if ws.status != "in_stock")
    assert by_status[: len(deployed)] == deployed or by_status[-len(deployed) :] == deployed


@committed
def test_a_list_in_descending_order_is_the_ascending_one_reversed(api, machines):
    """Ties included: rows of one status come in the order of their keys ascending, and in
    the reverse order descending — not in the same order in both."""

    def ids(ordering: str) -> list[int]:
        return [row["id"] for row in get(api, f"{LIST}?ordering={ordering}").json()["results"]]

    assert ids("-status") == ids("status")[::-1]
    assert ids("-manufacturer,-status") == ids("manufacturer,status")[::-1]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plans")
@committed
def test_pages_in_the_common_orders_are_read_along_an_index_with_nothing_sorted(api, machines):
    """SQLite's indexes end with the row's key: read backwards, one gives the field descending
    and its ties by key descending — the order asked for, with nothing left to sort; and the
    latest changes within a status, a place or a form factor have indexes of their own."""
    place = machines[0].location_id
    for query in (
        "ordering=-updated_at",
        "ordering=-purchase_date",
        "ordering=updated_at",
        "ordering=status",
        "ordering=-status",
        # The latest changes in a status, a place, a form factor (their own indexes).
        "status=in_stock&ordering=-updated_at",
        f"location={place}&ordering=-updated_at",
        "form_factor=desktop&ordering=updated_at",
    ):
        with CaptureQueriesContext(connection) as queries:
            assert get(api, f"{LIST}?{query}&page_size=1").status_code == 200
        ordered = [q["sql"] for q in queries if "ORDER BY" in q["sql"] and "LIMIT" in q["sql"]]
        assert ordered, query
        with connection.cursor() as cursor:
            for sql in ordered:
                cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
                plan = [row[-1] for row in cursor.fetchall()]
                assert not any("TEMP B-TREE" in step for step in plan), (query, sql, plan)


@committed
def test_a_workstation_on_more_pages_than_can_be_noted_is_never_served_stale(
    cache_backend, api, machines, monkeypatch
):
    """Clients choose their query strings, so the pages that show a workstation are theirs to
    multiply: beyond the bound, every page goes, and none is served stale after."""
    from performance.cache import locmem, redis

    monkeypatch.setattr(locmem, "MAX_PAGES_PER_OBJECT", 2)
    monkeypatch.setattr(redis, "MAX_PAGES_PER_OBJECT", 2)
    pages = [f"{LIST}?page_size={size}" for size in (2, 3, 4, 5)]
    for path in pages:
        get(api, path)

    change_notes(machines[0], "service")  # ws-1: on every one of them

    for path in pages:
        assert notes_of(get(api, path))["ws-1"] == "changed", path
