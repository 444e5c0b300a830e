"""The fast JSON renderer writes exactly DRF's bytes."""

from __future__ import annotations

import json
import tracemalloc
from decimal import Decimal

import pytest
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer

from project.renderers import FastJSONRenderer

SAMPLES = [
    {"count": 3, "next": None, "results": [{"a": "x", "b": 1.5, "c": True, "d": None}]},
    {"text": 'quote " backslash \\ newline \n tab \t control \x01 zoë 💻 \u2028 \u2029'},
    {"detail": ErrorDetail("Not found.", code="not_found")},
    {"nested": {"list": [1, [2, [3]], {"k": "v"}], "empty": {}, "none": []}},
    {"money": Decimal("12.50"), "big": 2**60, "neg": -7, "float": 0.25},
    [1, "two", None],
]


@pytest.mark.parametrize("data", SAMPLES)
def test_same_bytes_as_drf(data):
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


def test_floats_have_the_same_value_if_not_the_same_spelling():
    data = {"tiny": 1e-7, "rate": 0.6923, "whole": 3.0}
    fast, drf = FastJSONRenderer().render(data), JSONRenderer().render(data)
    assert json.loads(fast) == json.loads(drf)


def test_indented_rendering_is_drfs():
    data = {"a": [1, 2]}
    media = "application/json; indent=4"
    assert FastJSONRenderer().render(data, media) == JSONRenderer().render(data, media)


@pytest.mark.parametrize("size", [600, 30_000])
def test_a_rendering_holds_no_more_memory_than_its_bytes(size):
    """What is rendered is kept: a cached response, a row kept for cold pages, a copy in
    process memory. Its bytes hold their length, not the buffer they were written in."""
    renderer = FastJSONRenderer()
    tracemalloc.start()
    try:
        kept = [renderer.render({"row": "x" * size, "n": n}) for n in range(20)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held / len(kept) < 1.2 * len(kept[0]) + 1024
