"""Django's own cache backend contract, run against both instrumented backends.

The test classes below subclass the ones in ``tests/cache/tests.py`` of Django's source
distribution for the installed version (see ``django_suite``), so every test Django runs against
its built-in backends runs against ours, under the same names. The suite is imported while this
module is collected — the classes must exist to be subclassed — and the sdist is fetched once and
cached under ``var/``. Without it: skipped loudly locally, a collection error under CI=true.

Django's tests store arbitrary objects (functions, classes, model instances, sets, datetimes),
which the production serializer, MessagePack, refuses by design (docs/design.md, "Invariants",
4): the contract runs with django-redis's pickle serializer on both backends, and
``test_values`` proves that the production configuration stores plain data.
"""

from __future__ import annotations

import inspect
import unittest
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.db import connection
from django.test import modify_settings, override_settings
from django_redis.client.default import glob_escape

from tests.conftest import IN_CI

from . import django_suite
from .support import LOCMEM, PICKLE, TEST_REDIS_URL, redis_config, unique

try:
    suite = django_suite.load()
except django_suite.SuiteUnavailable as exc:
    _message = f"Django's cache test suite unavailable: {exc}"
    if IN_CI:
        pytest.fail(f"{_message} (CI=true: the package index is required)", pytrace=False)
    pytest.skip(f"!!! SKIPPED — {_message}", allow_module_level=True)


def _original(cls: type, name: str) -> Callable[..., Any]:
    """A Django test method without its decorators (``override_settings``, ``retry``)."""
    return inspect.unwrap(getattr(cls, name))


def _expected_failure(cls: type, name: str, reason: str) -> Callable[..., Any]:
    """Mark a Django test as failing on this backend by design, and say why."""
    method = getattr(cls, name)

    def test(self: Any) -> None:
        method(self)

    test.__name__ = name
    test.__doc__ = f"Expected to fail: {reason}"
    # unittest's own marker, not pytest's: some of these fail in subtests, which it counts once.
    return unittest.expectedFailure(test)


@pytest.fixture(scope="session")
def poll_table(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The table of Django's ``cache.Poll`` test model, which no migration creates."""
    with django_db_blocker.unblock():
        # A database kept by --reuse-db after an interrupted run may have it already.
        if suite.Poll._meta.db_table not in connection.introspection.table_names():
            with connection.schema_editor() as editor:
                editor.create_model(suite.Poll)
    yield
    with django_db_blocker.unblock(), connection.schema_editor() as editor:
        editor.delete_model(suite.Poll)


# Local memory ----------------------------------------------------------------------------------

LOCMEM_LOCATION = unique("django-contract")


def _locmem_caches(**params: Any) -> dict[str, Any]:
    """Django's aliases (default, prefix, v2, custom_key, cull, zero_cull) on our backend.

    They share one LOCATION, as Django's ``LocMemCacheTests`` expects, apart from the rest of the
    test run's caches, and store through pickle, as Django's tests need (see the module).
    """
    setting = suite.caches_setting_for_tests(BACKEND=LOCMEM, LOCATION=LOCMEM_LOCATION, **params)
    for alias in setting.values():
        alias["OPTIONS"] = {**alias.get("OPTIONS", {}), "SERIALIZER": PICKLE}
    return setting


# Django's LRU tests override CACHES with its own LocMemCache: the same, on ours.
_limit_locmem_entries = override_settings(CACHES=_locmem_caches(OPTIONS={"MAX_ENTRIES": 9}))


@pytest.mark.usefixtures("poll_table")
@modify_settings(INSTALLED_APPS={"append": django_suite.APP})
@override_settings(CACHES=_locmem_caches())
class InstrumentedLocMemCacheTests(suite.LocMemCacheTests):
    """Django's ``LocMemCacheTests`` (``BaseCacheTests`` and the locmem specifics), counted."""

    test_multiple_caches = override_settings(
        CACHES={
            alias: {
                "BACKEND": LOCMEM,
                "LOCATION": unique(f"django-contract-{alias}"),
                "OPTIONS": {"SERIALIZER": PICKLE},
            }
            for alias in ("default", "other")
        }
    )(_original(suite.LocMemCacheTests, "test_multiple_caches"))
    test_lru_get = suite.retry()(
        _limit_locmem_entries(_original(suite.LocMemCacheTests, "test_lru_get"))
    )
    test_lru_set = _limit_locmem_entries(_original(suite.LocMemCacheTests, "test_lru_set"))
    test_lru_incr = suite.retry()(
        _limit_locmem_entries(_original(suite.LocMemCacheTests, "test_lru_incr"))
    )


# Redis -------------------------------------------------------------------------------------------

REDIS_PREFIX = unique("wsinv-django-contract")


def _redis_caches() -> dict[str, Any]:
    """Django's aliases on our Redis backend, each alias's keys under this run's prefix.

    ``prefix`` gets its own prefix (Django's is fixed per process id, and would outlive the run);
    ``cull`` and ``zero_cull`` keep the connection options beside their ``MAX_ENTRIES``; every
    alias stores through pickle, as Django's tests need (see the module).
    """
    base = redis_config(TEST_REDIS_URL, REDIS_PREFIX)["default"]
    setting = suite.caches_setting_for_tests(base=base)
    setting["prefix"]["KEY_PREFIX"] = f"{REDIS_PREFIX}-prefix"
    for params in setting.values():
        params["OPTIONS"] = {**base["OPTIONS"], **params.get("OPTIONS", {}), "SERIALIZER": PICKLE}
    return setting


# What django-redis does differently from Django's built-in backends, by design: each one is a
# django-redis behaviour, not one of our mixin (which passes its answers through unchanged).
_NO_CULL = "django-redis ignores MAX_ENTRIES/CULL_FREQUENCY: Redis evicts by its own maxmemory"
_NO_KEY_WARNING = "django-redis never calls validate_key(): no CacheKeyWarning for memcached"
_SET_MANY_NONE = "django-redis set_many() answers None, not the list of keys that failed"
_DELETE_MANY_COUNT = (
    "django-redis delete_many() answers the number deleted (0), not None; "
    "performance.cache.generations relies on that count"
)
_VERSION_OF_NONE = "django-redis incr_version() takes a cached None for a missing key (ValueError)"
_REDIS_EXPECTED_FAILURES = {
    "test_cull": _NO_CULL,
    "test_zero_cull": _NO_CULL,
    "test_invalid_key_characters": _NO_KEY_WARNING,
    "test_invalid_key_length": _NO_KEY_WARNING,
    "test_invalid_with_version_key_length": _NO_KEY_WARNING,
    "test_set_many_returns_empty_list_on_success": _SET_MANY_NONE,
    "test_set_many_empty_data": _SET_MANY_NONE,
    "test_delete_many_no_keys": _DELETE_MANY_COUNT,
    "test_incr_version": _VERSION_OF_NONE,
    "test_decr_version": _VERSION_OF_NONE,
}


@pytest.mark.redis
@pytest.mark.usefixtures("redis_url", "poll_table")
@modify_settings(INSTALLED_APPS={"append": django_suite.APP})
@override_settings(CACHES=_redis_caches())
class InstrumentedRedisCacheTests(suite.BaseCacheTests, suite.TestCase):
    """Django's ``BaseCacheTests`` on django-redis, counted and behind the circuit breaker.

    Django's ``RedisCacheTests`` is for its own backend; what it adds are tests of that client's
    internals, so only the base contract runs here. What django-redis does differently by design
    is in ``_REDIS_EXPECTED_FAILURES``, each test an expected failure with its reason.
    """

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()
        finally:
            # clear() keeps to "<prefix>:*"; custom key functions and statistics live beside it.
            client = redis.Redis.from_url(TEST_REDIS_URL, socket_timeout=5)
            try:
                keys = list(client.scan_iter(match=f"*{glob_escape(REDIS_PREFIX)}*", count=1000))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()


for _name, _reason in _REDIS_EXPECTED_FAILURES.items():
    setattr(
        InstrumentedRedisCacheTests,
        _name,
        _expected_failure(suite.BaseCacheTests, _name, _reason),
    )
