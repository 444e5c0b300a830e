"""A gunicorn worker sets the application it loaded aside from the garbage collector, and
parses requests in C.

A full collection holds every thread of the worker for as long as it takes to look at the
objects it tracks. ``post_worker_init`` freezes what the application loaded (``gc.freeze()``),
but Django imports the URLconf — and with it the views, serializers, filters and DRF — on the
first request: those objects were left to every full collection the worker made. The hook runs
here as gunicorn runs it, in a process of its own, after the WSGI application is loaded.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.performance.servers import ROOT, copy_database, migrated_site, site_env

WORKER = """
import gc, json, logging, runpy

from project.wsgi import application  # what gunicorn loads before post_worker_init

hooks = runpy.run_path("project/gunicorn.conf.py")


class Worker:  # what the hook asks of gunicorn's worker
    log = logging.getLogger("gunicorn.error")


hooks["post_worker_init"](Worker())

from drf_spectacular.views import SpectacularAPIView
from project.urls import urlpatterns
from workstations.api.views import WorkstationViewSet

tracked = {id(o) for o in gc.get_objects()}
loaded = {
    "the URLconf's patterns": urlpatterns,
    "the workstations' views": WorkstationViewSet,
    "the schema's view": SpectacularAPIView,
}
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "tracked": [name for name, thing in loaded.items() if id(thing) in tracked],
}))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return migrated_site(tmp_path_factory.mktemp("worker-site"), 1)


def test_the_views_and_serializers_are_frozen_with_the_rest_of_the_application(
    site, tmp_path: Path
):
    database = copy_database(site["database"], tmp_path / "worker.sqlite3")
    env = site_env(database, tmp_path / "var", CACHE_SWEEP_INTERVAL="60")
    done = subprocess.run(
        [sys.executable, "-c", WORKER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["frozen"] > 0
    # Loaded with the URLconf before the freeze, not by the first request after it (the
    # URLconf brings some 8,000 objects: the schema's views, the health checks' and the
    # console's, dnspython).
    assert seen["tracked"] == []


PARSER = """
import json, runpy

from gunicorn.config import Config
from gunicorn.http import message

cfg = Config()
for name, value in runpy.run_path("project/gunicorn.conf.py").items():
    if name in cfg.settings:
        cfg.set(name, value)
print(json.dumps({"fast": message._check_fast_parser(cfg)}))
"""


def test_request_heads_are_parsed_by_gunicorn_s_c_parser(site, tmp_path: Path):
    """gunicorn parses a request's head with gunicorn_h1c when it is installed (``http_parser``
    ``auto``), and in Python otherwise: a fifth of what a worker did for a warm request. make
    installs it where it can be built (the ``fast`` extra)."""
    if importlib.util.find_spec("gunicorn_h1c") is None:
        require_service("gunicorn_h1c", "it could not be built here (no C compiler?)")
    database = copy_database(site["database"], tmp_path / "parser.sqlite3")
    done = subprocess.run(
        [sys.executable, "-c", PARSER],
        cwd=ROOT,
        env=site_env(database, tmp_path / "var"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"fast": True}
