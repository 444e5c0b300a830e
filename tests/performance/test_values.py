"""What the cache stores is plain data that nothing executes when it is read (docs/design.md,
"Invariants", 4): every value the service stores survives the serializer's round trip on both
backends alike, anything else fails loudly when stored, and what another program wrote under
this service's keys — a pickle included — is a miss."""

from __future__ import annotations

import datetime
import decimal
import json
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django_redis.serializers.msgpack import MSGPackSerializer

from performance import cache as perf_cache
from performance.cache import generations
from performance.cache.api import _history_hit
from performance.cache.rates import RateCheck
from tests.factories import WorkstationFactory

from .support import LIST, MSGPACK, delete_prefixed, get, unique

ROOT = Path(__file__).resolve().parents[2]


# The production configuration -------------------------------------------------------------------

PRODUCTION_PROBE = """
import json
import django
django.setup()
from django.conf import settings
from django.core.cache import caches
cache = caches["default"]
serializer = cache.client._serializer if hasattr(cache, "client") else cache._serializer
raw = None
if settings.REDIS_URL:
    cache.set("_health:serializer", {"body": b"\\x00bytes", "n": [1, 2.5, None, True]})
    raw = cache.client.redis().get(cache.client.make_key("_health:serializer")).hex()
    cache.delete("_health:serializer")
print(json.dumps({
    "backend": type(cache).__name__,
    "option": settings.CACHES["default"]["OPTIONS"]["SERIALIZER"],
    "serializer": type(serializer).__module__ + "." + type(serializer).__name__,
    "raw": raw,
}))
"""


def _probe_settings(tmp_path: Path, **env: str) -> dict:
    """What ``project/settings.py`` configures, in a process of its own (it reads the
    environment when imported)."""
    environment = {
        k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DJANGO_ENV", "DATABASE_URL"}
    }
    environment.update(DJANGO_SETTINGS_MODULE="project.settings", VAR_DIR=str(tmp_path), **env)
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.redis
def test_production_stores_messagepack_on_redis(redis_url, redis_client, tmp_path):
    prefix = unique("wsinv-serializer")
    try:
        probe = _probe_settings(tmp_path, REDIS_URL=redis_url, CACHE_KEY_PREFIX=prefix)
    finally:
        delete_prefixed(redis_client, prefix)
    assert probe["backend"] == "InstrumentedRedisCache"
    assert probe["option"] == probe["serializer"] == MSGPACK
    raw = bytes.fromhex(probe["raw"])
    assert msgpack.unpackb(raw) == {"body": b"\x00bytes", "n": [1, 2.5, None, True]}


def test_the_embedded_shape_stores_through_the_same_serializer(tmp_path):
    probe = _probe_settings(tmp_path)
    assert probe["backend"] == "InstrumentedLocMemCache"
    assert probe["option"] == probe["serializer"] == MSGPACK


@pytest.mark.redis
def test_a_redis_cache_configured_without_a_serializer_does_not_pickle(redis_url, redis_prefix):
    setting = {
        "default": {
            "BACKEND": "performance.cache.redis.InstrumentedRedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": redis_prefix,
        }
    }
    with override_settings(CACHES=setting):
        assert isinstance(perf_cache.backend().client._serializer, MSGPackSerializer)


# Every value the service stores ----------------------------------------------------------------


def test_a_response_entry_comes_back_as_a_list_that_unpacks(cache_backend):
    entry = (b'{"count": 0}\xff', '"abc"', "application/json", 1_796_000_000.5)
    cache_backend.set("workstations:1:entry", entry)
    stored = cache_backend.get("workstations:1:entry")
    assert type(stored) is list  # on locmem too: what works there works on Redis
    body, etag, content_type, expires_at = stored
    assert (body, etag, content_type, expires_at) == entry


@pytest.mark.parametrize(
    "value",
    [0, 12_345, None, [], "text", {"count": 3, "rows": [{"id": 1, "name": "a"}], "ok": True}],
)
def test_remembered_values_come_back_as_computed(cache_backend, value):
    perf_cache.register_namespace("values")
    computed = []

    def compute():
        computed.append(1)
        return value

    assert perf_cache.remember("values", ("v",), compute) == value
    assert perf_cache.remember("values", ("v",), compute) == value
    assert computed == [1]


def test_a_cached_function_keeps_its_result(cache_backend):
    perf_cache.register_namespace("values")
    calls = []

    @perf_cache.cached("values")
    def summary(kind: str) -> dict:
        calls.append(kind)
        return {"kind": kind, "counts": [1, 2, 3]}

    assert summary("a") == summary("a") == {"kind": "a", "counts": [1, 2, 3]}
    assert calls == ["a"]


@pytest.mark.django_db
def test_a_paginated_list_keeps_its_count(cache_backend, api):
    WorkstationFactory.create_batch(3)
    assert get(api, LIST).json()["count"] == 3
    assert get(api, LIST + "?page=1&ordering=hostname").json()["count"] == 3


def test_a_throttle_history_survives_the_trip(cache_backend):
    """DRF's own way of keeping a history (``api._history_hit``): a list of timestamps."""
    checks = [RateCheck("throttle:user:1", 3, 60.0, 1000.0 + n) for n in range(4)]
    verdicts = [_history_hit(cache_backend, check) for check in checks]
    assert [verdict.allowed for verdict in verdicts] == [True, True, True, False]
    assert cache_backend.get("throttle:user:1") == [1002.0, 1001.0, 1000.0]


def test_generations_are_numbers(cache_backend):
    first = generations.get_generation("values")
    assert type(first) is int
    bumped = generations.bump_generation("values")
    assert type(bumped) is int and bumped > first
    assert generations.get_generation("values") == bumped


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        decimal.Decimal("1.5"),
        {"a", "b"},
        object(),
        "a model instance",
        ["nested", {"when": datetime.date(2024, 1, 1)}],
    ],
    ids=["datetime", "decimal", "set", "object", "model", "nested date"],
)
def test_a_value_that_is_not_plain_data_fails_loudly(cache_backend, value, reader):
    if value == "a model instance":
        value = get_user_model().objects.get(pk=reader.pk)
    with pytest.raises(TypeError):
        cache_backend.set("values:wrong", value)
    assert cache_backend.get("values:wrong") is None


def test_a_value_that_would_not_come_back_fails_when_stored_on_locmem(locmem_cache):
    """A dict whose keys are not strings is refused when read (MessagePack's strict map keys),
    which on Redis is a miss on every read: locmem, where most tests run, refuses it at once."""
    with pytest.raises(ValueError, match="map key"):
        locmem_cache.set("values:int-keys", {1: "one"})


# What another program wrote ------------------------------------------------------------------


class _Touch:
    """Unpickled, runs a shell command that creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {shlex.quote(str(self.path))}",))


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_pickle_under_this_services_keys_is_a_miss_and_never_runs(
    redis_cache, redis_client, reader_client, tmp_path
):
    control, marker = tmp_path / "control", tmp_path / "marker"
    # The payload is live: unpickled anywhere, it creates its file.
    subprocess.run(
        [sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
        input=pickle.dumps(_Touch(control)),
        check=True,
        timeout=60,
    )
    assert control.exists()

    WorkstationFactory.create_batch(3)
    assert get(reader_client).headers["X-Cache"] == "MISS"
    assert get(reader_client).headers["X-Cache"] == "HIT"
    keys = list(redis_client.scan_iter(match=redis_cache.client.pattern("*"), count=1000))
    namespaces = {key.split(b":")[2] for key in keys}
    assert {b"auth", b"workstations", b"_gen", b"_memo"} <= namespaces
    payload = pickle.dumps(_Touch(marker))
    for key in keys:  # every entry, token lookup, count and generation of this service
        redis_client.delete(key)
        redis_client.set(key, payload, ex=60)
    # As a new process: nothing remembered in memory.
    redis_cache.state.tokens.clear()
    redis_cache.hot.clear()

    response = get(reader_client)
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "MISS"
    assert response.json()["count"] == 3
    # The notes of which pages show which workstations were overwritten too: the first page
    # computed since drops every page (``store_page``); the next one is kept.
    outcomes = [get(reader_client).headers["X-Cache"] for _ in range(2)]
    assert outcomes[-1] == "HIT", outcomes
    assert not marker.exists()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "foreign",
    [{"not": "ours"}, [b"body", "etag"], "a string", [b"body", 1, "application/json"]],
    ids=["a map", "two parts", "a string", "an ETag not a string"],
)
def test_messagepack_of_another_shape_under_an_entry_is_a_miss(
    redis_cache, redis_client, reader_client, foreign
):
    """Plain data another program wrote decodes, but is not a response: a miss, not a 500."""
    WorkstationFactory.create_batch(3)
    assert get(reader_client).headers["X-Cache"] == "MISS"
    match = redis_cache.client.pattern("workstations:*")
    [key] = [key for key in redis_client.scan_iter(match=match, count=1000)]
    redis_client.set(key, msgpack.packb(foreign), ex=60)
    redis_cache.hot.clear()
    response = get(reader_client)
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "MISS"
    assert response.json()["count"] == 3
