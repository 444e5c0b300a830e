"""The cache management commands: thin over the audited services, CommandError on bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from performance import cache as perf_cache
from performance.models import CacheAction
from tests.factories import LocationFactory, WorkstationFactory

from .support import LIST, LOCATIONS, get

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, **options) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(*args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


def entries(namespace: str) -> list[str]:
    return sorted(perf_cache.backend().logical_keys(f"{namespace}:*"))


@pytest.fixture
def inventory(db):
    location = LocationFactory(name="Lab")
    return [WorkstationFactory(hostname=f"ws-{n}", location=location) for n in range(3)]


@pytest.fixture
def filled(redis_cache, reader_client, inventory) -> dict[str, list[str]]:
    """Entries in a cache the commands share with the servers (Redis): there they act."""
    return fill(reader_client)


@pytest.fixture
def filled_locally(locmem_cache, reader_client, inventory) -> dict[str, list[str]]:
    """Entries in this process's local memory, standing for the server's: a command's process
    has a local-memory cache of its own, which is not the server's."""
    return fill(reader_client)


def fill(reader_client) -> dict[str, list[str]]:
    for path in (LIST, f"{LIST}?ordering=-hostname", LOCATIONS):
        assert get(reader_client, path).headers["X-Cache"] == "MISS"
    keys = {"workstations": entries("workstations"), "locations": entries("locations")}
    assert (len(keys["workstations"]), len(keys["locations"])) == (2, 1)
    return keys


@pytest.fixture
def no_tty(monkeypatch):
    """stdin as under cron or CI: not a terminal, nobody to answer."""
    monkeypatch.setattr(sys, "stdin", io.StringIO())


# cache_stats ---------------------------------------------------------------------------------


def test_cache_stats_prints_namespaces_and_scope(filled, reader_client):
    get(reader_client, LIST)  # a hit

    out, _ = run("cache_stats")

    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["workstations"][1:3] == ["1", "2"]  # hits, misses
    assert lines["locations"][1:3] == ["0", "1"]
    assert "fleet-wide" in out


def test_cache_stats_json_is_parseable(filled):
    out, _ = run("cache_stats", "--json")

    stats = json.loads(out)
    assert {"workstations", "locations"} <= set(stats["namespaces"])
    assert stats["namespaces"]["workstations"]["misses"] == 2
    assert stats["namespaces"]["workstations"]["keys"] == 2
    assert stats["scope"] == "fleet"


# cache_clear ---------------------------------------------------------------------------------


def test_cache_clear_without_yes_and_without_a_terminal_refuses(filled, no_tty):
    with pytest.raises(CommandError, match="--yes"):
        run("cache_clear")

    assert entries("workstations") == filled["workstations"]
    assert entries("locations") == filled["locations"]
    assert not CacheAction.objects.exists()


def test_cache_clear_with_yes_clears_and_audits(filled, reader_client):
    out, _ = run("cache_clear", "--yes")

    assert "Cleared the cache" in out
    assert entries("workstations") == entries("locations") == []
    assert get(reader_client, LIST).headers["X-Cache"] == "MISS"
    action = CacheAction.objects.get()
    assert (action.kind, action.source, action.user, action.remote_addr) == (
        "clear",
        "command",
        None,
        None,
    )
    assert action.keys_affected >= 3


class Terminal(io.StringIO):
    """stdin as an operator's terminal, with the answer they type."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "cleared"), [("y\n", True), ("yes\n", True), ("n\n", False)])
def test_cache_clear_asks_at_a_terminal(filled, monkeypatch, answer, cleared):
    monkeypatch.setattr(sys, "stdin", Terminal(answer))

    if cleared:
        run("cache_clear")
    else:
        with pytest.raises(CommandError, match="nothing was cleared"):
            run("cache_clear")

    assert (entries("workstations") == []) is cleared
    assert CacheAction.objects.filter(kind="clear").exists() is cleared


@pytest.mark.parametrize("flag", ["--noinput", "--no-input"])
def test_cache_clear_noinput_at_a_terminal_refuses_without_asking(filled, monkeypatch, flag):
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))

    with pytest.raises(CommandError, match="--yes"):
        run("cache_clear", flag)

    assert sys.stdin.read() == "y\n"  # nobody was asked
    assert entries("workstations") == filled["workstations"]
    assert not CacheAction.objects.exists()


# cache_invalidate ----------------------------------------------------------------------------


def test_invalidate_dry_run_counts_and_deletes_nothing(filled):
    out, _ = run("cache_invalidate", "workstations:*", "--dry-run")

    assert "Dry run: 2 key(s)" in out
    assert entries("workstations") == filled["workstations"]
    action = CacheAction.objects.get()
    assert (action.kind, action.dry_run, action.keys_affected) == ("invalidate_pattern", True, 2)


def test_invalidate_pattern_deletes_matching_keys_only(filled):
    out, _ = run("cache_invalidate", "workstations:*")

    assert "Removed 2 key(s)" in out
    assert entries("workstations") == []
    assert entries("locations") == filled["locations"]
    action = CacheAction.objects.get()
    assert (action.source, action.target, action.dry_run) == ("command", "workstations:*", False)


def test_invalidate_namespace_bumps_its_generation(filled, reader_client):
    old = perf_cache.get_generation("workstations")

    out, _ = run("cache_invalidate", "--namespace", "workstations")

    assert perf_cache.get_generation("workstations") > old
    assert f"generation {perf_cache.get_generation('workstations')}" in out
    assert get(reader_client, LIST).headers["X-Cache"] == "MISS"
    assert get(reader_client, LOCATIONS).headers["X-Cache"] == "HIT"
    assert CacheAction.objects.get().kind == "invalidate_namespace"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["*"], "matches every key"),
        (["**"], "matches every key"),
        ([""], "empty"),
        (["workstations:\n*"], "control characters"),
        (["--namespace", "nope"], "Unknown namespace"),
        (["workstations:*", "--namespace", "workstations"], "either"),
        ([], "either"),
        (["--namespace", "workstations", "--dry-run"], "patterns only"),
    ],
)
def test_invalidate_bad_input_is_a_command_error(filled, args, message):
    generation = perf_cache.get_generation("workstations")

    with pytest.raises(CommandError, match=message):
        run("cache_invalidate", *args)

    assert entries("workstations") == filled["workstations"]
    assert perf_cache.get_generation("workstations") == generation
    assert not CacheAction.objects.exists()


def test_manage_py_exits_non_zero_on_a_bad_pattern(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"DJANGO_SETTINGS_MODULE": "project.settings", "VAR_DIR": str(tmp_path)})

    result = subprocess.run(
        [sys.executable, "manage.py", "cache_invalidate", "*"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "matches every key" in result.stderr
    assert "Traceback" not in result.stderr


# cache_warm ----------------------------------------------------------------------------------


def test_cache_warm_fills_entries_for_each_host_and_audits(
    redis_cache, settings, inventory, reader_client
):
    hosts = ["inventory.example.com", "localhost:8000"]
    settings.CACHE_WARM_HOSTS = hosts
    settings.ALLOWED_HOSTS = ["inventory.example.com", "localhost", "testserver"]

    out, _ = run("cache_warm")

    # Per host: three workstation lists and the summary, one location list.
    assert "workstations: 8 entries" in out
    assert "locations: 2 entries" in out
    assert "Warmed 10 entries." in out
    for host in hosts:
        for path in (LIST, f"{LIST}?status=deployed", LOCATIONS):
            response = get(reader_client, path, HTTP_HOST=host)
            assert response.headers["X-Cache"] == "HIT", (host, path)
            assert response.status_code == 200
    assert get(reader_client, LIST).headers["X-Cache"] == "MISS"  # testserver was not warmed
    action = CacheAction.objects.get()
    assert (action.kind, action.source, action.user, action.keys_affected) == (
        "warm",
        "command",
        None,
        10,
    )


# The embedded shape: the cache lives in the server's memory ---------------------------------

EMBEDDED_ACTIONS = [
    (["cache_clear", "--yes"], "clear the cache"),
    (["cache_warm"], "warm the cache"),
    (["cache_stats"], "read the server's cache statistics"),
    (["cache_invalidate", "workstations:*"], "invalidate by pattern"),
    (["cache_invalidate", "workstations:*", "--dry-run"], "invalidate by pattern"),
    (["cache_replay"], "apply changes to the cache"),
]


@pytest.mark.parametrize(("args", "what"), EMBEDDED_ACTIONS, ids=lambda v: " ".join(v))
def test_with_the_cache_in_the_servers_memory_a_command_refuses_and_says_where(
    filled_locally, args, what
):
    """A command's process has a local-memory cache of its own: acting on it and printing
    success would change nothing on the server, so the command refuses, says where to act,
    and records nothing."""
    generation = perf_cache.get_generation("workstations")

    with pytest.raises(CommandError) as refused:
        run(*args)

    assert f"Cannot {what}" in str(refused.value)
    assert "/admin/performance/cache/" in str(refused.value)
    assert "/api/performance/" in str(refused.value)
    assert entries("workstations") == filled_locally["workstations"]
    assert perf_cache.get_generation("workstations") == generation
    assert not CacheAction.objects.exists()


def test_with_the_cache_in_the_servers_memory_a_namespace_invalidation_goes_through_the_database(
    locmem_cache, inventory, reader_client
):
    """The database is shared with the server: the invalidation is counted there, and the
    server's sweep applies it like any other change."""
    assert perf_cache.sync.sync()  # the server has applied every change made so far
    fill(reader_client)
    before = perf_cache.changes.versions(["workstations"])["workstations"]

    out, _ = run("cache_invalidate", "--namespace", "workstations")

    assert "Recorded the invalidation of namespace 'workstations' in the database" in out
    assert perf_cache.changes.versions(["workstations"])["workstations"] == before + 1
    action = CacheAction.objects.get()
    assert (action.kind, action.target, action.succeeded) == (
        "invalidate_namespace",
        "workstations",
        True,
    )
    assert "Recorded in the database" in action.message
    # Nothing is served differently until the server's sweep runs, which then applies it.
    assert get(reader_client, LIST).headers["X-Cache"] == "HIT"
    assert perf_cache.sync.sync()
    assert get(reader_client, LIST).headers["X-Cache"] == "MISS"
    assert get(reader_client, LOCATIONS).headers["X-Cache"] == "HIT"
