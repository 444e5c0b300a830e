"""Sites for the coherence tests: a database of their own, gunicorn servers, commands beside them.

Each site is a copy of a migrated, seeded database (a SQLite file, or on the PostgreSQL pass of
``make test`` a PostgreSQL database created from a template and dropped after) with its own
servers and, where the scenario needs one, its own ``redis-server``. A module may share one site
between its tests (``make_module_site``) when each test changes only what is its own: its
workstation, its user and token. Nothing here touches the shared Redis or the suite's own test
database.

At the end of the session the figures every scenario recorded (``sampling.REPORT``) are written
to ``test-artifacts/coherence-report.json`` and printed (``-s``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import require_service
from tests.performance.servers import (
    GUNICORN,
    REDIS_SERVER,
    ROOT,
    Gunicorn,
    copy_database,
    manage,
    migrated_site,
    site_env,
)
from tests.performance.support import unique

from .sampling import BOUND, REPORT

REPORT_PATH = ROOT / "test-artifacts" / "coherence-report.json"
#: Workstations of the template, notes "v0". Each test edits one of its own (``pks[:6]``);
#: revocation tests read ``pks[6]``, write ``pks[7]`` and delete from ``pks[8:]``.
WORKSTATIONS = 18
#: Users with a token each, one per test that revokes one: superusers without a password.
USERS = [f"editor-{n}" for n in range(1, 8)]
USERS_SEED = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
User = get_user_model()
tokens = {}
for name in NAMES:
    user = User.objects.create(username=name, is_staff=True, is_superuser=True)
    tokens[name] = Token.objects.create(user=user).key
print(json.dumps({"tokens": tokens}))
"""
#: The database the suite runs on in this pass (``tests/run.sh``: SQLite, then PostgreSQL).
PASS_DATABASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRESQL = PASS_DATABASE_URL.startswith(("postgres://", "postgresql://"))


def require_processes(*, redis: bool = False) -> None:
    """Skip loudly (fail under CI=true) when a process the scenarios start is missing."""
    if not GUNICORN.exists():
        require_service("gunicorn", f"{GUNICORN} is missing")
    if redis and not REDIS_SERVER:
        require_service("redis-server", "the binary is not on PATH")


def _seed(directory: Path, database: Path | str | None = None) -> dict[str, Any]:
    site = migrated_site(directory, WORKSTATIONS, database)
    code = USERS_SEED.replace("NAMES", repr(USERS))
    result = manage(site_env(site["database"], directory / "var"), "shell", "-c", code)
    return {**site, **json.loads(result.stdout.strip().splitlines()[-1])}


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A migrated SQLite file: superuser ``root`` and the ``USERS``, each with a token, and
    ``WORKSTATIONS`` with notes "v0" (made once per session, copied for each site)."""
    require_processes()
    return _seed(tmp_path_factory.mktemp("coherence-site"))


# PostgreSQL --------------------------------------------------------------------------------


def _pg_url(name: str) -> str:
    parts = urlsplit(PASS_DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _pg_admin(statement: str) -> None:
    import psycopg

    url = PASS_DATABASE_URL.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(statement)


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The same site in a PostgreSQL database of its own, a template for each test's copy."""
    require_processes()
    name = f"coherence_tpl_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield {**_seed(tmp_path_factory.mktemp("coherence-pg"), _pg_url(name)), "name": name}
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# A site: one database, its servers, its commands ---------------------------------------------


@dataclass
class Site:
    """One test's database and the gunicorn servers on it; ``manage`` runs a command beside
    them (another process, as an operator's shell would be)."""

    directory: Path
    database: Path | str
    #: The token of ``root``, a superuser no test revokes.
    token: str
    #: The token of each of ``USERS``, by username.
    tokens: dict[str, str]
    pks: list[int]
    env: dict[str, str]
    servers: dict[str, Gunicorn] = field(default_factory=dict)

    @property
    def postgresql(self) -> bool:
        return isinstance(self.database, str)

    def start(self, name: str, *, port: int | None = None, **extra: str) -> Gunicorn:
        """A single-worker gunicorn on this site's database (``extra``: its own settings)."""
        server = Gunicorn(name, {**self.env, **extra}, self.directory, port=port)
        self.servers[name] = server
        return server

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + 30
        for server in self.servers.values():
            server.wait_until_ready(deadline)

    def manage(self, *args: str, check: bool = True, **extra: str) -> Any:
        return manage({**self.env, **extra}, *args, check=check)

    def shell(self, code: str, **extra: str) -> Any:
        """``manage.py shell -c code``: Django's ORM, from a process of its own."""
        return self.manage("shell", "-c", code, **extra)

    def sql(self, statement: str, params: tuple = ()) -> None:
        """One statement, committed, by another client of the database (not Django)."""
        if self.postgresql:
            import psycopg

            url = str(self.database).replace("postgres://", "postgresql://", 1)
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(statement.replace("?", "%s"), params)
            return
        connection = sqlite3.connect(self.database, timeout=20)
        try:
            with connection:  # commits
                connection.execute(statement, params)
        finally:
            connection.close()

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        if self.postgresql:
            import psycopg

            url = str(self.database).replace("postgres://", "postgresql://", 1)
            with psycopg.connect(url, autocommit=True) as connection:
                return connection.execute(statement.replace("?", "%s"), params).fetchall()
        connection = sqlite3.connect(self.database, timeout=20)
        try:
            return connection.execute(statement, params).fetchall()
        finally:
            connection.close()

    def logs(self) -> str:
        """The servers' logs from their first traceback on (else their last lines), to say why
        a request failed or a server did not use the cache."""
        parts = []
        for server in self.servers.values():
            text = server.log_text()
            if "Traceback" in text:
                parts.append(f"--- {server.name}:\n{text[text.index('Traceback') :][:3000]}")
            elif text.strip():
                parts.append(f"--- {server.name} (last lines):\n{text[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for server in self.servers.values():
            server.terminate()  # all at once: each takes a moment to shut down
        for server in self.servers.values():
            server.stop()


class Sites:
    """Makes sites from the template; ``close`` stops their servers and drops their databases."""

    def __init__(self, request: pytest.FixtureRequest, directory: Path) -> None:
        self.request = request
        self.directory = directory
        self.made: list[Site] = []
        self.dropped: list[str] = []

    def make(self, database: str = "sqlite", **extra: str) -> Site:
        """A fresh copy of the template; ``database="pass"`` follows the suite's pass
        (PostgreSQL when ``DATABASE_URL`` names it, SQLite otherwise); ``extra``: settings."""
        directory = self.directory / f"site{len(self.made)}"
        directory.mkdir(parents=True)
        if database == "pass" and ON_POSTGRESQL:
            template = self.request.getfixturevalue("postgres_template")
            name = f"coherence_{uuid.uuid4().hex[:12]}"
            _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template["name"]}"')
            self.dropped.append(name)
            target: Path | str = _pg_url(name)
        else:
            template = self.request.getfixturevalue("sqlite_template")
            target = copy_database(template["database"], directory / "inventory.sqlite3")
        env = site_env(
            target,
            directory / "var",
            CACHE_KEY_PREFIX=unique("wsinv-coherence"),
            REQUEST_LOG_LEVEL="WARNING",
            **extra,
        )
        site = Site(
            directory=directory,
            database=target,
            token=template["token"],
            tokens=dict(template["tokens"]),
            pks=list(template["pks"]),
            env=env,
        )
        self.made.append(site)
        return site

    def close(self) -> None:
        for site in self.made:
            site.stop()
        for name in self.dropped:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Site]]:
    """``make_site(database="sqlite" | "pass", **settings)``: a site for this test only."""
    sites = Sites(request, tmp_path)
    try:
        yield sites.make
    finally:
        sites.close()


@pytest.fixture(scope="module")
def make_module_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Site]]:
    """``make_module_site(...)``: a site shared by the tests of a module, each changing only
    what is its own (a workstation, a user)."""
    sites = Sites(request, tmp_path_factory.mktemp("coherence-shared"))
    try:
        yield sites.make
    finally:
        sites.close()


# The report --------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _coherence_report() -> Iterator[None]:
    yield
    if not REPORT:
        return
    label = "postgresql" if ON_POSTGRESQL else "sqlite"
    previous: dict[str, Any] = {}
    if REPORT_PATH.exists():
        try:
            previous = json.loads(REPORT_PATH.read_text())
        except ValueError:
            previous = {}
    # One section per pass of the suite: this pass replaces its own, keeps the other's.
    previous[f"{label} pass"] = dict(sorted(REPORT.items()))
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")
    print(f"\n\nCoherence, {label} pass (bound {BOUND:g} s) -> {REPORT_PATH}")
    header = (
        f"{'scenario':<64}{'reads':>7}{'stale':>7}{'after bound':>13}{'longest s':>11}{'errors':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, row in sorted(REPORT.items()):
        longest = f"{row['longest_staleness_s']:.3f}" + ("+" if row["still_stale_at_end"] else "")
        print(
            f"{name:<64}{row['reads']:>7}{row['stale_reads']:>7}"
            f"{row['stale_reads_after_bound']:>13}{longest:>11}{row['errors']:>8}"
        )
    print("(+: still stale when sampling stopped; the real staleness is longer)")
