"""A warm read gives DRF's answer: the cache decides nothing DRF would decide otherwise.

Each request is sent twice, cold (the entry is not cached yet) and warm (it is): the status a
client gets must not depend on whether somebody else's request filled the cache before.
"""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance.cache.keys import generation_key, rate_key
from tests.factories import WorkstationFactory

from .support import token_client

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/api/workstations/?page_size=5"


@pytest.fixture
def machines(db):
    return WorkstationFactory.create_batch(3)


def cold_and_warm(warmer: APIClient, client: APIClient, url: str, **extra) -> tuple[int, int]:
    """The status ``client`` gets for ``url`` before and after ``warmer`` filled the cache."""
    cold = client.get(url, **extra)
    warmed = [warmer.get(url).status_code for _ in range(2)]
    assert warmed == [200, 200], "the warming client must be able to read"
    warm = client.get(url, **extra)
    return cold.status_code, warm.status_code


@pytest.mark.urls("tests.performance.read_path_urls")
def test_a_permission_that_restricts_reads_holds_on_warm_hits(
    cache_backend, machines, reader, staff
):
    """The view's permission objects are asked, not guessed from their classes."""
    url = "/api/staff-only/workstations/?page_size=5"
    assert cold_and_warm(token_client(staff), token_client(reader), url) == (403, 403)


@pytest.mark.parametrize("accept", ["", "text/csv", "application/xml"])
def test_an_accept_no_renderer_offers_is_406_warm_as_cold(cache_backend, machines, reader, accept):
    reader_token = token_client(reader)
    assert cold_and_warm(reader_token, reader_token, LIST, HTTP_ACCEPT=accept) == (406, 406)


@pytest.mark.parametrize(
    ("suffix", "status"),
    [("\xa0", 401), ("\x85", 401), (" x", 401), ("\x0b", 200), ("\t", 200)],
    ids=["no-break space", "NEL", "two words", "vertical tab", "tab"],
)
def test_a_token_header_is_read_as_drf_reads_it(cache_backend, machines, reader, suffix, status):
    """DRF reads the header as bytes and splits it on ASCII white space only: a token followed
    by a no-break space or a NEL is not the token, one followed by a tab is."""
    client = token_client(reader, suffix=suffix)
    assert cold_and_warm(token_client(reader), client, LIST) == (status, status)


def test_warm_hits_are_throttled_like_any_read(cache_backend, machines, reader, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "user": "5/min",
        },
    }
    client = token_client(reader)
    statuses = [client.get(LIST).status_code for _ in range(30)]
    assert statuses == [200] * 5 + [429] * 25
    refused = client.get(LIST)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"]


@pytest.fixture
def by_token_and_session(machines, reader):
    session = APIClient()
    session.force_login(reader)
    return {"early read": token_client(reader), "DRF's path": session}


@pytest.mark.parametrize("path", ["early read", "DRF's path"])
@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("HTTP_IF_NONE_MATCH", "{etag}", 304),
        ("HTTP_IF_NONE_MATCH", "W/{etag}", 304),  # weak comparison
        ("HTTP_IF_NONE_MATCH", '"other", {etag}', 304),  # a list
        ("HTTP_IF_NONE_MATCH", "*", 304),
        ("HTTP_IF_NONE_MATCH", '"other"', 200),
        ("HTTP_IF_MATCH", "{etag}", 200),
        ("HTTP_IF_MATCH", '"other"', 412),  # RFC 9110: the precondition failed
    ],
)
def test_conditional_requests_follow_rfc_9110(
    cache_backend, by_token_and_session, path, header, value, status
):
    client = by_token_and_session[path]
    etag = client.get(LIST, HTTP_ACCEPT="application/json")["ETag"]
    response = client.get(LIST, HTTP_ACCEPT="application/json", **{header: value.format(etag=etag)})
    assert response.status_code == status
    assert response["ETag"] == etag
    assert response["X-Cache"] == "HIT"
    if status == 304:
        assert response.content == b""


# What DRF sets up and asks, the early read sets up and asks too ---------------------------------


@pytest.mark.urls("tests.performance.read_path_urls")
def test_permissions_chosen_by_the_view_action_are_asked_warm(cache_backend, machines, reader):
    client = token_client(reader)
    assert [client.get("/api/by-action/").status_code for _ in range(3)] == [200, 200, 200]
    assert client.get("/api/by-action/")["X-Cache"] == "HIT"


@pytest.mark.urls("tests.performance.read_path_urls")
def test_a_permission_that_raises_its_refusal_is_403_warm_as_cold(
    cache_backend, machines, reader, staff
):
    url = "/api/raising/"
    refused = token_client(reader).get(url)
    assert (refused.status_code, refused.json()["detail"]) == (403, "Staff only.")
    assert cold_and_warm(token_client(staff), token_client(reader), url) == (403, 403)


@pytest.mark.urls("tests.performance.read_path_urls")
def test_routes_of_one_view_class_negotiate_with_their_own_renderers(cache_backend, reader):
    client = token_client(reader)
    assert client.get("/api/renderers/json-only/", HTTP_ACCEPT="*/*").status_code == 200
    url = "/api/renderers/plain-first/"
    assert client.get(url, HTTP_ACCEPT="*/*")["Content-Type"].startswith("text/plain")
    assert client.get(url, HTTP_ACCEPT="application/json")["X-Cache"] == "MISS"  # now cached
    warm = client.get(url, HTTP_ACCEPT="*/*")
    assert warm["Content-Type"].startswith("text/plain")
    assert "X-Cache" not in warm  # the plain renderer's answers are not cached


@pytest.mark.urls("tests.performance.read_path_urls")
def test_an_object_permission_holds_on_warm_hits(cache_backend, reader, staff):
    url = f"/api/object-permissions/{WorkstationFactory().pk}/"
    assert cold_and_warm(token_client(staff), token_client(reader), url) == (403, 403)
    assert token_client(staff).get(url).status_code == 200


# Counted once ----------------------------------------------------------------------------------


def _history(cache, scope: str, user) -> int:
    key = rate_key(scope, str(user.pk))
    if cache.state.rates is not None:
        return len(cache.state.rates._histories.get(key, ()))
    return cache.client.redis().zcard(cache.client.make_key(key))


def test_a_request_is_counted_once_when_the_namespace_generation_is_gone(
    cache_backend, machines, reader
):
    """The rates travel with the generations; when the namespace's is missing (evicted, or
    forgotten after a refused bump), DRF's path answers and must not count the request again."""
    client = token_client(reader)
    assert client.get(LIST).status_code == 200
    assert client.get(LIST)["X-Cache"] == "HIT"
    before = _history(cache_backend, "user", reader)
    cache_backend.delete(generation_key("workstations"))
    assert client.get(LIST)["X-Cache"] == "MISS"
    assert _history(cache_backend, "user", reader) == before + 1


@pytest.mark.urls("tests.performance.read_path_urls")
@pytest.mark.parametrize(("user_rate", "scoped_rate"), [("3/min", "100/min"), ("100/min", "3/min")])
def test_every_throttle_counts_each_request_once_and_the_refusing_one_stops(
    cache_backend, machines, reader, settings, user_rate, scoped_rate
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "user": user_rate,
            "cache_actions": scoped_rate,
        },
    }
    client = token_client(reader)
    statuses, counts = [], []
    for _ in range(6):
        statuses.append(client.get("/api/two-throttles/").status_code)
        counts.append(
            (
                _history(cache_backend, "user", reader),
                _history(cache_backend, "cache_actions", reader),
            )
        )
    assert statuses == [200] * 3 + [429] * 3
    expected = [(1, 1), (2, 2), (3, 3), (3, 4), (3, 5), (3, 6)]
    if user_rate != "3/min":
        expected = [(scoped, user) for user, scoped in expected]
    assert counts == expected


# The user a process remembers belongs to no request ------------------------------------------


def test_what_a_request_does_to_its_user_no_other_request_sees(cache_backend, machines, reader):
    client = token_client(reader)
    client.get(LIST)
    client.get(LIST)
    client.get(LIST + "&ordering=-hostname")  # settled early, then a miss: DRF's path
    key = Token.objects.get(user=reader).key
    remembered = cache_backend.state.tokens._items
    [(_, shared, _)] = remembered.values()
    assert shared._state.fields_cache == {}  # no token (and its raw key) cached on it
    first, second = (cache_backend.state.tokens.latest(key)[1] for _ in range(2))
    assert first is not second
    first.marked = True
    assert not hasattr(second, "marked")


# What someone else wrote under this service's keys --------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("garbage", ["bytes no serializer reads", "a hash"])
def test_an_unreadable_generation_is_replaced_warm_and_cold(
    redis_cache, redis_client, machines, reader, garbage
):
    """A value this service cannot read (not its serializer's, or another type of key) under a
    generation key is missing: the next request starts a new generation instead of a 500."""
    client = token_client(reader)
    assert client.get(LIST)["X-Cache"] == "MISS"
    assert client.get(LIST)["X-Cache"] == "HIT"
    raw = redis_cache.client.make_key(generation_key("workstations"))
    redis_client.delete(raw)
    if garbage == "a hash":
        redis_client.hset(raw, "not", "ours")
    else:
        redis_client.set(raw, b"\x80\x05not a pickle")
    assert client.get(LIST)["X-Cache"] == "MISS"  # a new generation: nothing stale served
    assert client.get(LIST)["X-Cache"] == "HIT"
    assert redis_client.type(raw) == b"string"
