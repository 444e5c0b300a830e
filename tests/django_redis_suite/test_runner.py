"""The runner's verdict: exactly the listed differences pass; a new one or a vanished one fails."""

from __future__ import annotations

from . import expected
from .runner import differences, report

CONFIGS = ["sqlite", "sqlite_json"]


def _outcome(outcome: str) -> dict[str, str]:
    return {"outcome": outcome, "detail": ""}


def _found(names: list[str]) -> dict[str, tuple[str, str, str]]:
    return {name: ("passed", "failed", "") for name in names}


def test_exactly_the_expected_differences_pass(capsys):
    assert report(_found(list(expected.expected_for(CONFIGS))), CONFIGS) == 0
    assert "NOT EXPECTED" not in capsys.readouterr().out


def test_a_new_difference_fails_the_run(capsys):
    found = _found([*expected.expected_for(CONFIGS), "test_backend.py::T::test_new[sqlite]"])
    assert report(found, CONFIGS) == 1
    assert "NOT EXPECTED: test_backend.py::T::test_new[sqlite]" in capsys.readouterr().out


def test_an_expected_difference_that_vanished_fails_the_run(capsys):
    listed = sorted(expected.expected_for(CONFIGS))
    assert report(_found(listed[1:]), CONFIGS) == 1
    assert listed[0] in capsys.readouterr().out


def test_differences_compare_outcomes_test_by_test():
    stock = {"a": _outcome("passed"), "b": _outcome("passed"), "c": _outcome("skipped")}
    ours = {"a": _outcome("passed"), "b": _outcome("failed"), "d": _outcome("passed")}
    assert set(differences(stock, ours)) == {"b", "c", "d"}
