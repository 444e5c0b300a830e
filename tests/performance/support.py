"""Helpers shared by the cache-core tests: configurations, requests, figures."""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterable
from typing import Any

import redis
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import HttpResponse
from django_redis.client.default import glob_escape
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance import cache as perf_cache
from performance.cache.backends import PageEntry
from performance.cache.keys import collection_scope, generation_key
from performance.replay import ReplayingApplication

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LOCMEM = "performance.cache.locmem.InstrumentedLocMemCache"
REDIS = "performance.cache.redis.InstrumentedRedisCache"
#: The serializer of project/settings.py (both shapes).
MSGPACK = "django_redis.serializers.msgpack.MSGPackSerializer"
#: For Django's own contract suite only: it stores functions, classes and model instances.
PICKLE = "django_redis.serializers.pickle.PickleSerializer"

LIST = "/api/workstations/"
SUMMARY = "/api/workstations/summary/"
LOCATIONS = "/api/locations/"
JSON = {"HTTP_ACCEPT": "application/json"}
NAMESPACE = "workstations"
#: The workstations' collections generation, under which ``store_page`` stores.
COLLECTIONS = generation_key(collection_scope(NAMESPACE))


def token_client(user: Any, *, suffix: str = "", served: bool = False) -> APIClient:
    """A client sending ``user``'s token (``suffix`` after it, as a client might); ``served``:
    through the application gunicorn serves (``ServedClient``)."""
    token, _ = Token.objects.get_or_create(user=user)
    client = ServedClient() if served else APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}{suffix}")
    return client


class ServedClient(APIClient):
    """DRF's test client, its requests answered by the WSGI application gunicorn serves
    (``project.wsgi``: Django's, with warm hits replayed, ``performance.replay``) rather than by
    the test client's handler, which calls Django's directly. The response is the status,
    headers and body the server was given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handler = _served


def _served(environ: dict[str, Any]) -> HttpResponse:
    sent: dict[str, Any] = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        sent["status"], sent["headers"] = status, headers

    # As the test client's handler does: the test's database connection is not closed at the
    # start and the end of each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        answer = _APPLICATION(environ, start_response)
        try:
            body = b"".join(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    response = HttpResponse(body, status=int(sent["status"].split(" ", 1)[0]))
    del response["Content-Type"]
    for name, value in sent["headers"]:
        response.headers[name] = value  # (the last of a repeated header: none here)
    response.wsgi_request = WSGIRequest(environ)  # (what the test client reads of it)
    return response


_APPLICATION = ReplayingApplication(WSGIHandler())


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def locmem_config(*, max_entries: int = 10_000) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": LOCMEM,
            "LOCATION": unique("test-locmem"),
            "TIMEOUT": 300,
            "KEY_PREFIX": unique("t"),
            "OPTIONS": {"MAX_ENTRIES": max_entries, "SERIALIZER": MSGPACK},
        }
    }


def redis_config(url: str, prefix: str) -> dict[str, Any]:
    """The production configuration of ``project/settings.py``, on the test database."""
    return {
        "default": {
            "BACKEND": REDIS,
            "LOCATION": url,
            "TIMEOUT": 300,
            "KEY_PREFIX": prefix,
            "OPTIONS": {
                "CLIENT_CLASS": "performance.cache.redis.InventoryRedisClient",
                "SOCKET_CONNECT_TIMEOUT": 0.25,
                # Roomier than production: twenty threads of a stampede test share the CPU.
                "SOCKET_TIMEOUT": 2.0,
                "SERIALIZER": MSGPACK,
            },
        }
    }


def delete_prefixed(client: redis.Redis, prefix: str) -> None:
    """Remove every key that starts with ``prefix`` (entries, every version, statistics)."""
    keys = list(client.scan_iter(match=glob_escape(prefix) + "*", count=1000))
    if keys:
        client.delete(*keys)


def get(client: APIClient, path: str = LIST, data: dict | None = None, **extra: Any) -> Any:
    """A JSON GET, as API consumers send it."""
    return client.get(path, data, **{**JSON, **extra})


def namespace_stats(namespace: str) -> dict[str, int]:
    """The public figures of one namespace (zeros when nothing was counted)."""
    row = perf_cache.stats(include_keys=False)["namespaces"].get(namespace, {})
    return {field: row.get(field, 0) for field in ("hits", "misses", "sets", "deletes", "time_us")}


def store_page(cache: Any, page: str, shows: list[str]) -> bool:
    """Store a workstations list page ``page`` showing the objects ``shows`` (``store_page``),
    unless the collections' generation moved from 7."""
    return cache.store_page(
        PageEntry(
            f"{NAMESPACE}:1.2.3:{page}",
            [b"{}", '"etag"', "application/json", None],
            300,
            unless_changed=(COLLECTIONS, 7),
            page=generation_key(f"{NAMESPACE}:page:{page}"),
            shows=shows,
        )
    )


def tracked_from(roots: Iterable[Any], known: Iterable[int] = ()) -> int:
    """How many objects the garbage collector tracks that ``roots`` reach, but those in
    ``known`` (ids) and what only they reach; types are not counted (they are there anyway)."""
    roots = list(roots)
    seen, count, todo = {*known, *map(id, roots)}, 0, roots
    while todo:
        thing = todo.pop()
        for part in gc.get_referents(thing):
            if id(part) in seen or not gc.is_tracked(part) or isinstance(part, type):
                continue
            seen.add(id(part))
            count += 1
            todo.append(part)
    return count
