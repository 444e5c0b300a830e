"""Rate limits: anonymous and per user everywhere, and a strict one on obtaining a token."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client
from django_redis.client.default import glob_escape
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.performance.support import redis_config, unique

from .conftest import PASSWORD, TOKEN_URL

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
LIST = "/api/workstations/"
SCHEMA = "/api/schema/?format=json"


_queries = itertools.count()


def read(client: APIClient):
    """A GET on the list that is never a warm cache hit (each asks for another search)."""
    return client.get(LIST, {"search": f"q{next(_queries)}"})


def login(username: str, password: str, address: str = "192.0.2.1", **extra):
    return APIClient().post(
        TOKEN_URL,
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=address,
        **extra,
    )


def assert_throttled(response) -> None:
    assert response.status_code == 429
    assert response["Content-Type"].split(";")[0].endswith("json")  # the schema's is openapi+json
    assert int(response["Retry-After"]) >= 1
    assert "throttled" in response.json()["detail"]


# Defaults ------------------------------------------------------------------------------------


def test_default_throttles_are_anonymous_and_per_user(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] == [
        "performance.throttling.AnonRateThrottle",
        "performance.throttling.UserRateThrottle",
    ]


def test_rates_come_from_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_ENV", "DEBUG"}}
    env.update(
        VAR_DIR=str(tmp_path),
        THROTTLE_LOGIN_USERNAME_RATE="3/hour",
        THROTTLE_LOGIN_ADDRESS_RATE="7/min",
    )
    script = (
        "from django.conf import settings; r = settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']; "
        "print(r['login_username'], r['login_address'])"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["3/hour", "7/min"]


# Anonymous and per-user rates ----------------------------------------------------------------


def test_anonymous_rate(rates):
    rates(anon="2/min")
    client = APIClient()
    assert [client.get(SCHEMA).status_code for _ in range(2)] == [200, 200]
    assert_throttled(client.get(SCHEMA))


def test_forged_x_forwarded_for_does_not_reset_the_anonymous_rate(rates):
    """With no trusted proxy (NUM_PROXIES=0) the header is ignored: a client cannot choose the
    address it is counted under."""
    rates(anon="2/min")
    client = APIClient()
    for n in range(2):
        assert client.get(SCHEMA, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code == 200
    assert_throttled(client.get(SCHEMA, HTTP_X_FORWARDED_FOR="203.0.113.99"))


def test_user_rate_is_per_user(rates, reader_client, editor_client):
    rates(user="3/min")
    assert [read(reader_client).status_code for _ in range(3)] == [200, 200, 200]
    assert_throttled(read(reader_client))
    assert read(editor_client).status_code == 200


def test_warm_hits_and_cold_reads_spend_one_budget(rates, reader_client):
    """A warm hit is answered before DRF's dispatch, and counted all the same."""
    rates(user="4/min")
    assert reader_client.get(LIST).status_code == 200  # cold: cached now
    assert reader_client.get(LIST)["X-Cache"] == "HIT"  # warm
    assert read(reader_client).status_code == 200  # cold
    assert reader_client.get(LIST)["X-Cache"] == "HIT"  # warm: the fourth
    assert_throttled(reader_client.get(LIST))
    assert_throttled(read(reader_client))


def test_rate_recovers_after_the_window(rates, clock, reader_client):
    rates(user="2/min")
    for _ in range(2):
        assert read(reader_client).status_code == 200
    throttled = read(reader_client)
    assert_throttled(throttled)
    assert int(throttled["Retry-After"]) == 60
    clock.advance(61)
    assert read(reader_client).status_code == 200


# Obtaining a token ---------------------------------------------------------------------------


def test_failures_per_username_refuse_the_addresses_that_failed(rates, reader):
    rates(login_username="3/min", login_address="100/min")
    # Three wrong passwords, each from another address...
    for n in range(3):
        assert login("reader", "wrong", address=f"192.0.2.{n}").status_code == 400
    # ...and an address that failed is refused, even with the right password...
    assert_throttled(login("reader", PASSWORD, address="192.0.2.0"))
    # ...however the username is spelt.
    assert_throttled(login(" READER ", PASSWORD, address="192.0.2.1"))
    # An address that never failed for it is not locked out by failures elsewhere.
    assert login("reader", PASSWORD, address="192.0.2.50").status_code == 200
    # Another user is not affected.
    UserFactory(username="other")
    assert login("other", PASSWORD, address="192.0.2.1").status_code == 200


def test_login_rate_per_address(rates, reader):
    rates(login_username="100/min", login_address="3/min")
    for n in range(3):
        assert login(f"nobody{n}", "wrong", address="198.51.100.7").status_code == 400
    assert_throttled(login("reader", PASSWORD, address="198.51.100.7"))
    # Malformed bodies count as well (the address throttle does not read the body).
    assert login("reader", PASSWORD, address="198.51.100.8").status_code == 200


def test_malformed_login_bodies_count_against_the_address(rates):
    rates(login_username="100/min", login_address="2/min")
    client = APIClient()
    for _ in range(2):
        response = client.post(
            TOKEN_URL, '{"username": ', content_type="application/json", REMOTE_ADDR="192.0.2.9"
        )
        assert response.status_code == 400
    assert_throttled(client.post(TOKEN_URL, {}, format="json", REMOTE_ADDR="192.0.2.9"))


def test_login_default_rate_is_strict(rates, reader):
    """Ten failures a minute per username by default (the setting, unchanged by the test)."""
    rates()  # only the fixed clock
    for n in range(10):
        assert login("reader", f"guess-{n}", address=f"192.0.2.{n}").status_code == 400
    assert_throttled(login("reader", PASSWORD, address="192.0.2.3"))
    assert login("reader", PASSWORD, address="192.0.2.200").status_code == 200


def test_login_throttle_recovers_after_the_window(rates, clock, reader):
    rates(login_username="1/min")
    assert login("reader", "wrong").status_code == 400
    assert_throttled(login("reader", PASSWORD))
    clock.advance(60)
    assert login("reader", PASSWORD).status_code == 200


# Failing open ----------------------------------------------------------------------------------


# The admin's login form: the same budgets as the token endpoint ----------------------------

ADMIN_LOGIN = "/admin/login/"


def admin_login(username: str, password: str, address: str = "192.0.2.1") -> tuple[Any, Client]:
    client = Client()
    response = client.post(
        ADMIN_LOGIN,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )
    return response, client


def assert_admin_throttled(response) -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert b"Too many login attempts" in response.content
    assert b"Try again in" in response.content


def test_admin_login_spends_the_username_budget_of_the_api(rates):
    UserFactory(username="boss", is_staff=True)
    rates(login_username="3/min", login_address="100/min")
    for n in range(3):
        response, _ = admin_login("boss", "wrong", address=f"192.0.2.{n}")
        assert response.status_code == 200  # the form again, with its error
        assert b"Please enter the correct username and password" in response.content
    # An address that failed is refused the right password, through the admin and the API.
    response, client = admin_login("boss", PASSWORD, address="192.0.2.0")
    assert_admin_throttled(response)
    assert "_auth_user_id" not in client.session
    assert_throttled(login("boss", PASSWORD, address="192.0.2.1"))
    # Another address logs in.
    response, client = admin_login("boss", PASSWORD, address="192.0.2.50")
    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_admin_login_spends_the_address_budget_of_the_api(rates):
    UserFactory(username="boss", is_staff=True)
    rates(login_username="100/min", login_address="3/min")
    for n in range(2):
        assert login(f"nobody{n}", "wrong", address="198.51.100.7").status_code == 400
    assert admin_login("nobody", "wrong", address="198.51.100.7")[0].status_code == 200
    assert_admin_throttled(admin_login("boss", PASSWORD, address="198.51.100.7")[0])
    # Another address still logs in.
    response, client = admin_login("boss", PASSWORD, address="198.51.100.8")
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    assert client.session["_auth_user_id"]


def test_a_json_post_to_the_admin_login_is_refused_not_a_server_error(rates):
    """The form never sends JSON; such a post has no username to count, but its address is
    counted like any other attempt."""
    rates(login_username="100/min", login_address="2/min")
    client = Client()
    posts = [
        client.post(ADMIN_LOGIN, '{"username": "boss"}', content_type="application/json")
        for _ in range(3)
    ]
    assert [response.status_code for response in posts] == [200, 200, 429]


def test_showing_the_admin_login_form_is_never_throttled(rates):
    rates(login_username="1/min", login_address="1/min")
    assert [Client().get(ADMIN_LOGIN).status_code for _ in range(3)] == [200, 200, 200]


def _write_garbage(client: redis.Redis, key: bytes, garbage: str) -> None:
    client.delete(key)
    if garbage == "string":
        client.set(key, b"\x80garbage")
    elif garbage == "list":
        client.rpush(key, b"1", b"2")
    elif garbage == "hash":
        client.hset(key, "a", "1")
    elif garbage == "words":
        client.zadd(key, {"not-a-time": 1e18})  # a sorted set, with a member from the future


@pytest.mark.redis
@pytest.mark.parametrize("garbage", ["string", "list", "hash", "words"])
def test_garbage_history_in_the_cache_is_treated_as_none(
    on_redis, rates, reader_client, garbage, settings
):
    rates(user="2/min")
    assert read(reader_client).status_code == 200
    # This test's keys only: other test runs share the Redis database.
    prefix = glob_escape(settings.CACHES["default"]["KEY_PREFIX"])
    keys = list(on_redis.scan_iter(match=f"{prefix}:*throttle:user:*"))
    assert len(keys) == 1
    _write_garbage(on_redis, keys[0], garbage)

    assert [read(reader_client).status_code for _ in range(2)] == [200, 200]
    assert_throttled(read(reader_client))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_throttles_fail_open_when_the_cache_is_unreachable(settings, rates, reader):
    """Nothing listens on the port: every cache call fails; every request is still answered."""
    settings.CACHES = redis_config(f"redis://127.0.0.1:{_free_port()}/0", unique("down"))
    rates(user="1/min", login_username="1/min", login_address="1/min", anon="1/min")
    token = login("reader", PASSWORD)
    assert token.status_code == 200
    assert login("reader", PASSWORD).status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    assert [read(client).status_code for _ in range(3)] == [200, 200, 200]
    assert [APIClient().get(SCHEMA).status_code for _ in range(2)] == [200, 200]


@pytest.mark.redis
def test_login_throttle_on_redis(on_redis, rates, reader):
    """The production backend: histories round-trip through Redis."""
    rates(login_username="2/min")
    assert [login("reader", "wrong").status_code for _ in range(2)] == [400, 400]
    assert_throttled(login("reader", PASSWORD))
