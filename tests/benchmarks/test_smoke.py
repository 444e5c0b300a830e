"""The benchmark's smoke run: every scenario on both shapes in a few seconds, so it cannot rot.

Throughput is not asserted (it is measured by ``make bench``); what is deterministic is: every
scenario ran without errors, the counts a warm hit and one round trip cost, the hit rates of the
loads that write against the X-Cache headers the client read, and every target's row.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run import REALISTIC_CONNECTIONS, SCENARIO_NAMES, TARGETS, services_available
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {
    "ceiling",
    "one_round_trip",
    "list_hit",
    "detail_hit",
    "list_304",
    "list_miss",
    "peer_cache_page",
    "peer_drf",
    "mixed",
    "realistic",
}


def _smoke(tmp_path_factory, *args: str) -> dict:
    if not shutil.which("wrk"):
        require_service("wrk", "the load generator is not installed (apt-get install wrk)")
    out = tmp_path_factory.mktemp("bench") / "results.json"
    env = {**os.environ, "BENCH_DIR": str(tmp_path_factory.mktemp("bench-work"))}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--output", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {"stdout": done.stdout, "data": json.loads(out.read_text())}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    return _smoke(tmp_path_factory)


def _hit_rate_terms_match_the_client(data: dict) -> None:
    """The cache's figures (every worker's, read once they stop moving) against the X-Cache
    headers the client read: the cache may count more only by the responses cut off when
    each run ended, at most one per connection."""
    rounds = data["args"]["rounds"]
    for result in data["results"]:
        if result["scenario"] not in {"mixed", "realistic"}:
            continue
        connections = (
            REALISTIC_CONNECTIONS
            if result["scenario"] == "realistic"
            else data["args"]["connections"]
        )
        assert result["client_hits"] + result["client_misses"] > 0, result
        assert 0 <= result["hits"] - result["client_hits"] <= rounds * connections, result
        assert 0 <= result["misses"] - result["client_misses"] <= rounds * connections, result
        total = result["hits"] + result["misses"]
        assert result["hit_rate"] == round(result["hits"] / total, 3), result


def test_every_scenario_ran_on_each_shape(smoke):
    assert set(SCENARIO_NAMES) == SCENARIOS
    shapes = {r["shape"] for r in smoke["data"]["results"]}
    if "production" not in shapes:
        require_service("PostgreSQL and Redis", "the production shape was skipped")
    for shape in shapes:
        ran = {r["scenario"] for r in smoke["data"]["results"] if r["shape"] == shape}
        assert ran == SCENARIOS, shape
    assert "| list warm hit / ceiling |" in smoke["stdout"]


def test_every_scenario_answers_without_errors(smoke):
    """The realistic load too: it asks only for pages that exist, as clients allowed to write."""
    for result in smoke["data"]["results"]:
        if result["scenario"] != "mixed":
            assert result["errors"] == 0, result
        assert result["median_rps"] > 0, result
        assert result["requests"] > 0, result
        for rounds in zip(result["p50_ms"], result["p95_ms"], result["p99_ms"], strict=True):
            assert 0 < rounds[0] <= rounds[1] <= rounds[2], result


def test_one_round_trip_makes_one_cache_call_and_no_query(smoke):
    for result in smoke["data"]["results"]:
        if result["scenario"] == "one_round_trip":
            assert (result["queries"], result["cache_calls"]) == (0, 1), result


def test_the_hit_rate_counts_every_workers_responses(smoke):
    _hit_rate_terms_match_the_client(smoke["data"])


def test_the_hit_rate_counts_no_other_scenarios_responses(tmp_path_factory):
    """Two workers, warm hits run just before the mixed load: the hit rate is the mixed load's
    own. (Read as soon as wrk stopped, the figures lacked what the worker not answering the
    statistics had not published yet: the warm hits' last second went to the mixed load, and
    its own last second went nowhere.)"""
    if not services_available()[0]:
        require_service("PostgreSQL and Redis", "the production shape cannot run")
    data = _smoke(tmp_path_factory, "--shapes", "production", "--scenarios", "list_hit,mixed")[
        "data"
    ]
    assert [r["scenario"] for r in data["results"]] == ["list_hit", "mixed"]
    _hit_rate_terms_match_the_client(data)


def test_the_targets_table_has_every_target_on_each_shape(smoke):
    shapes = {r["shape"] for r in smoke["data"]["results"]}
    for shape in shapes:
        rows = {row["title"]: row for row in smoke["data"]["targets"] if row["shape"] == shape}
        for target in TARGETS:
            row = rows[target.title]
            if shape not in target.wanted:
                assert row["met"] is None, row  # reported, no target
                continue
            verdict = "met" if row["met"] else "MISSED"
            assert row["met"] in (True, False), row
            line = f"| {target.title} | {row['shown']} | {row['wanted']} | {verdict} |"
            assert line in smoke["stdout"], line


def test_a_warm_hit_costs_no_more_than_two_cache_calls(smoke):
    for result in smoke["data"]["results"]:
        if result["scenario"] in {"list_hit", "detail_hit", "list_304"}:
            assert result["cache_calls"] <= 2, result


def test_the_miss_scenario_misses(smoke):
    """Each of its requests is new to the cache (miss.lua): each is computed and stored, in
    more round trips than a warm hit's two at most (its list's ids and rows may come from the
    cache: no query is needed)."""
    for result in smoke["data"]["results"]:
        if result["scenario"] == "list_miss":
            assert result["cache_calls"] > 2, result
