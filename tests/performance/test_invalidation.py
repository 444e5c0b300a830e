"""Invalidation: read-your-writes on every write path, O(1) on write, scoped patterns and clear."""

from __future__ import annotations

import pytest
from django.test import Client

from performance import cache as perf_cache
from tests.factories import LocationFactory, WorkstationFactory
from workstations import services
from workstations.api.views import WorkstationViewSet
from workstations.choices import Status
from workstations.models import Workstation

from .support import LIST, SUMMARY, get, namespace_stats

# Writes invalidate in transaction.on_commit: they must really commit.
committed = pytest.mark.django_db(transaction=True)


@pytest.fixture
def workstation(transactional_db):
    return WorkstationFactory(hostname="ws-1", notes="original", location=LocationFactory())


def detail(workstation: Workstation) -> str:
    return f"{LIST}{workstation.pk}/"


def warm(api, *paths: str) -> None:
    for path in paths:
        get(api, path)
        assert get(api, path).headers["X-Cache"] == "HIT", path


def fresh(api, path: str):
    """The next GET: a MISS (the write made the old entry unreachable), then a HIT."""
    response = get(api, path)
    assert response.headers.get("X-Cache") == "MISS", path
    assert get(api, path).content == response.content
    return response


# Read-your-writes on every write path -----------------------------------------------------------


@committed
def test_api_create_update_delete_are_read_back_at_once(
    cache_backend, api, editor_client, workstation
):
    warm(api, LIST, detail(workstation), SUMMARY)

    response = editor_client.post(
        LIST,
        {"asset_tag": "AT-NEW", "hostname": "new-host", "serial_number": "SN-NEW"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    created = response.json()["id"]
    assert fresh(api, LIST).json()["count"] == 2
    assert fresh(api, SUMMARY).json()["total"] == 2

    warm(api, LIST, detail(workstation))
    response = editor_client.patch(detail(workstation), {"notes": "patched"}, format="json")
    assert response.status_code == 200
    assert fresh(api, detail(workstation)).json()["notes"] == "patched"
    assert {ws["notes"] for ws in fresh(api, LIST).json()["results"]} == {"", "patched"}

    warm(api, LIST, f"{LIST}{created}/")
    assert editor_client.delete(f"{LIST}{created}/").status_code == 204
    assert [ws["id"] for ws in fresh(api, LIST).json()["results"]] == [workstation.pk]
    assert get(api, f"{LIST}{created}/").status_code == 404


@committed
def test_service_writes_are_read_back_at_once(cache_backend, api, workstation):
    warm(api, LIST, detail(workstation))
    services.workstation_update(workstation=workstation, data={"notes": "by service"})
    assert fresh(api, detail(workstation)).json()["notes"] == "by service"
    assert fresh(api, LIST).json()["results"][0]["notes"] == "by service"

    warm(api, LIST)
    services.workstation_create(
        data={"asset_tag": "AT-2", "hostname": "ws-2", "serial_number": "SN-2"}
    )
    assert fresh(api, LIST).json()["count"] == 2

    warm(api, LIST, SUMMARY)
    services.workstation_delete(workstation=workstation)
    assert [ws["hostname"] for ws in fresh(api, LIST).json()["results"]] == ["ws-2"]
    assert fresh(api, SUMMARY).json()["total"] == 1


@committed
def test_bulk_status_change_is_read_back_at_once(cache_backend, api, workstation):
    warm(api, LIST, SUMMARY, f"{LIST}?status=retired")
    count = services.workstation_bulk_set_status(
        queryset=Workstation.objects.all(), status=Status.RETIRED
    )
    assert count == 1
    assert fresh(api, LIST).json()["results"][0]["status"] == Status.RETIRED
    assert fresh(api, SUMMARY).json()["by_status"][Status.RETIRED] == 1
    assert fresh(api, f"{LIST}?status=retired").json()["count"] == 1


@committed
def test_admin_action_is_read_back_at_once(cache_backend, api, staff, workstation):
    warm(api, detail(workstation))
    admin = Client()
    admin.force_login(staff)
    response = admin.post(
        "/admin/workstations/workstation/",
        {"action": "mark_in_repair", "_selected_action": [workstation.pk]},
    )
    assert response.status_code == 302
    assert fresh(api, detail(workstation)).json()["status"] == Status.IN_REPAIR


@committed
def test_a_location_change_is_read_back_in_workstation_lists(cache_backend, api, workstation):
    warm(api, LIST)
    services.location_update(location=workstation.location, data={"name": "Renamed lab"})
    assert fresh(api, LIST).json()["results"][0]["location_name"] == "Renamed lab"


# docs/design.md, "Invariants", 2: a slow reader that raced a write stores under the dead one


@committed
def test_a_reader_that_raced_a_write_never_stores_under_the_live_generation(
    cache_backend, api, workstation, monkeypatch
):
    original = WorkstationViewSet.get_paginated_response
    raced = []

    def write_after_the_query(view, data):
        # The reader has read the generation and its rows; a write commits before it stores.
        if not raced:
            raced.append(perf_cache.get_generation("workstations"))
            services.workstation_update(workstation=workstation, data={"notes": "written"})
        return original(view, data)

    monkeypatch.setattr(WorkstationViewSet, "get_paginated_response", write_after_the_query)

    racing = get(api)
    assert racing.headers["X-Cache"] == "MISS"
    assert racing.json()["results"][0]["notes"] == "original"  # it read before the write
    assert perf_cache.get_generation("workstations") > raced[0]

    after = get(api)
    assert after.headers["X-Cache"] == "MISS"
    assert after.json()["results"][0]["notes"] == "written"
    assert get(api).headers["X-Cache"] == "HIT"


# docs/design.md, "Invariants", 6: O(1) on write -----------------------------------------------


@committed
def test_a_write_bumps_the_generation_and_deletes_nothing(cache_backend, api, workstation):
    warm(api, LIST, SUMMARY, detail(workstation), f"{LIST}?status=staged")
    keys_before = perf_cache.stats()["namespaces"]["workstations"]["keys"]
    generation = perf_cache.get_generation("workstations")
    perf_cache.reset_stats()

    services.workstation_update(workstation=workstation, data={"notes": "changed"})

    assert perf_cache.get_generation("workstations") > generation
    assert perf_cache.stats()["namespaces"]["workstations"]["keys"] == keys_before == 4
    assert namespace_stats("workstations")["deletes"] == 0
    assert fresh(api, LIST).json()["results"][0]["notes"] == "changed"


# Pattern invalidation and clear --------------------------------------------------------------


ENTRIES = {
    "workstations:1:aaa": b"list",
    "workstations:1:bbb": None,
    "workstations:2:ccc": 0,
    "locations:1:aaa": b"locations",
}


@pytest.fixture
def entries():
    """Entries in the cache the test chose (request its backend fixture first)."""
    perf_cache.backend().set_many(ENTRIES)
    return ENTRIES


def test_pattern_dry_run_counts_and_deletes_nothing(cache_backend, entries):
    assert perf_cache.invalidate_pattern("workstations:*", dry_run=True) == 3
    assert cache_backend.get_many(list(entries)) == entries


def test_pattern_deletes_matching_keys_only(cache_backend, entries):
    assert perf_cache.invalidate_pattern("workstations:1:*") == 2
    assert cache_backend.get_many(list(entries)) == {
        "workstations:2:ccc": 0,
        "locations:1:aaa": b"locations",
    }
    assert perf_cache.invalidate_pattern("  workstations:*  ") == 1
    assert cache_backend.get_many(list(entries)) == {"locations:1:aaa": b"locations"}
    assert perf_cache.invalidate_pattern("workstations:*") == 0


@pytest.mark.parametrize(
    "pattern",
    ["", "   ", "*", "**", "?*", "workstations:\x00*", "work stations:*", "a" * 201, "ws[:*", None],
)
def test_invalid_patterns_are_refused(cache_backend, entries, pattern):
    with pytest.raises(perf_cache.InvalidPattern):
        perf_cache.invalidate_pattern(pattern)
    assert cache_backend.get_many(list(entries)) == entries


def test_clear_removes_this_services_keys(cache_backend, entries):
    perf_cache.clear()
    assert cache_backend.get_many(list(entries)) == {}


@pytest.mark.redis
def test_clear_and_patterns_never_touch_another_apps_keys(
    redis_cache, redis_client, redis_prefix, entries
):
    foreign = {
        "otherapp:thing": b"1",
        f"{redis_prefix}x:1:workstations:1:aaa": b"a longer prefix",
        f"other-{redis_prefix}:1:workstations:1:aaa": b"a prefix that contains ours",
    }
    try:
        for key, value in foreign.items():
            redis_client.set(key, value)
        assert perf_cache.invalidate_pattern("workstations:*") == 3
        assert perf_cache.invalidate_pattern("locations:[a-z0-9]*") == 1
        assert perf_cache.invalidate_pattern("otherapp:*") == 0
        perf_cache.clear()
        assert {key: redis_client.get(key) for key in foreign} == foreign
        assert cache_backend_keys(redis_client, redis_prefix) == []
    finally:
        redis_client.delete(*foreign)


def cache_backend_keys(client, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{prefix}:*"))


@pytest.mark.redis
def test_glob_characters_in_the_prefix_cannot_widen_the_scope(
    settings, redis_url, redis_client, redis_prefix
):
    from django.core.cache import caches

    from .support import redis_config

    settings.CACHES = redis_config(redis_url, f"{redis_prefix}[*]?")
    cache = caches["default"]
    cache.set("workstations:1:aaa", 1)
    # Keys a glob-unescaped prefix ("...[*]?:1:workstations:*") would match.
    lookalikes = [f"{redis_prefix}*X:1:workstations:1:aaa", f"{redis_prefix}]Y:1:workstations:1:b"]
    for key in lookalikes:
        redis_client.set(key, b"not ours")
    assert perf_cache.invalidate_pattern("workstations:*", dry_run=True) == 1
    assert perf_cache.invalidate_pattern("workstations:*") == 1
    perf_cache.clear()
    assert all(redis_client.get(key) == b"not ours" for key in lookalikes)
    assert cache.get("workstations:1:aaa") is None


@pytest.mark.redis
def test_statistics_survive_clear(redis_cache):
    redis_cache.set("tally:a", 1)
    redis_cache.get("tally:a")
    perf_cache.clear()
    assert namespace_stats("tally")["hits"] == 1


# Cached functions ------------------------------------------------------------------------------


def test_cached_function_runs_once_and_caches_none(cache_backend):
    calls = []

    @perf_cache.cached("reports", ttl=60)
    def lookup(n, *, scale=1):
        calls.append((n, scale))
        return None if n == 0 else n * scale

    assert lookup(0) is None
    assert lookup(0) is None
    assert lookup(2, scale=3) == 6
    assert lookup(2, scale=3) == 6
    assert lookup(2, scale=4) == 8
    assert calls == [(0, 1), (2, 3), (2, 4)]
    assert namespace_stats("reports")["hits"] == 2

    perf_cache.invalidate("reports")
    assert lookup(0) is None
    assert lookup(2, scale=3) == 6
    assert calls[3:] == [(0, 1), (2, 3)]


def test_invalidating_one_namespace_leaves_the_others(cache_backend):
    calls = []

    @perf_cache.cached("reports")
    def report():
        calls.append("reports")
        return []

    @perf_cache.cached("charts")
    def chart():
        calls.append("charts")
        return 0

    report(), chart()
    perf_cache.invalidate("charts")
    assert (report(), chart()) == ([], 0)
    assert calls == ["reports", "charts", "charts"]
