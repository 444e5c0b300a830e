"""The benchmark's smoke run: every scenario on both shapes in a few seconds, so it cannot rot.

Throughput is not asserted (it is measured by ``make bench``); what is deterministic is: every
scenario ran without errors, and the counts a warm hit costs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {
    "ceiling",
    "list_hit",
    "detail_hit",
    "list_304",
    "list_miss",
    "peer_cache_page",
    "peer_drf",
    "mixed",
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    if not shutil.which("wrk"):
        require_service("wrk", "the load generator is not installed (apt-get install wrk)")
    out = tmp_path_factory.mktemp("bench") / "results.json"
    env = {**os.environ, "BENCH_DIR": str(tmp_path_factory.mktemp("bench-work"))}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--output", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {"stdout": done.stdout, "data": json.loads(out.read_text())}


def test_every_scenario_ran_on_each_shape(smoke):
    shapes = {r["shape"] for r in smoke["data"]["results"]}
    if "production" not in shapes:
        require_service("PostgreSQL and Redis", "the production shape was skipped")
    for shape in shapes:
        ran = {r["scenario"] for r in smoke["data"]["results"] if r["shape"] == shape}
        assert ran == SCENARIOS, shape
    assert "| list warm hit / ceiling |" in smoke["stdout"]


def test_reads_answer_without_errors(smoke):
    for result in smoke["data"]["results"]:
        if result["scenario"] != "mixed":
            assert result["errors"] == 0, result
            assert result["median_rps"] > 0, result


def test_a_warm_hit_costs_no_more_than_two_cache_calls(smoke):
    for result in smoke["data"]["results"]:
        if result["scenario"] in {"list_hit", "detail_hit", "list_304"}:
            assert result["cache_calls"] <= 2, result


def test_the_miss_scenario_misses(smoke):
    """Each of its requests is new to the cache (miss.lua), so each runs the list's query."""
    for result in smoke["data"]["results"]:
        if result["scenario"] == "list_miss":
            assert result["queries"] >= 1, result
