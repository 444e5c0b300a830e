"""Logging in under attack: the lockout hurts the attacker, not the user; floods store nothing.

The attacks of the issue, in-process on both backends' rate stores:

- ten wrong passwords a minute for ``admin``, from any address and without credentials, kept
  the real admin out of the token endpoint and the admin form (429), even with the right
  password from another address;
- each ``POST /api/auth/token/`` with a new username stored a throttle history, even once its
  address was refused: thousands of them pushed other histories out.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from performance import cache as perf_cache
from performance.cache.rates import RateCheck, RateStore
from tests.factories import UserFactory

from .conftest import PASSWORD, TOKEN_URL

pytestmark = pytest.mark.django_db

HOME = "198.51.100.10"  # where the admin works from
MINUTE = 60


def token(username: str, password: str, address: str) -> int:
    return (
        APIClient()
        .post(
            TOKEN_URL,
            {"username": username, "password": password},
            format="json",
            REMOTE_ADDR=address,
        )
        .status_code
    )


def admin_form(username: str, password: str, address: str) -> int:
    return (
        Client()
        .post(
            "/admin/login/",
            {"username": username, "password": password, "next": "/admin/"},
            REMOTE_ADDR=address,
        )
        .status_code
    )


@pytest.fixture
def admin(db):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


def rate_keys(scope: str) -> list[str]:
    """The rate histories the cache holds for ``scope`` (locmem's store)."""
    store = perf_cache.backend().state.rates
    return [key for key in list(store.keys()) if key.startswith(f"throttle:{scope}:")]


# The targeted lockout ------------------------------------------------------------------------


def test_failures_from_elsewhere_never_lock_the_admin_out_of_a_known_address(rates, clock, admin):
    rates()  # the defaults: 10 failures a minute per username, 20 an hour per pair
    assert token("admin", PASSWORD, HOME) == 200  # the admin's address is known from now on
    # The attack: three minutes of fifteen wrong passwords a minute, from seven addresses...
    refused = 0
    for minute in range(3):
        for n in range(15):
            address = f"203.0.113.{(minute * 15 + n) % 7}"
            refused += token("admin", f"guess-{minute}-{n}", address) == 429
        clock.advance(MINUTE / 2)
        # ...while the admin logs in, through the API and the form, from the known address.
        assert token("admin", PASSWORD, HOME) == 200
        assert admin_form("admin", PASSWORD, HOME) == 302
        clock.advance(MINUTE / 2)
    assert refused > 0  # the attacker's addresses were locked out
    # A typing mistake at home does not lock the admin out either.
    assert token("admin", "mistyped", HOME) == 400
    assert token("admin", PASSWORD, HOME) == 200


def test_an_address_that_never_failed_gets_in_during_an_attack(rates, admin):
    rates()
    for n in range(30):
        token("admin", f"guess-{n}", f"203.0.113.{n}")
    assert token("admin", PASSWORD, "192.0.2.77") == 200  # first attempt from a new address
    assert admin_form("admin", PASSWORD, "192.0.2.78") == 302


def test_an_attacking_address_is_locked_out_whatever_the_password(rates, clock, admin):
    rates(login_failures="3/hour", login_username="100/min")
    for n in range(3):
        assert token("admin", f"guess-{n}", "203.0.113.9") == 400
    assert token("admin", PASSWORD, "203.0.113.9") == 429  # the pair is locked
    assert admin_form("admin", PASSWORD, "203.0.113.9") == 429
    assert token("admin", PASSWORD, HOME) == 200  # the admin is not
    clock.advance(3600)
    assert token("admin", PASSWORD, "203.0.113.9") == 200  # the lock ends with its window


def test_a_successful_login_is_not_counted_as_a_failure(rates, admin):
    rates(login_failures="2/hour", login_username="2/min")
    for _ in range(5):
        assert token("admin", PASSWORD, HOME) == 200
    assert rate_keys("login_failures") == []
    assert rate_keys("login_username") == []


def test_a_missing_password_is_not_a_failure(rates, admin):
    rates(login_failures="1/hour", login_username="1/min")
    response = APIClient().post(TOKEN_URL, {"username": "admin"}, format="json", REMOTE_ADDR=HOME)
    assert response.status_code == 400
    assert token("admin", PASSWORD, HOME) == 200


# Floods store nothing once refused -----------------------------------------------------------

FLOOD = 2_000


def test_a_flood_of_new_usernames_stores_nothing_once_its_address_is_refused(rates, admin):
    rates()  # 10 attempts a minute per address
    assert token("admin", "wrong", HOME) == 400  # the admin's own history, to be kept
    statuses = [token(f"user-{n}", "wrong", "203.0.113.50") for n in range(FLOOD)]
    assert statuses.count(400) == 10
    assert statuses.count(429) == FLOOD - 10
    # What the flood stored: its address's history, and the ten failures it was allowed.
    assert len(rate_keys("login_address")) == 2
    assert len(rate_keys("login_failures")) == 11
    assert len(rate_keys("login_username")) == 11
    assert len(perf_cache.backend().state.rates) == 2 + 11 + 11
    # The admin's failure is still counted: its window was neither evicted nor reset.
    store = perf_cache.backend().state.rates
    admin_failures = [k for k in rate_keys("login_failures") if len(store._histories[k]) == 1]
    assert len(admin_failures) == 11


@pytest.mark.redis
def test_a_flood_stores_nothing_in_redis_once_its_address_is_refused(on_redis, rates, admin):
    rates()
    statuses = [token(f"user-{n}", "wrong", "203.0.113.51") for n in range(300)]
    assert statuses.count(429) == 290
    keys = list(on_redis.scan_iter(match=b"*throttle:*"))
    assert len(keys) == 1 + 10 + 10  # the address, then a pair and a username per failure


# The store in process memory -----------------------------------------------------------------


def test_a_peek_counts_nothing_and_stores_nothing():
    store = RateStore()
    (verdict,) = store.hit([RateCheck.peek("throttle:x:1", 60, 1000.0)])
    assert (verdict.allowed, verdict.count) == (False, 0)
    assert len(store) == 0
    store.hit([RateCheck("throttle:x:1", 5, 60, 1000.0)])
    (verdict,) = store.hit([RateCheck.peek("throttle:x:1", 60, 1001.0)])
    assert verdict.count == 1
    assert len(store._histories["throttle:x:1"]) == 1


def test_when_full_passed_windows_go_before_live_ones():
    store = RateStore(max_keys=4)
    store.hit([RateCheck("throttle:known:admin", 1, 30 * 86_400, 0.0)])
    for n in range(3):
        store.hit([RateCheck(f"throttle:old:{n}", 10, 60, 0.0)])
    store.hit([RateCheck("throttle:new:0", 10, 60, 120.0)])  # the old windows have passed
    store.hit([RateCheck("throttle:new:1", 10, 60, 120.0)])
    # The least recently used, but still live:
    expected = ["throttle:known:admin", "throttle:new:0", "throttle:new:1"]
    assert sorted(list(store.keys())) == expected
