"""Warm hits answered before DRF's dispatch: the same bytes and headers as DRF's path, for the
same people, in one round trip once a process has served the request (``cache.responses``)."""

from __future__ import annotations

import threading
import time

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance import cache as perf_cache
from performance.cache.generations import bump_generation
from performance.cache.keys import PURGE_NAMESPACE
from performance.cache.redis import _Held
from tests.factories import WorkstationFactory

from .support import redis_config

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


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_token_hit_costs_two_round_trips_then_one_and_no_sql(
    redis_cache, clients, django_assert_num_queries
):
    by_token, _ = clients
    by_token.get(LIST)
    by_token.get(LIST)  # the first hit also seeds the purge epoch
    other = LIST + "&ordering=-hostname"
    assert by_token.get(other)["X-Cache"] == "MISS"
    perf_cache.reset_stats()
    with django_assert_num_queries(0):
        assert by_token.get(other)["X-Cache"] == "HIT"
    # The two generations and the purge epoch, with the user's request rate counted in the
    # same script; then the entry: two round trips...
    assert _round_trips() == 2
    perf_cache.reset_stats()
    with django_assert_num_queries(0):
        assert by_token.get(other)["X-Cache"] == "HIT"
    # ...and once this process holds a copy of the entry under the same key, the first alone.
    assert _round_trips() == 1


@pytest.mark.django_db(transaction=True)
def test_locmem_keeps_no_copies_of_what_it_holds_already(locmem_cache, clients):
    by_token, _ = clients
    by_token.get(LIST)
    for _ in range(3):
        assert by_token.get(LIST)["X-Cache"] == "HIT"
    assert not locmem_cache.hot.enabled
    assert locmem_cache.hot.usage()["entries"] == 0


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_without_copies_a_hit_settled_before_costs_one_round_trip(
    settings, redis_url, redis_prefix, clients
):
    settings.CACHE_HOT_BYTES = 0
    settings.CACHES = redis_config(redis_url, redis_prefix)
    by_token, _ = clients
    assert by_token.get(LIST)["X-Cache"] == "MISS"
    trips = []
    for _ in range(4):
        perf_cache.reset_stats()
        assert by_token.get(LIST)["X-Cache"] == "HIT"
        trips.append(_round_trips())
    # The generations, then the entry; once the request is settled, the entry is read in the
    # same MGET as the generations its key was made of.
    assert trips == [2, 1, 1, 1]


@pytest.mark.django_db(transaction=True)
def test_locmem_reads_a_hit_settled_before_in_one_call(locmem_cache, clients):
    by_token, _ = clients
    assert by_token.get(LIST)["X-Cache"] == "MISS"
    calls, lookups = [], []
    for _ in range(3):
        perf_cache.reset_stats()
        assert by_token.get(LIST)["X-Cache"] == "HIT"
        calls.append(_round_trips())
        lookups.append(_lookups())
    # The generations, the request rate (kept in this process, counted as a call of its own),
    # the entry; once the request is settled, the entry is read with the generations.
    assert calls == [3, 2, 2]
    # The entry read with the generations is counted as the response it answers: one hit, not
    # a key found besides.
    assert lookups[1:] == lookups[:1] * 2


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_write_is_seen_at_once_by_a_process_holding_copies(redis_cache, clients, editor):
    by_token, _ = clients
    workstation = WorkstationFactory(status="staged", notes="old")
    by_token.get(LIST)
    assert by_token.get(LIST)["X-Cache"] == "HIT"  # now copied in this process
    writer = APIClient()
    writer.force_authenticate(editor)
    url = f"/api/workstations/{workstation.pk}/"
    assert writer.patch(url, {"notes": "new"}, format="json").status_code == 200
    response = by_token.get(LIST)
    assert response["X-Cache"] == "MISS"
    assert {row["notes"] for row in response.json()["results"] if row["id"] == workstation.pk} == {
        "new"
    }


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_entries_invalidated_by_pattern_are_not_served_from_copies(redis_cache, clients):
    by_token, _ = clients
    by_token.get(LIST)
    assert by_token.get(LIST)["X-Cache"] == "HIT"
    assert perf_cache.invalidate_pattern("workstations:*") >= 1
    assert by_token.get(LIST)["X-Cache"] == "MISS"
    by_token.get(LIST)
    perf_cache.clear()
    assert by_token.get(LIST)["X-Cache"] == "MISS"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_pattern_invalidation_ends_copies_whose_entry_is_already_gone(redis_cache, clients):
    """A copy can outlive its entry (evicted, expired): invalidating by pattern still ends it,
    though nothing in the cache matched any more."""
    by_token, _ = clients
    by_token.get(LIST)
    assert by_token.get(LIST)["X-Cache"] == "HIT"
    perf_cache.backend().delete_logical("workstations:*")  # the entry goes, the copy stays
    assert by_token.get(LIST)["X-Cache"] == "HIT"
    assert perf_cache.invalidate_pattern("workstations:*") == 0
    assert by_token.get(LIST)["X-Cache"] == "MISS"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_copies_count_the_query_string_the_client_chose(redis_cache, clients):
    by_token, _ = clients
    long_query = f"{LIST}&os={'x' * 2000}"  # kept in the key
    by_token.get(long_query)
    before = perf_cache.backend().hot.usage()["bytes"]
    assert by_token.get(long_query)["X-Cache"] == "HIT"  # copied now
    assert perf_cache.backend().hot.usage()["bytes"] - before > 2000


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_another_process_invalidating_by_pattern_ends_this_process_copies(redis_cache, clients):
    by_token, _ = clients
    by_token.get(LIST)
    assert by_token.get(LIST)["X-Cache"] == "HIT"
    # What another process's invalidate_pattern does to the shared cache: it deletes the
    # entries and bumps the purge epoch, which this process reads with the generations.
    perf_cache.backend().delete_logical("workstations:*")
    bump_generation(PURGE_NAMESPACE)
    assert by_token.get(LIST)["X-Cache"] == "MISS"


@pytest.mark.django_db(transaction=True)
def test_if_none_match_gives_304_on_a_warm_hit(clients):
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


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_copy_never_outlives_the_entry_it_was_made_from(
    settings, redis_url, redis_prefix, clients, editor
):
    """docs/design.md, "Invariants", 8: the entry expires in Redis (its TTL); the copy a later
    warm hit made of it must not go on answering after that."""
    config = redis_config(redis_url, redis_prefix)
    config["default"]["TIMEOUT"] = 1
    settings.CACHES = config
    settings.CACHE_TTL_JITTER = 0
    by_token, _ = clients
    later = APIClient()
    later.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=editor).key}")
    assert by_token.get(LIST, HTTP_ACCEPT="application/json")["X-Cache"] == "MISS"
    time.sleep(0.5)
    # Another client, whose token is looked up now (so it is still known at the end), makes
    # this process's copy of the entry.
    assert later.get(LIST, HTTP_ACCEPT="application/json")["X-Cache"] == "HIT"
    assert later.get(LIST, HTTP_ACCEPT="application/json")["X-Cache"] == "HIT"
    assert perf_cache.backend().hot.usage()["entries"] == 1
    time.sleep(0.7)  # the entry has expired in Redis; a copy timed from when it was made has not

    assert later.get(LIST, HTTP_ACCEPT="application/json")["X-Cache"] == "MISS"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_costs_a_warm_hit_nothing(
    redis_cache, clients, redis_client
):
    """Redis closes idle connections (its ``timeout``), a proxy or a restart drops them: the warm
    read sends its command again on a new connection of the same pool, and the hit is served
    from the cache, with no error counted and the breaker closed."""
    by_token, _ = clients
    for _ in range(2):
        assert by_token.get(LIST, HTTP_ACCEPT="application/json")["X-Cache"] in ("MISS", "HIT")
    # The connection the next read takes: the one this thread released last.
    pool = redis_cache.client.redis().connection_pool
    connection = pool.get_connection()
    connection.send_command("CLIENT", "ID")
    client_id = connection.read_response()
    pool.release(connection)
    assert redis_client.client_kill_filter(_id=client_id) == 1
    errors = perf_cache.stats(include_keys=False)["totals"]["errors"]

    hit = by_token.get(LIST, HTTP_ACCEPT="application/json")
    assert (hit.status_code, hit["X-Cache"]) == (200, "HIT")
    assert perf_cache.stats(include_keys=False)["totals"]["errors"] == errors
    assert redis_cache.breaker_state()["state"] == "closed"

    # The read a warm hit without rates makes (``read_values``), on the connection this thread
    # keeps: closed by the server, it is connected again, as the pool does for one it hands out.
    redis_cache.set("ahead", 1)
    assert redis_cache.read(("ahead",)) == ({"ahead": 1}, None)
    connection = _Held.of(redis_cache.client.redis().connection_pool).connection
    connection.send_command("CLIENT", "ID")
    assert redis_client.client_kill_filter(_id=connection.read_response()) == 1

    assert redis_cache.read(("ahead",)) == ({"ahead": 1}, None)
    assert perf_cache.stats(include_keys=False)["totals"]["errors"] == errors
    assert redis_cache.breaker_state()["failures"] == 0  # no failure towards opening it


@pytest.mark.redis
def test_threads_that_come_and_go_give_their_warm_read_connection_back(
    settings, redis_url, redis_prefix
):
    """Each thread keeps a connection for its warm reads, and gives it back when it ends: threads
    that come and go (a server's per-request threads, a test's) never run the pool out of
    connections. Kept and never given back, they did: "Too many connections", the breaker
    opened, and every page came from the database."""
    # A pool of its own (django-redis keeps one per URL), of three connections.
    settings.CACHES = redis_config(f"{redis_url}?max_connections=3", redis_prefix)
    perf_cache.backend().set("ahead", 1)
    client = perf_cache.backend().client
    answers: list[object] = []

    def read() -> None:
        try:
            answers.append(client.read_values(("ahead", "absent")))
        except Exception as exc:  # (a thread's exception is only printed)
            answers.append(exc)

    for _ in range(10):  # more threads than the pool has connections, one after the other
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()

    assert answers == [{"ahead": 1}] * 10
