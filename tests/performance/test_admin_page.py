"""The cache performance page of the admin: who may see it, what it shows, what its actions do."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils.html import strip_tags
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance import cache as perf_cache
from performance.charts import history_chart, namespace_chart, nice_ceiling
from performance.models import CacheAction
from performance.templatetags.console_figures import duration, milliseconds, percent
from tests.factories import LocationFactory, UserFactory, WorkstationFactory

from .support import LIST, LOCATIONS, get

PAGE = "/admin/performance/cache/"
LOGIN = "/admin/login/"


def action_url(slug: str) -> str:
    return reverse("admin:performance_cache_action", args=[slug])


def live_keys() -> list[str]:
    return sorted(perf_cache.backend().logical_keys("*"))


def keys_of(namespace: str) -> list[str]:
    return [key for key in live_keys() if key.startswith(f"{namespace}:")]


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def rows_of(html: str, opening: str) -> list[list[str]]:
    """The text of each cell of every table row whose tag starts with ``opening``."""
    rows = []
    for start in (m.start() for m in re.finditer(re.escape(opening), html)):
        row = html[start : html.index("</tr>", start)]
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        rows.append([" ".join(strip_tags(cell).split()) for cell in cells])
    return rows


def text_of(html: str, element_id: str) -> str:
    """The text of the element with that id (up to its first closing tag), spaces collapsed."""
    [content] = re.findall(rf'id="{element_id}">(.*?)</', html, re.S)
    return " ".join(strip_tags(content).split())


def panel_of(html: str, panel_id: str) -> list[tuple[str, str]]:
    """The (label, value) rows of one of the console's panels, as a reader sees them."""
    panel = html[html.index(f'id="{panel_id}"') :]
    panel = panel[: panel.index("</table>")]
    return [tuple(cells) for cells in rows_of(panel, "<tr>")]


def _api_for(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user=user)
    return api


@pytest.fixture
def viewer(db):
    """Staff who may look at the console but not act on the cache."""
    return UserFactory(username="viewer", is_staff=True)


@pytest.fixture
def manager(db):
    """Staff with ``performance.manage_cache`` and nothing else."""
    user = UserFactory(username="manager", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="manage_cache"))
    return user


@pytest.fixture
def as_viewer(client: Client, viewer) -> Client:
    client.force_login(viewer)
    return client


@pytest.fixture
def as_manager(client: Client, manager) -> Client:
    client.force_login(manager)
    return client


@pytest.fixture
def filled(api, db) -> dict[str, list[str]]:
    """Entries in both namespaces, put there the way API consumers do it."""
    WorkstationFactory.create_batch(3, location=LocationFactory(name="Lab"))
    for path in (LIST, f"{LIST}?status=staged", LOCATIONS):
        assert get(api, path)["X-Cache"] == "MISS"
    keys = {"workstations": keys_of("workstations"), "locations": keys_of("locations")}
    assert len(keys["workstations"]) == 2
    assert len(keys["locations"]) == 1
    return keys


# Who may see it ----------------------------------------------------------------------------


def test_anonymous_is_sent_to_the_admin_login(client, db):
    response = client.get(PAGE)

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={PAGE}"


def test_anonymous_post_is_sent_to_the_login_and_changes_nothing(client, filled):
    response = client.post(action_url("clear"), {"confirm": "yes"})

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    assert keys_of("workstations") == filled["workstations"]


def test_a_user_who_is_not_staff_is_sent_to_the_login_like_everywhere_in_the_admin(
    client, editor, filled
):
    client.force_login(editor)

    assert client.get(PAGE).status_code == 302
    response = client.post(action_url("clear"), {"confirm": "yes"})
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    assert keys_of("workstations") == filled["workstations"]
    assert not CacheAction.objects.exists()


def test_the_page_is_never_cached(as_viewer):
    response = as_viewer.get(PAGE)

    assert "no-cache" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_read_only_staff_sees_the_figures_but_no_action(as_viewer, filled):
    response = as_viewer.get(PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html
    assert "workstations" in html and "locations" in html
    assert 'id="perf-read-only"' in html
    assert 'name="confirm"' not in html
    for slug in ("clear", "invalidate_pattern", "invalidate_namespace", "warm", "reset_stats"):
        assert action_url(slug) not in html


@pytest.mark.parametrize(
    "slug, data",
    [
        ("clear", {}),
        ("invalidate_pattern", {"pattern": "workstations:*"}),
        ("invalidate_namespace", {"namespace": "workstations"}),
        ("warm", {}),
        ("reset_stats", {}),
    ],
)
@pytest.mark.parametrize("confirm", [False, True], ids=["first-post", "confirming-post"])
def test_read_only_staff_cannot_act(as_viewer, filled, slug, data, confirm):
    before = perf_cache.stats()["totals"]
    generation = perf_cache.get_generation("workstations")

    response = as_viewer.post(action_url(slug), {**data, **({"confirm": "yes"} if confirm else {})})

    assert response.status_code == 403
    assert keys_of("workstations") == filled["workstations"]
    assert keys_of("locations") == filled["locations"]
    assert perf_cache.get_generation("workstations") == generation
    after = perf_cache.stats()["totals"]
    assert after["hits"] + after["misses"] >= before["hits"] + before["misses"]  # not reset
    assert not CacheAction.objects.exists()


def test_staff_without_any_permission_find_the_page_in_the_index_and_the_sidebar(as_viewer):
    index = as_viewer.get("/admin/").content.decode()
    assert f'<a href="{PAGE}">Cache performance</a>' in index

    app_index = as_viewer.get("/admin/performance/")
    assert app_index.status_code == 200
    assert f'<a href="{PAGE}">Cache performance</a>' in app_index.content.decode()

    page = as_viewer.get(PAGE).content.decode()
    sidebar = page[page.index('id="nav-sidebar"') :]
    assert f'<a href="{PAGE}" aria-current="page">Cache performance</a>' in sidebar


def test_the_page_is_mounted_by_the_admin_not_patched_onto_it(as_viewer):
    assert "get_urls" not in vars(admin.site)
    assert "get_app_list" not in vars(admin.site)
    assert reverse("admin:performance_cache") == reverse("admin:performance_cache_changelist")


def test_the_page_is_a_real_admin_page(as_viewer):
    html = as_viewer.get(PAGE).content.decode()

    assert "<title>Cache performance | " in html
    assert '<div class="breadcrumbs">' in html
    assert '<a href="/admin/performance/">Performance</a>' in html
    assert 'id="user-tools"' in html


# What it shows -----------------------------------------------------------------------------


def test_the_page_shows_the_figures_of_the_backend(client, staff, cache_backend, filled):
    api = _api_for(staff)
    for _ in range(3):
        assert get(api, LIST)["X-Cache"] == "HIT"
    client.force_login(staff)

    response = client.get(PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    context = response.context
    assert context["key_prefix"] == cache_backend.key_prefix
    assert f"<code>{cache_backend.key_prefix}</code>" in html
    assert "300 s (5 min 0 s)" in html
    assert "Statistics last reset" in html
    usage = cache_backend.hot.usage()
    if usage["max_bytes"]:  # Redis: copies save a round trip
        expected = f"{usage['entries']} in this process, "
    else:  # locmem: nothing to save
        expected = "none: the local-memory cache is in this process already"
    assert text_of(html, "perf-hot-copies").startswith(expected)
    # The workstations namespace: 2 misses (two queries) then 3 hits of the list.
    [row] = rows_of(html, '<tr class="perf-ns-workstations">')
    hits, misses, hit_rate, keys, time = row[1], row[2], row[3], row[7], row[8]
    assert (hits, misses, hit_rate, keys) == ("3", "2", "60.0 %", "2")
    assert time.endswith(" ms")
    [totals] = rows_of(html, '<tr id="perf-totals">')
    assert totals[7] == f"{len(live_keys()):,}"
    assert 'id="perf-totals"' in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" viewBox=') == 2
    assert "Response hit rate per namespace" in html
    assert "Circuit breaker" in html
    for label in ("Resident memory (RSS)", "Uptime", "Python / Django", "Database round trip"):
        assert label in html
    if cache_backend.stats_scope == "fleet":
        assert "Fleet-wide" in html
        assert "Redis server" in html
        for label in ("Redis version", "Used memory", "Eviction policy", "Evicted keys"):
            assert label in html
        assert "redis://" in context["location"]
    else:
        assert "This process only" in html
        assert "Local memory" in html
        assert context["location"] == cache_backend._name


def test_the_location_shown_has_no_password(as_viewer, settings, monkeypatch):
    real_stats = perf_cache.stats

    def stats_with_password(**kwargs):
        figures = real_stats(**kwargs)
        figures["server"] = {"backend": "redis", "location": "redis://:***@cache.internal:6379/0"}
        return figures

    monkeypatch.setattr(perf_cache, "stats", stats_with_password)

    html = as_viewer.get(PAGE).content.decode()

    assert "redis://:***@cache.internal:6379/0" in html


def test_the_breaker_panel_says_not_configured_or_shows_its_state(as_viewer, monkeypatch):
    real_stats = perf_cache.stats

    def without_breaker(**kwargs):
        return {k: v for k, v in real_stats(**kwargs).items() if k != "breaker"}

    monkeypatch.setattr(perf_cache, "stats", without_breaker)
    assert "Not configured" in as_viewer.get(PAGE).content.decode()

    def with_breaker(**kwargs):
        return {
            **real_stats(**kwargs),
            "breaker": {"state": "open", "failures": 1234, "fail_max": 3, "opened": 2},
        }

    monkeypatch.setattr(perf_cache, "stats", with_breaker)
    breaker = panel_of(as_viewer.get(PAGE).content.decode(), "perf-breaker")
    assert ("State", "open") in breaker
    assert ("Failures in a row", "1,234 of 3 that open it") in breaker
    assert ("Times opened", "2") in breaker


#: Figures as ``performance.cache.stats`` gives them, chosen to show each kind of number.
FIGURES = {
    "instrumented": True,
    "backend": "redis",
    "scope": "fleet",
    "key_prefix": "inventory",
    "default_ttl": 59,
    "reset_at": None,
    "namespaces": {
        "workstations": {
            "hits": 1234567,
            "misses": 0,
            "hit_rate": 0.98765,
            "sets": 12,
            "deletes": 0,
            "errors": None,
            "keys": None,
            "time_us": 12_345_678,
            "calls": 617_284,
            "description": "Workstation responses",
            "internal": False,
            "kind": "responses",
        },
    },
    "totals": {
        "hits": 1234567,
        "misses": 0,
        "hit_rate": None,
        "sets": 12,
        "deletes": 0,
        "errors": 0,
        "time_us": 12_345_678,
        "calls": 617_284,
    },
    "history": [],
    "server": {
        "backend": "redis",
        "location": "redis://cache.internal:6379/0",
        "used_memory": 5 * 1024**2,
        "maxmemory": 3 * 1024**3,
        "evicted_keys": 1234567,
        "keyspace_hits": 98765,
        "keyspace_misses": 1235,
        "uptime_in_seconds": 3 * 86400 + 7200,
    },
    "hot_copies": {"entries": 3, "bytes": 512, "max_bytes": 5 * 1024**2},
    "breaker": {"state": "closed", "needs_replay": False, "last_change": None},
    "unavailable": False,
}


def test_numbers_are_formatted_for_humans(as_viewer, monkeypatch):
    monkeypatch.setattr(perf_cache, "stats", lambda **kwargs: FIGURES)

    html = as_viewer.get(PAGE).content.decode()

    [row] = rows_of(html, '<tr class="perf-ns-workstations">')
    assert row[1:] == ["1,234,567", "0", "98.8 %", "12", "0", "—", "—", "0.02 ms"]
    [totals] = rows_of(html, '<tr id="perf-totals">')
    assert totals[3] == "—"  # no rate without lookups to rate
    assert totals[7] == "—"  # unknown as soon as one namespace's count is
    server = panel_of(html, "perf-server")
    for figure in [
        ("Used memory", "5.0 MB"),
        ("Max memory", "3.0 GB"),
        ("Evicted keys", "1,234,567"),
        ("Expired keys", "—"),
        (
            "Keyspace hit rate (every key read on this server, by anyone: not the response hit "
            "rate)",
            "98.8 %",
        ),
        ("Server uptime", "3 d 2 h"),
    ]:
        assert figure in server
    assert ("Default time to live", "59 s") in panel_of(html, "perf-backend")
    assert text_of(html, "perf-hot-copies") == "3 in this process, 512 bytes of 5.0 MB"
    breaker = panel_of(html, "perf-breaker")
    assert ("Missed invalidations to apply", "no") in breaker
    assert ("Last change", "none since this process started") in breaker


def test_a_ttl_of_a_minute_or_more_is_also_shown_as_a_duration(as_viewer, monkeypatch):
    monkeypatch.setattr(perf_cache, "stats", lambda **kwargs: {**FIGURES, "default_ttl": 7200})
    backend = panel_of(as_viewer.get(PAGE).content.decode(), "perf-backend")
    assert ("Default time to live", "7,200 s (2 h 0 min)") in backend

    monkeypatch.setattr(perf_cache, "stats", lambda **kwargs: {**FIGURES, "default_ttl": None})
    backend = panel_of(as_viewer.get(PAGE).content.decode(), "perf-backend")
    assert ("Default time to live", "no expiry") in backend


def test_the_console_filters_say_what_django_has_no_filter_for():
    assert percent(0.98765) == "98.8 %"
    assert percent(None) == "—"
    assert milliseconds(12345.678) == "12,345.7 ms"
    assert milliseconds(0.25, 2) == "0.25 ms"
    assert milliseconds(None) == "—"
    assert duration(3 * 86400 + 7200) == "3 d 2 h"
    assert duration(3600 + 5 * 60) == "1 h 5 min"
    assert duration(300) == "5 min 0 s"
    assert duration(59) == "59 s"
    assert duration(None) == "—"


# The charts --------------------------------------------------------------------------------


NOW = datetime.datetime(2026, 3, 1, 12, 30, 20, tzinfo=datetime.UTC)


def _minute(minutes_ago: int) -> str:
    return (NOW.replace(second=0) - datetime.timedelta(minutes=minutes_ago)).isoformat()


def test_the_history_chart_draws_requests_and_hit_rate_over_the_last_hour():
    history = [
        {"minute": _minute(2), "hits": 90, "misses": 10},
        {"minute": _minute(1), "hits": 40, "misses": 60},
        {"minute": _minute(0), "hits": 0, "misses": 5},
        {"minute": _minute(120), "hits": 999, "misses": 0},  # outside the window
    ]

    svg = history_chart(history, now=NOW)

    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="requests"') == 2 + 1  # two minutes with hits, and the legend
    assert svg.count('class="computed"') == 3 + 1
    assert svg.count("<polyline") == 1
    assert svg.count('class="hit-rate-dot"') == 3
    assert "205 HTTP requests in the last 60 minutes; 130 of 205 cacheable" in svg
    assert "12:28: 100 requests, 90 answered from the cache, 10 computed, 0 not cacheable" in svg
    assert "<script" not in svg


def test_the_history_chart_says_when_there_is_nothing_to_draw():
    svg = history_chart([], now=NOW)

    assert "No requests in the last 60 minutes" in svg
    assert "<polyline" not in svg


def test_the_namespace_chart_has_a_bar_per_namespace_and_escapes_names():
    svg = namespace_chart(
        {
            "workstations": {"hits": 3, "misses": 1, "hit_rate": 0.75},
            "<b>odd</b>": {"hits": 0, "misses": 0, "hit_rate": None},
        }
    )

    assert svg.count('class="hit-rate-bar"') == 1
    assert "75.0 % of 4 requests" in svg
    assert "no requests" in svg
    assert "<b>" not in svg and "&lt;b&gt;odd&lt;/b&gt;" in svg


def test_axis_maxima_are_round_numbers():
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 11, 180, 2001)] == [1, 1, 5, 10, 20, 200, 5000]


# What its actions do -----------------------------------------------------------------------


def test_an_action_needs_a_post(as_manager):
    assert as_manager.get(action_url("clear")).status_code == 405


def test_an_unknown_action_is_not_found(as_manager):
    assert as_manager.post(action_url("flushall"), {"confirm": "yes"}).status_code == 404


def test_actions_need_the_csrf_token(manager, filled):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    response = client.post(action_url("clear"), {"confirm": "yes"})

    assert response.status_code == 403
    assert keys_of("workstations") == filled["workstations"]


def test_the_manager_sees_every_action(as_manager):
    html = as_manager.get(PAGE).content.decode()

    for slug in ("clear", "invalidate_pattern", "invalidate_namespace", "warm", "reset_stats"):
        assert f'action="{action_url(slug)}"' in html
    assert '<option value="workstations">' in html
    assert 'id="perf-read-only"' not in html


def test_clear_asks_first_then_removes_every_key_and_records_it(as_manager, manager, filled):
    total = len(live_keys())

    confirm = as_manager.post(action_url("clear"))

    assert confirm.status_code == 200
    assert "Yes, clear the cache" in confirm.content.decode()
    assert f"{total} keys now" in confirm.content.decode()
    assert len(live_keys()) == total
    assert not CacheAction.objects.exists()

    response = as_manager.post(action_url("clear"), {"confirm": "yes"}, follow=True)

    assert response.redirect_chain == [(PAGE, 302)]
    assert messages_of(response) == [f"The cache was cleared. {total} keys removed."]
    assert live_keys() == []
    action = CacheAction.objects.get()
    assert action.kind == CacheAction.Kind.CLEAR
    assert action.user == manager
    assert action.source == CacheAction.Source.ADMIN
    assert action.remote_addr == "127.0.0.1"
    assert action.keys_affected == total


def test_pattern_dry_run_shows_how_many_keys_would_go_and_removes_none(as_manager, filled):
    response = as_manager.post(action_url("invalidate_pattern"), {"pattern": " workstations:* "})

    assert response.status_code == 200
    html = response.content.decode()
    assert "2 keys would be removed" in html
    assert '<input type="hidden" name="pattern" value="workstations:*">' in html
    assert '<input type="hidden" name="confirm" value="yes">' in html
    assert keys_of("workstations") == filled["workstations"]
    dry_run = CacheAction.objects.get()
    assert dry_run.dry_run is True
    assert dry_run.keys_affected == 2
    assert dry_run.target == "workstations:*"


def test_pattern_confirmed_removes_the_matching_keys_only(as_manager, manager, filled):
    response = as_manager.post(
        action_url("invalidate_pattern"),
        {"pattern": "workstations:*", "confirm": "yes"},
        follow=True,
    )

    assert response.redirect_chain == [(PAGE, 302)]
    assert messages_of(response) == ["The pattern “workstations:*” removed 2 keys."]
    assert keys_of("workstations") == []
    assert keys_of("locations") == filled["locations"]
    action = CacheAction.objects.get()
    assert (action.kind, action.target, action.dry_run, action.keys_affected) == (
        CacheAction.Kind.INVALIDATE_PATTERN,
        "workstations:*",
        False,
        2,
    )
    assert action.user == manager
    # The next request recomputes; the other namespace still hits.
    api = _api_for(manager)
    assert get(api, LIST)["X-Cache"] == "MISS"
    assert get(api, LOCATIONS)["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    "pattern, reason",
    [
        ("*", "matches every key"),
        ("", "The pattern is empty."),
        ("work stations:*", "whitespace"),
        ("workstations:[ab", "never closed"),
        ("*:*", "matches every key"),
        ("[^~]*", "namespace"),
    ],
)
@pytest.mark.parametrize("confirm", [False, True], ids=["first-post", "confirming-post"])
def test_a_bad_pattern_is_refused_with_the_reason_and_nothing_is_done(
    as_manager, filled, pattern, reason, confirm
):
    data = {"pattern": pattern, **({"confirm": "yes"} if confirm else {})}

    response = as_manager.post(action_url("invalidate_pattern"), data, follow=True)

    assert response.redirect_chain == [(PAGE, 302)]
    [message] = response.context["messages"]
    assert message.level_tag == "error"
    assert reason in str(message)
    assert "Nothing was done" in str(message)
    assert keys_of("workstations") == filled["workstations"]
    assert not CacheAction.objects.exists()


@pytest.mark.parametrize(
    "slug, data, reason",
    [
        ("invalidate_pattern", {}, "The pattern is empty."),
        ("invalidate_pattern", {"pattern": f"workstations:{'x' * 200}"}, "longer than 200"),
        ("invalidate_namespace", {}, "Unknown namespace ''"),
        ("clear", {"confirm": "sure"}, "Select a valid choice."),
    ],
    ids=["no-pattern", "pattern-too-long", "no-namespace", "bad-confirm"],
)
def test_input_the_form_refuses_is_answered_with_its_error(as_manager, filled, slug, data, reason):
    response = as_manager.post(action_url(slug), data, follow=True)

    assert response.redirect_chain == [(PAGE, 302)]
    [message] = response.context["messages"]
    assert message.level_tag == "error"
    assert reason in str(message)
    assert str(message).endswith("Nothing was done.")
    assert keys_of("workstations") == filled["workstations"]
    assert not CacheAction.objects.exists()


def test_invalidate_namespace_moves_its_generation_only(as_manager, manager, filled):
    before = {ns: perf_cache.get_generation(ns) for ns in ("workstations", "locations")}

    confirm = as_manager.post(action_url("invalidate_namespace"), {"namespace": "workstations"})
    assert confirm.status_code == 200
    assert "2 keys now" in confirm.content.decode()
    assert '<input type="hidden" name="namespace" value="workstations">' in confirm.content.decode()
    assert perf_cache.get_generation("workstations") == before["workstations"]

    response = as_manager.post(
        action_url("invalidate_namespace"),
        {"namespace": "workstations", "confirm": "yes"},
        follow=True,
    )

    assert response.redirect_chain == [(PAGE, 302)]
    after = perf_cache.get_generation("workstations")
    assert after > before["workstations"]
    assert perf_cache.get_generation("locations") == before["locations"]
    [message] = messages_of(response)
    assert message.startswith("The namespace “workstations” was invalidated: its cached entries")
    assert str(after) not in message  # a generation is a number no reader can use
    action = CacheAction.objects.get()
    assert (action.kind, action.target, action.user) == (
        CacheAction.Kind.INVALIDATE_NAMESPACE,
        "workstations",
        manager,
    )
    api = _api_for(manager)
    assert get(api, LIST)["X-Cache"] == "MISS"
    assert get(api, LOCATIONS)["X-Cache"] == "HIT"


@pytest.mark.parametrize("confirm", [False, True], ids=["first-post", "confirming-post"])
def test_an_unknown_namespace_is_refused(as_manager, filled, confirm):
    data = {"namespace": "users", **({"confirm": "yes"} if confirm else {})}

    response = as_manager.post(action_url("invalidate_namespace"), data, follow=True)

    [message] = response.context["messages"]
    assert message.level_tag == "error"
    assert "Unknown namespace 'users'" in str(message)
    assert not CacheAction.objects.exists()


def test_warm_fills_the_common_responses(as_manager, manager, db):
    WorkstationFactory.create_batch(2)
    assert live_keys() == []

    confirm = as_manager.post(action_url("warm"))
    assert confirm.status_code == 200
    assert live_keys() == []

    response = as_manager.post(action_url("warm"), {"confirm": "yes"}, follow=True)

    assert response.redirect_chain == [(PAGE, 302)]
    assert keys_of("workstations") and keys_of("locations")
    action = CacheAction.objects.get()
    assert action.kind == CacheAction.Kind.WARM
    assert action.keys_affected == len(keys_of("workstations")) + len(keys_of("locations"))
    assert messages_of(response)[0].startswith(
        f"The cache was warmed: {action.keys_affected} entries"
    )


def test_reset_statistics_zeroes_the_counters(as_manager, manager, filled):
    assert perf_cache.stats()["totals"]["misses"] > 0

    as_manager.post(action_url("reset_stats"))
    assert perf_cache.stats()["totals"]["misses"] > 0

    response = as_manager.post(action_url("reset_stats"), {"confirm": "yes"}, follow=True)

    assert response.redirect_chain == [(PAGE, 302)]
    assert messages_of(response) == ["The statistics were reset."]
    # The page that follows reads the cache itself (a round-trip probe), so look at the
    # namespaces the API filled.
    figures = perf_cache.stats(include_keys=False)["namespaces"]
    assert figures["workstations"]["misses"] == figures["locations"]["misses"] == 0
    assert keys_of("workstations") == filled["workstations"]  # entries are kept
    assert CacheAction.objects.get().kind == CacheAction.Kind.RESET_STATS


def test_a_superuser_may_act_too(client, staff, filled):
    client.force_login(staff)

    client.post(action_url("clear"), {"confirm": "yes"})

    assert live_keys() == []
    assert CacheAction.objects.get().user == staff


# The audit trail ---------------------------------------------------------------------------


def test_the_page_lists_the_last_actions(as_manager, filled):
    as_manager.post(action_url("invalidate_pattern"), {"pattern": "locations:*"})
    as_manager.post(action_url("invalidate_pattern"), {"pattern": "locations:*", "confirm": "yes"})

    response = as_manager.get(PAGE)

    html = response.content.decode()
    rows = rows_of(html, '<tr class="perf-audit-row">')
    # When, who, what, target, from, keys, outcome; the newest first.
    assert [(what, keys) for _, _, what, _, _, keys, _ in rows] == [
        ("Invalidate by pattern", "1"),
        ("Invalidate by pattern (dry run)", "1"),
    ]
    assert html.count('class="perf-audit-row"') == 2
    assert "manager" in html and "Admin, 127.0.0.1" in html and "<code>locations:*</code>" in html


def test_the_audit_changelist_is_read_only(client, staff, as_manager):
    as_manager.post(action_url("reset_stats"), {"confirm": "yes"})
    client.force_login(staff)
    changelist = reverse("admin:performance_cacheaction_changelist")

    response = client.get(changelist)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Reset statistics" in html
    assert reverse("admin:performance_cacheaction_add") not in html
    assert 'name="action"' not in html  # no bulk actions, so no "delete selected"
    assert client.get(reverse("admin:performance_cacheaction_add")).status_code == 403
    pk = CacheAction.objects.get().pk
    change = client.get(reverse("admin:performance_cacheaction_change", args=[pk]))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()
    delete = client.post(
        reverse("admin:performance_cacheaction_delete", args=[pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    assert CacheAction.objects.count() == 1


def test_the_index_lists_the_audit_trail_without_an_add_link(client, staff):
    client.force_login(staff)

    html = client.get("/admin/").content.decode()

    assert f'<a href="{reverse("admin:performance_cacheaction_changelist")}"' in html
    assert reverse("admin:performance_cacheaction_add") not in html
    assert f'<a href="{PAGE}">Cache performance</a>' in html


# Numbers that mean what they say ---------------------------------------------------------------


def test_the_headline_is_the_response_hit_rate_with_bookkeeping_apart(
    client, staff, cache_backend, db
):
    """Known traffic: 4 cacheable requests of the list (1 computed, 3 from the cache) and 2 of
    the locations (1 and 1); every one also reads generations and a token entry, which must not
    lift the headline (78.5 % when they did, for a response cache at 15 %)."""
    WorkstationFactory.create_batch(3, location=LocationFactory(name="Lab"))
    reader = UserFactory(username="scripted")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=reader).key}")
    outcomes = [get(api, path)["X-Cache"] for path in [LIST] * 4 + [LOCATIONS] * 2]
    assert outcomes.count("HIT") == 4
    client.force_login(staff)

    html = client.get(PAGE).content.decode()

    assert text_of(html, "perf-hit-rate") == "66.7 %"  # 4 of 6
    assert text_of(html, "perf-cacheable") == ("4 of 6 cacheable requests answered from the cache")
    groups = re.findall(r'<tbody id="perf-group-(\w+)">', html)
    assert groups[0] == "responses" and "internal" in groups
    responses = html[html.index('id="perf-group-responses"') :]
    responses = responses[: responses.index("</tbody>")]
    assert "perf-ns-workstations" in responses and "perf-ns-auth" not in responses
    assert int(text_of(html, "perf-bookkeeping").replace(",", "")) > 0


def test_every_figure_has_its_unit_and_a_human_form(as_viewer, monkeypatch):
    moment = datetime.datetime(2026, 3, 1, 12, 30, tzinfo=datetime.UTC)
    figures = {
        **FIGURES,
        "breaker": {
            "state": "closed",
            "failures": 0,
            "fail_max": 3,
            "opened": 1,
            "last_change": moment.timestamp(),
            "reset_timeout": 5.0,
            "needs_replay": False,
        },
    }
    monkeypatch.setattr(perf_cache, "stats", lambda **kwargs: figures)

    html = as_viewer.get(PAGE).content.decode()

    breaker = dict(panel_of(html, "perf-breaker"))
    assert breaker["Retry after"] == "5 s"
    assert breaker["Last change"].startswith("March 1, 2026, 12:30 p.m.")
    assert "ago" in breaker["Last change"]
    assert "1796157089" not in html and str(moment.timestamp()) not in html
    assert "This process (PID" in html[html.index('id="perf-breaker"') :]
    server = dict(panel_of(html, "perf-server"))
    assert any("not the response hit rate" in label for label in server)
    assert any("other applications" in label for label in server)
    assert text_of(html, "perf-mean-call") == "0.02 ms"  # 12.3 s over 617,284 calls
    assert "12.35 s in all" in html


def test_every_panel_says_what_it_covers(as_viewer, cache_backend):
    html = as_viewer.get(PAGE).content.decode()
    for panel in ("perf-history", "perf-namespaces", "perf-server", "perf-breaker", "perf-system"):
        section = html[html.index(f'id="{panel}"') :][:1500]
        if panel == "perf-breaker" and cache_backend.stats_scope == "process":
            assert "Not configured" in section
            continue
        assert re.search(r"this process|every process|every application", section, re.I)


def test_the_namespace_to_invalidate_defaults_to_one_of_responses(as_manager):
    html = as_manager.get(PAGE).content.decode()
    select = html[html.index('id="perf-namespace"') :]
    select = select[: select.index("</select>")]
    options = re.findall(r'<option value="(\w+)"( selected)?', select)
    assert options[0] == ("locations", " selected")
    assert options[-1][0] == "auth"


def test_clearing_local_memory_does_not_speak_of_a_shared_redis(as_manager, cache_backend):
    html = as_manager.post(action_url("clear")).content.decode()
    if cache_backend.stats_scope == "process":
        assert "Redis" not in html
    else:
        assert "Other applications using the same Redis keep theirs" in html
