"""A pytest plugin standing in for django-redis's ``tests/conftest.py`` in one run of its suite.

Upstream's conftest needs pytest-xdist (for its scheduler) and switches settings modules inside
one process, which Django does not support; here each run is one process with one settings
module (``settings``), and this plugin gives the suite the fixtures it expects: ``settings``
(upstream's own wrapper), ``cache`` and the ``cache_settings`` parameter, named after the
configuration so that test ids match upstream's. Each outcome is written, as JSON, where
``DJANGO_REDIS_SUITE_REPORT`` says.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .source import PACKAGE

CONFIG = os.environ.get("DJANGO_REDIS_SUITE_CONFIG", "sqlite")
_outcomes: dict[str, dict[str, str]] = {}


def pytest_configure(config: pytest.Config) -> None:
    # As upstream's conftest: its tests name their own modules top-level ("test_client....").
    sys.path.insert(0, str(Path(config.rootpath) / PACKAGE))
    import django

    django.setup()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cache" in metafunc.fixturenames or "session" in metafunc.fixturenames:
        metafunc.parametrize("cache_settings", [CONFIG])


@pytest.fixture
def settings() -> Iterator[Any]:
    """Upstream's settings wrapper, which restores what a test changed."""
    from settings_wrapper import SettingsWrapper

    wrapper = SettingsWrapper()
    yield wrapper
    wrapper.finalize()


@pytest.fixture
def cache(cache_settings: str) -> Iterator[Any]:
    from django.core.cache import cache as default_cache

    yield default_cache
    default_cache.clear()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = report.nodeid.removeprefix(f"{PACKAGE}/")
    if getattr(report, "wasxfail", None) is not None:
        outcome = "xfailed" if report.skipped else "xpassed"
    elif report.when == "call":
        outcome = report.outcome
    elif report.failed:
        outcome = "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        return  # a setup or teardown that passed says nothing
    if _outcomes.get(name, {}).get("outcome") in {"failed", "error"}:
        return  # a teardown does not hide the call's failure
    detail = ""
    if report.failed:
        detail = _first_line(report.longreprtext)
    elif report.skipped and isinstance(report.longrepr, tuple):
        detail = str(report.longrepr[2])
    _outcomes[name] = {"outcome": outcome, "detail": detail}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("DJANGO_REDIS_SUITE_REPORT")
    if path:
        Path(path).write_text(json.dumps(_outcomes, indent=1, sort_keys=True))


def _first_line(text: str) -> str:
    """The line of a failure that says what went wrong (pytest's ``E`` lines)."""
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    lines = errors or text.strip().splitlines()[-1:] or [""]
    return lines[0][:300]
