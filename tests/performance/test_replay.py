"""A warm hit of a request settled before, sent again, is answered by the application gunicorn
serves with what Django answered it last time, after the one read that confirms it
(``performance.replay``): the same answer, each request's own id, log line and counts, and never
another request's answer. (Every promise of a settled request — a write, a rate, a user
deactivated, an entry gone, a token forgotten — is tested through it too: ``test_settled``'s
``served`` cases.)"""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls.resolvers import URLResolver

from performance import metrics, replay
from tests.factories import WorkstationFactory

from .support import JSON, namespace_stats, token_client

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/api/workstations/?page_size=5"


@pytest.fixture
def machines(db):
    return WorkstationFactory.create_batch(3)


@pytest.fixture
def resolved(monkeypatch) -> list[str]:
    """The paths Django resolved: one for each request Django answered itself."""
    paths: list[str] = []
    real = URLResolver.resolve

    def resolve(self, path):
        if self.pattern.regex.pattern == "^/":  # (the root: once per request)
            paths.append(path)
        return real(self, path)

    monkeypatch.setattr(URLResolver, "resolve", resolve)
    return paths


def settle(client, url: str = LIST, **headers: str):
    """Ask until a warm hit of a settled request has been answered: that answer."""
    assert client.get(url, **JSON, **headers)["X-Cache"] == "MISS"
    hits = [client.get(url, **JSON, **headers) for _ in range(3)]
    assert [(hit.status_code, hit["X-Cache"]) for hit in hits] == [(200, "HIT")] * 3
    return hits[-1]


def _answer(response) -> tuple:
    """Status, headers (but the request's own id) and body."""
    headers = [(name, value) for name, value in response.items() if name != "X-Request-ID"]
    return response.status_code, headers, response.content


def _requests_counted(**labels: str) -> float:
    """``wsinv_http_requests_total`` summed over the samples with ``labels``."""
    return sum(
        sample.value
        for family in metrics.REQUESTS.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
        and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_a_warm_hit_sent_again_is_django_s_answer_without_django(
    cache_backend, machines, reader, resolved
):
    served = token_client(reader, served=True)
    settle(served)
    etag = served.get(LIST, **JSON)["ETag"]
    for headers in ({}, {"HTTP_IF_NONE_MATCH": etag}):
        served.get(LIST, **JSON, **headers)  # (the conditional request: kept the first time)
        del resolved[:]
        with CaptureQueriesContext(connection) as queries:
            replayed = served.get(LIST, **JSON, **headers)
        assert (resolved, queries.captured_queries) == ([], [])  # Django never asked
        # What Django answers the same request with, through the test client's handler.
        django = token_client(reader).get(LIST, **JSON, **headers)
        assert resolved == ["/api/workstations/"]
        assert _answer(replayed) == _answer(django)
        assert replayed.status_code == (304 if headers else 200)
        assert replayed["X-Cache"] == "HIT"


def test_each_replayed_request_has_its_own_id_log_line_and_counts(
    cache_backend, machines, reader, resolved, caplog
):
    served = token_client(reader, served=True)
    settle(served)
    caplog.set_level(logging.INFO, logger="performance.requests")
    caplog.clear()
    hits_before = namespace_stats("workstations")["hits"]
    counted_before = _requests_counted(cache="hit", status="200", method="GET")
    del resolved[:]
    answers = [
        served.get(LIST, **JSON),
        served.get(LIST, **JSON),
        served.get(LIST, **JSON, HTTP_X_REQUEST_ID="client-chosen-id-1"),
    ]
    assert resolved == []  # all three replayed
    ids = [answer["X-Request-ID"] for answer in answers]
    assert len(set(ids)) == 3 and ids[2] == "client-chosen-id-1"
    records = [r for r in caplog.records if r.name == "performance.requests"]
    assert [(r.request_id, r.user_id, r.method, r.path, r.status, r.cache) for r in records] == [
        (request_id, reader.pk, "GET", "/api/workstations/", 200, "HIT") for request_id in ids
    ]
    assert namespace_stats("workstations")["hits"] == hits_before + 3
    assert _requests_counted(cache="hit", status="200", method="GET") == counted_before + 3


def test_a_replay_never_answers_another_request(cache_backend, machines, reader, editor, resolved):
    other = token_client(editor, served=True)  # (a token made changes who tokens are)
    mine = token_client(reader, served=True)
    settle_body = settle(mine).content
    # Another token, another Accept, a cookie, another query: each is Django's to answer.
    asked = [
        lambda: other.get(LIST, **JSON),
        lambda: mine.get(LIST, HTTP_ACCEPT="application/json; indent=2"),
        lambda: mine.get(LIST, **JSON, HTTP_COOKIE="sessionid=not-a-session"),
        lambda: mine.get(LIST + "&ordering=hostname", **JSON),
    ]
    for n, ask in enumerate(asked, start=1):
        del resolved[:]
        assert ask().status_code == 200
        assert resolved == ["/api/workstations/"], n
    # And the request replayed as before, its answer its own.
    del resolved[:]
    assert mine.get(LIST, **JSON).content == settle_body
    assert resolved == []


def test_a_kept_answer_holds_no_copy_of_the_entry(cache_backend, machines, reader):
    """An answer is kept under each request settled, thousands of them: its body is the
    entry's, read again for each replay, so that a page no longer cached is not kept alive by
    the answers that sent it."""
    served = token_client(reader, served=True)
    urls = [f"/api/workstations/?page_size={size}" for size in range(1, 6)]
    for url in urls:
        settle(served, url)
    queries = {url.partition("?")[2] for url in urls}
    kept = [kept for kept in replay._replays.values() if kept.settled_as[3] in queries]
    assert {kept.settled_as[3] for kept in kept} == queries
    sent = [kept.body for kept in kept if kept.code == 200]
    assert sent == [None] * len(sent)


def test_a_replay_that_fails_is_answered_by_django(
    cache_backend, machines, reader, resolved, monkeypatch, caplog
):
    served = token_client(reader, served=True)
    body = settle(served).content

    def broken(*args, **kwargs):
        raise RuntimeError("a defect in the replay")

    monkeypatch.setattr(replay, "settled_entry", broken)
    del resolved[:]
    answer = served.get(LIST, **JSON)
    assert (answer.status_code, answer["X-Cache"], answer.content) == (200, "HIT", body)
    assert resolved == ["/api/workstations/"]
    assert "replaying a warm hit failed" in caplog.text


def test_a_path_no_answer_was_kept_for_is_not_looked_up(
    cache_backend, machines, reader, monkeypatch
):
    """Most of what a server answers is never replayed (a write, a page of the admin, a
    route that does not exist): the request is not made into a key for them."""
    made = []
    real = replay.request_key

    def request_key(environ):
        made.append(environ["PATH_INFO"])
        return real(environ)

    monkeypatch.setattr(replay, "request_key", request_key)
    served = token_client(reader, served=True)
    assert served.get("/api/no-such-route/", **JSON).status_code == 404
    assert made == []
    settle(served)  # (kept once answered from a settled request; looked up from then on)
    assert made[-1] == "/api/workstations/"


def test_what_is_kept_is_bounded_in_bytes_whatever_the_headers(
    cache_backend, machines, reader, resolved, monkeypatch
):
    """A client chooses its headers, and a request's head may be tens of kilobytes that nothing
    reads: each such request is a settled hit of its own, but answers are kept only within a
    budget of bytes, not by count alone."""
    served = token_client(reader, served=True)
    settle(served)
    padding = "x" * 60_000
    for n in range(3):
        assert served.get(LIST, **JSON, HTTP_X_PAD=f"{n}{padding}")["X-Cache"] == "HIT"
    assert not any(
        type(part) is tuple and part[0] == "HTTP_X_PAD" for key in replay._replays for part in key
    )
    assert replay._kept_bytes <= replay.MAX_KEPT_BYTES
    # Many requests of ordinary size: the budget holds, and the process forgets them all at
    # once when it is spent (as when the count is).
    monkeypatch.setattr(replay, "MAX_KEPT_BYTES", 64 * 1024)
    for n in range(40):
        served.get(LIST, **JSON, HTTP_X_PAD=f"{n}" + "y" * 2_000)
        served.get(LIST, **JSON, HTTP_X_PAD=f"{n}" + "y" * 2_000)
        assert replay._kept_bytes <= replay.MAX_KEPT_BYTES
    del resolved[:]
    assert served.get(LIST, **JSON)["X-Cache"] == "HIT"
