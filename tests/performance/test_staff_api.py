"""The staff API of the performance console: who may do what, what each action changes, what
bad input gets back, and the rate limit on the actions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance import cache as perf_cache
from performance.models import CacheAction
from performance.throttling import RateThrottleMixin
from tests.factories import LocationFactory, UserFactory, WorkstationFactory

from .support import LIST, LOCATIONS, get

pytestmark = pytest.mark.django_db

STATS = "/api/performance/cache-stats/"
METRICS = "/api/performance/metrics/"
CLEAR = "/api/performance/cache-clear/"
INVALIDATE = "/api/performance/cache-invalidate/"
OPERATOR_ADDR = "198.51.100.7"


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def post(client: APIClient, path: str, body: Any = None, **extra: Any):
    return client.post(path, body, format="json", REMOTE_ADDR=OPERATOR_ADDR, **extra)


def live_keys(pattern: str = "*") -> list[str]:
    """Cached responses; the ``auth`` entries each new client's token adds are left out."""
    return sorted(
        k for k in perf_cache.backend().logical_keys(pattern) if not k.startswith("auth:")
    )


def entries(namespace: str) -> list[str]:
    """Cached responses of a namespace (its generation key lives under ``_gen``)."""
    return live_keys(f"{namespace}:*")


@pytest.fixture
def viewer(db):
    """Staff who may look at the console but not act on the cache."""
    return UserFactory(username="viewer", is_staff=True)


@pytest.fixture
def manager(db):
    """Staff with the manage_cache permission, not a superuser."""
    user = UserFactory(username="manager", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="manage_cache", content_type__app_label="performance")
    )
    return user


@pytest.fixture
def inventory(db):
    location = LocationFactory(name="Lab")
    return [WorkstationFactory(hostname=f"ws-{n}", location=location) for n in range(3)]


@pytest.fixture
def filled(cache_backend, reader_client, inventory) -> dict[str, list[str]]:
    """Cached entries in both namespaces, put there by a reader's GETs."""
    for path in (LIST, f"{LIST}?ordering=-hostname", LOCATIONS):
        assert get(reader_client, path).headers["X-Cache"] == "MISS"
    keys = {"workstations": entries("workstations"), "locations": entries("locations")}
    assert len(keys["workstations"]) == 2
    assert len(keys["locations"]) == 1
    return keys


# Who may do what ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("get", STATS), ("get", METRICS), ("post", CLEAR), ("post", INVALIDATE)]
)
def test_anonymous_is_asked_to_authenticate(anon_client, method, path):
    response = getattr(anon_client, method)(path, format="json")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(
    ("method", "path"), [("get", STATS), ("get", METRICS), ("post", CLEAR), ("post", INVALIDATE)]
)
def test_authenticated_non_staff_is_forbidden(reader_client, method, path):
    response = getattr(reader_client, method)(path, format="json")
    assert response.status_code == 403


def test_read_only_staff_sees_stats_and_metrics(locmem_cache, viewer, reader_client, inventory):
    get(reader_client, LIST)
    get(reader_client, LIST)
    client = token_client(viewer)

    stats = client.get(STATS)
    assert stats.status_code == 200
    row = stats.json()["namespaces"]["workstations"]
    assert (row["hits"], row["misses"], row["keys"]) == (1, 1, 1)
    assert "locations" in stats.json()["namespaces"]
    # The response cache's figures, apart from token lookups and generations.
    assert stats.json()["responses"] == {
        "hits": 1,
        "misses": 1,
        "hit_rate": 0.5,
        "namespaces": ["locations", "workstations"],
    }
    assert stats.json()["namespaces"]["auth"]["kind"] == "bookkeeping"
    assert stats.json()["bookkeeping"]["hits"] + stats.json()["bookkeeping"]["misses"] > 0

    metrics = client.get(METRICS)
    assert metrics.status_code == 200
    assert metrics.json()["pid"] > 0


def test_read_only_staff_cannot_clear_or_invalidate(filled, viewer):
    client = token_client(viewer)
    before = live_keys()
    generation = perf_cache.get_generation("workstations")

    responses = [
        post(client, CLEAR),
        post(client, INVALIDATE, {"pattern": "workstations:*"}),
        post(client, INVALIDATE, {"namespace": "workstations"}),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403]
    assert "manage cache" in responses[0].json()["detail"]
    assert live_keys() == before
    assert perf_cache.get_generation("workstations") == generation
    assert not CacheAction.objects.exists()


# What each action changes --------------------------------------------------------------------


def assert_one_audit_row(user, **expected: Any) -> CacheAction:
    action = CacheAction.objects.get()
    assert action.source == "api"
    assert action.user == user
    assert action.remote_addr == OPERATOR_ADDR
    for name, value in expected.items():
        assert getattr(action, name) == value, name
    return action


def test_invalidate_pattern_removes_matching_keys_only(filled, manager):
    response = post(token_client(manager), INVALIDATE, {"pattern": "workstations:*"})

    assert response.status_code == 200
    assert response.json() == {"pattern": "workstations:*", "dry_run": False, "keys": 2}
    assert entries("workstations") == []
    assert entries("locations") == filled["locations"]
    assert_one_audit_row(
        manager, kind="invalidate_pattern", target="workstations:*", dry_run=False, keys_affected=2
    )


def test_invalidated_pattern_is_recomputed_from_the_database(filled, manager, reader_client):
    post(token_client(manager), INVALIDATE, {"pattern": "workstations:*"})

    response = get(reader_client, LIST)
    assert response.headers["X-Cache"] == "MISS"
    assert [ws["hostname"] for ws in response.json()["results"]] == ["ws-0", "ws-1", "ws-2"]
    assert get(reader_client, LOCATIONS).headers["X-Cache"] == "HIT"


def test_dry_run_counts_and_removes_nothing(filled, manager):
    before = live_keys()
    response = post(
        token_client(manager), INVALIDATE, {"pattern": "workstations:*", "dry_run": True}
    )

    assert response.status_code == 200
    assert response.json() == {"pattern": "workstations:*", "dry_run": True, "keys": 2}
    assert set(before) <= set(live_keys())
    assert entries("workstations") == filled["workstations"]
    assert_one_audit_row(manager, kind="invalidate_pattern", dry_run=True, keys_affected=2)


def test_namespace_invalidation_makes_the_next_get_a_miss(filled, manager, reader_client):
    assert get(reader_client, LIST).headers["X-Cache"] == "HIT"
    old = perf_cache.get_generation("workstations")

    response = post(token_client(manager), INVALIDATE, {"namespace": "workstations"})

    assert response.status_code == 200
    assert response.json()["namespace"] == "workstations"
    assert response.json()["generation"] > old
    assert get(reader_client, LIST).headers["X-Cache"] == "MISS"
    assert get(reader_client, LIST).headers["X-Cache"] == "HIT"
    assert get(reader_client, LOCATIONS).headers["X-Cache"] == "HIT"
    assert_one_audit_row(
        manager, kind="invalidate_namespace", target="workstations", succeeded=True
    )


def test_clear_removes_the_entries(filled, manager, reader_client):
    response = post(token_client(manager), CLEAR)

    assert response.status_code == 200
    body = response.json()
    assert body["cleared"] is True
    assert body["keys_removed"] >= 3
    assert entries("workstations") == entries("locations") == []
    assert get(reader_client, LIST).headers["X-Cache"] == "MISS"
    assert get(reader_client, LOCATIONS).headers["X-Cache"] == "MISS"
    assert_one_audit_row(manager, kind="clear", keys_affected=body["keys_removed"])


# Bad input -------------------------------------------------------------------------------


BAD_INVALIDATIONS = [
    pytest.param({"pattern": ""}, "pattern", "empty", id="empty"),
    pytest.param({"pattern": "   "}, "pattern", "empty", id="whitespace"),
    pytest.param({"pattern": "*"}, "pattern", "matches every key", id="star"),
    pytest.param({"pattern": "**"}, "pattern", "matches every key", id="double-star"),
    pytest.param({"pattern": "w" * 201}, "pattern", "longer than 200", id="too-long"),
    pytest.param({"pattern": "workstations:\x00*"}, "pattern", "Null characters", id="nul"),
    pytest.param({"pattern": "workstations:\n*"}, "pattern", "control characters", id="newline"),
    pytest.param({"namespace": "nope"}, "namespace", "Unknown namespace", id="unknown-ns"),
    pytest.param(
        {"pattern": "workstations:*", "namespace": "workstations"},
        "non_field_errors",
        "not both",
        id="both",
    ),
    pytest.param({}, "non_field_errors", "Give 'pattern'", id="neither"),
    pytest.param({"pattern": "workstations:*", "force": True}, "force", "Unknown", id="unknown"),
    pytest.param({"namespace": "workstations", "dry_run": True}, "dry_run", "no dry run", id="ns"),
    pytest.param(["workstations:*"], "non_field_errors", "Expected a dictionary", id="list"),
]


@pytest.fixture
def untouched(filled):
    """Asserts after the test that no key, generation or audit row changed."""
    before = live_keys()
    generations = {ns: perf_cache.get_generation(ns) for ns in ("workstations", "locations")}
    yield
    assert set(before) <= set(live_keys())
    assert {ns: perf_cache.get_generation(ns) for ns in generations} == generations
    assert not CacheAction.objects.exists()


@pytest.mark.parametrize(("body", "field", "message"), BAD_INVALIDATIONS)
def test_bad_invalidation_is_refused_and_nothing_is_done(untouched, manager, body, field, message):
    response = post(token_client(manager), INVALIDATE, body)

    assert response.status_code == 400
    errors = response.json()
    assert field in errors
    assert message in json.dumps(errors[field])


@pytest.mark.parametrize("path", [INVALIDATE, CLEAR])
def test_non_json_body_is_refused(untouched, manager, path):
    response = token_client(manager).post(
        path, "pattern=workstations:*", content_type="application/json", REMOTE_ADDR=OPERATOR_ADDR
    )
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [({"force": True}, "takes no parameters"), ([1], "Expected a dictionary")],
)
def test_clear_with_parameters_is_refused(untouched, manager, body, message):
    response = post(token_client(manager), CLEAR, body)
    assert response.status_code == 400
    assert message in json.dumps(response.json())


# Rate limit ----------------------------------------------------------------------------------


@pytest.fixture
def two_actions_a_minute(settings, monkeypatch):
    """``cache_actions: 2/min`` through settings (read at request time); the throttle's clock is
    fixed so the three requests fall in one window whatever the machine."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "cache_actions": "2/min",
        },
    }
    monkeypatch.setattr(RateThrottleMixin, "timer", lambda self: 1_000_000.0, raising=False)


def test_third_invalidation_in_a_minute_is_throttled(two_actions_a_minute, filled, manager):
    client = token_client(manager)
    dry = {"pattern": "workstations:*", "dry_run": True}
    assert [post(client, INVALIDATE, dry).status_code for _ in range(2)] == [200, 200]

    third = post(client, INVALIDATE, {"pattern": "workstations:*"})

    assert third.status_code == 429
    assert int(third.headers["Retry-After"]) > 0
    assert entries("workstations") == filled["workstations"]
    assert CacheAction.objects.count() == 2


def test_clearing_does_not_reset_the_rate_limit(two_actions_a_minute, filled, manager):
    """Clear removes every key of the service, the throttle's history included unless kept."""
    client = token_client(manager)
    assert [post(client, CLEAR).status_code for _ in range(2)] == [200, 200]

    third = post(client, CLEAR)

    assert third.status_code == 429
    assert "Retry-After" in third.headers
    assert CacheAction.objects.count() == 2


def test_read_only_staff_does_not_use_up_the_action_rate(two_actions_a_minute, filled, viewer):
    client = token_client(viewer)
    assert [post(client, CLEAR).status_code for _ in range(3)] == [403, 403, 403]
