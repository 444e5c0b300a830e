"""A request answered from the cache before is answered again after its one read, without asking
DRF's objects again (``cache.responses.Settled``) — and everything they decided still holds: who
the token is, the throttles, a setting changed, a write, an entry gone, the token forgotten."""

from __future__ import annotations

import gc
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.request import Request
from rest_framework.test import APIClient

from performance import cache as perf_cache
from performance.cache import responses
from performance.cache.keys import rate_key
from tests.factories import WorkstationFactory
from workstations.api.permissions import ModelPermissions

from .support import token_client, tracked_from

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/api/workstations/?page_size=5"


@pytest.fixture(params=[False, True], ids=["test-client", "served"])
def served(request: pytest.FixtureRequest) -> bool:
    """Whether the reading client's requests go through the application gunicorn serves, whose
    replays of warm hits (``performance.replay``) must keep every promise the view keeps."""
    return request.param


@pytest.fixture
def machines(db):
    return WorkstationFactory.create_batch(3)


def settle(client: APIClient, url: str = LIST) -> bytes:
    """Ask for ``url`` until warm hits have answered it (and settled it): its body. (On Redis
    the first hit also seeds the purge epoch, which the second finds: the second settles it.)"""
    assert client.get(url)["X-Cache"] == "MISS"
    hits = [client.get(url) for _ in range(2)]
    assert [(hit.status_code, hit["X-Cache"]) for hit in hits] == [(200, "HIT")] * 2
    return hits[-1].content


def _history(cache, user) -> int:
    """How many requests ``user``'s window of the ``user`` rate holds."""
    key = rate_key("user", str(user.pk))
    if cache.state.rates is not None:
        return len(cache.state.rates._histories.get(key, ()))
    return cache.client.redis().zcard(cache.client.make_key(key))


def test_a_request_seen_before_is_answered_without_asking_drf_s_objects_again(
    served, cache_backend, machines, reader, monkeypatch
):
    client = token_client(reader, served=served)
    body = settle(client)
    asked = []
    real_init, real_permission = Request.__init__, ModelPermissions.has_permission

    def init(self, *args, **kwargs):
        asked.append("Request")
        real_init(self, *args, **kwargs)

    def has_permission(self, request, view):
        asked.append("has_permission")
        return real_permission(self, request, view)

    monkeypatch.setattr(Request, "__init__", init)
    monkeypatch.setattr(ModelPermissions, "has_permission", has_permission)
    again = client.get(LIST)
    assert (again.status_code, again["X-Cache"], again.content) == (200, "HIT", body)
    assert asked == []
    # Another query is a request of its own: DRF's objects decide it, as before.
    assert client.get(LIST + "&ordering=hostname").status_code == 200
    assert "has_permission" in asked


def test_each_request_settled_before_counts_once_against_the_rate(
    served, cache_backend, machines, reader, settings
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "user": "5/min",
        },
    }
    client = token_client(reader, served=served)
    statuses = [client.get(LIST).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert _history(cache_backend, reader) == 5


def test_a_rate_lowered_holds_for_requests_settled_before(
    served, cache_backend, machines, reader, settings
):
    client = token_client(reader, served=served)
    settle(client)
    assert client.get(LIST).status_code == 200
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "user": "3/min",
        },
    }
    refused = client.get(LIST)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1


def test_a_user_deactivated_is_refused_on_a_request_settled_before(
    served, cache_backend, machines, reader
):
    client = token_client(reader, served=served)
    settle(client)
    reader.is_active = False
    reader.save()
    assert client.get(LIST).status_code == 401


def test_a_change_shows_at_once_on_a_request_settled_before(
    served, cache_backend, machines, reader, editor
):
    client = token_client(reader, served=served)
    settle(client)
    target = min(machines, key=lambda machine: machine.hostname)
    changed = token_client(editor).patch(
        f"/api/workstations/{target.pk}/", {"notes": "moved to the lab"}, format="json"
    )
    assert changed.status_code == 200
    after = client.get(LIST)
    assert after["X-Cache"] == "MISS"
    assert "moved to the lab" in after.content.decode()


def test_a_change_to_an_object_a_page_does_not_show_leaves_it_settled(
    served, cache_backend, machines, reader, editor, monkeypatch
):
    """Every change moves the collections' generation, which a list page computed on a miss
    is stored against, but the page's answer is keyed by its own generations: a change in
    place to a machine the page does not show leaves the page settled, its answer as it was."""
    writer = token_client(editor)  # (a token made changes who tokens are: made first)
    client = token_client(reader, served=served)
    first = "/api/workstations/?page_size=1"
    body = settle(client, first)
    elsewhere = max(machines, key=lambda machine: machine.hostname)
    changed = writer.patch(
        f"/api/workstations/{elsewhere.pk}/", {"notes": "moved to the lab"}, format="json"
    )
    assert changed.status_code == 200
    asked = []
    real_permission = ModelPermissions.has_permission

    def has_permission(self, request, view):
        asked.append("has_permission")
        return real_permission(self, request, view)

    monkeypatch.setattr(ModelPermissions, "has_permission", has_permission)
    again = client.get(first)
    assert (again.status_code, again["X-Cache"], again.content) == (200, "HIT", body)
    assert asked == []
    # The machine's own page shows the change at once.
    shown = client.get(f"/api/workstations/?page_size=1&page={len(machines)}")
    assert "moved to the lab" in shown.content.decode()


def test_an_entry_deleted_under_a_settled_request_is_computed_and_counted_once(
    served, cache_backend, machines, reader
):
    client = token_client(reader, served=served)
    body = settle(client)
    before = _history(cache_backend, reader)
    assert perf_cache.invalidate_pattern("workstations:*") > 0
    again = client.get(LIST)
    assert (again.status_code, again["X-Cache"], again.content) == (200, "MISS", body)
    assert _history(cache_backend, reader) == before + 1


def test_a_settled_request_ends_when_the_process_forgets_the_token(
    served, locmem_cache, machines, reader, monkeypatch
):
    """The process remembers who a token is until its cached lookup expires (``tokens``); a
    request settled under it is decided again after that, and the token looked up again."""
    client = token_client(reader, served=served)
    settle(client)
    later = time.time() + 10 * 24 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(LIST).status_code == 200
    assert any("authtoken_token" in query["sql"] for query in queries.captured_queries)


def test_a_settled_request_leaves_the_garbage_collector_little_to_look_at(
    served, cache_backend, machines, reader
):
    """A process keeps what it settled of each request it answered (and the scopes it keyed it
    by, and on Redis its copy of the entry) as long as it runs: thousands of requests' worth. A
    full collection holds every thread of the process while it looks at each object it tracks,
    so these are kept in as few of them as can be: slots, and tuples and dictionaries of plain
    values, which the collector stops tracking; the token's user shared, not copied."""
    client = token_client(reader, served=served)
    urls = [f"/api/workstations/?page_size={size}" for size in range(1, 41)]
    for url in urls:
        assert client.get(url)["X-Cache"] == "MISS"
    state = cache_backend.state
    roots = [state.settled, responses._scopes_by_request, state.copies]
    gc.collect()
    known = {id(thing) for thing in gc.get_objects()}
    for url in urls:
        assert [client.get(url)["X-Cache"] for _ in range(2)] == ["HIT", "HIT"]
    gc.collect()
    assert len(state.settled) == len(urls)
    # Each: the settled request, its key (which names the view's class) and its throttles'
    # clocks; and a few shared by all. (Eleven each, before: lists, a copy of the user.)
    assert tracked_from(roots, known) / len(urls) < 3.5
