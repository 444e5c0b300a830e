"""Several gunicorn instances on one host: each has its own control socket, or none.

gunicorn's default control socket is one path per user: a second instance replaced the first
one's, and stopping either deleted it. ``XDG_RUNTIME_DIR`` points at the test's own folder, so
that even a configuration that fell back to the default could not reach another instance's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.performance.servers import Gunicorn, copy_database, migrated_site, site_env

START_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return migrated_site(tmp_path_factory.mktemp("control-site"), 1)


def start(site: dict[str, Any], tmp_path: Path, name: str, var: Path, **extra: str) -> Gunicorn:
    database = copy_database(site["database"], tmp_path / f"{name}.sqlite3")
    runtime = tmp_path / "runtime"
    runtime.mkdir(exist_ok=True)
    env = site_env(database, var, XDG_RUNTIME_DIR=str(runtime), **extra)
    server = Gunicorn(name, env, tmp_path)
    server.wait_until_ready(time.monotonic() + START_TIMEOUT)
    return server


def test_two_instances_sharing_a_var_dir_have_a_socket_each(site, tmp_path: Path):
    var = tmp_path / "var"
    first = start(site, tmp_path, "first", var)
    try:
        second = start(site, tmp_path, "second", var)
        try:
            sockets = {
                server.name: var.resolve() / f"gunicorn-127.0.0.1-{server.port}.ctl"
                for server in (first, second)
            }
            for server in (first, second):
                assert f"Control socket listening at {sockets[server.name]}" in server.log_text()
                assert sockets[server.name].is_socket()
            assert not (tmp_path / "runtime" / "gunicorn.ctl").exists()
        finally:
            second.stop()
        # Stopping one removes its own socket only.
        assert not sockets["second"].exists()
        assert sockets["first"].is_socket()
    finally:
        first.stop()
    assert not sockets["first"].exists()


def test_none_turns_the_control_socket_off(site, tmp_path: Path):
    var = tmp_path / "var"
    server = start(site, tmp_path, "quiet", var, GUNICORN_CONTROL_SOCKET="none")
    try:
        assert "Control socket listening" not in server.log_text()
        assert not list(var.glob("*.ctl"))
        assert not list((tmp_path / "runtime").iterdir())
    finally:
        server.stop()
