"""``make run`` installs what the service needs to run; ``make test`` adds the test tools.

Read from make's own plan (``make -n -B``: every recipe it would run, nothing run), so the test
holds whatever the recipes' details become.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(target: str) -> list[str]:
    result = subprocess.run(
        ["make", "-n", "-B", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()


def installs(lines: list[str]) -> list[str]:
    return [line for line in lines if " pip install " in line and "--upgrade pip" not in line]


def test_make_run_installs_the_runtime_dependencies_only():
    lines = planned("run")
    assert installs(lines), lines
    wanted = ("-e .", "-e '.[fast]'")
    assert all(line.rstrip(" \\").endswith(wanted) for line in installs(lines)), installs(lines)
    assert not any("[dev]" in line for line in lines)


def test_make_run_goes_on_when_the_c_request_parser_cannot_be_built():
    """gunicorn_h1c (the ``fast`` extra) is built from source: where it cannot be, make says so
    and the service runs, gunicorn parsing requests in Python."""
    lines = planned("run")
    at = next(n for n, line in enumerate(lines) if "'.[fast]'" in line)
    assert lines[at].rstrip().endswith("\\") and lines[at + 1].lstrip().startswith("|| echo")


def test_make_test_adds_the_test_tools():
    assert any(line.rstrip().endswith("-e '.[dev]'") for line in installs(planned("test")))


def test_the_test_tools_are_not_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for tool in ("pytest", "playwright", "schemathesis", "ruff", "openapi-python-client"):
        assert tool not in runtime
        assert any(tool in dep for dep in project["optional-dependencies"]["dev"])
