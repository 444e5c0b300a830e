"""One log line per request, with a request id the client can quote and nothing secret in it."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from pythonjsonlogger.json import JsonFormatter

from tests.factories import LocationFactory, WorkstationFactory

from .support import LIST, get

pytestmark = pytest.mark.django_db

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's


@pytest.fixture
def inventory(db):
    return [WorkstationFactory(hostname=f"ws-{n}", location=LocationFactory()) for n in range(2)]


@pytest.fixture
def request_records(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="performance.requests")
    return caplog


def request_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records of the request log in the test's call phase."""
    return [r for r in caplog.records if r.name == "performance.requests"]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged, through the JSON formatter of ``LOG_FORMAT=json``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.setLevel(old_level)
        root.removeHandler(handler)


def json_lines(stream: io.StringIO, logger: str = "performance.requests") -> list[dict]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == logger]


# X-Request-ID ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (LIST, 401),
        ("/health/?format=json", 200),
        ("/metrics", 200),
        ("/api/no-such-thing/", 404),
        ("/admin/", 302),
    ],
)
def test_every_response_carries_a_request_id(client, path, status):
    response = client.get(path)

    assert response.status_code == status
    assert GENERATED_ID.match(response["X-Request-ID"])


def test_each_request_gets_its_own_id(client):
    ids = {client.get("/health/?format=json")["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize("supplied", ["req-12345678", "A1b2.C3d4_E5f6-0", "f" * 64])
def test_a_sane_client_request_id_is_echoed(reader_client, supplied, request_records):
    response = reader_client.get(LIST, HTTP_X_REQUEST_ID=supplied)

    assert response["X-Request-ID"] == supplied
    assert request_log(request_records)[-1].request_id == supplied


@pytest.mark.parametrize(
    "supplied",
    [
        "x" * 500,
        "f" * 65,
        "has spaces in it",
        "short",
        "abcdefgh\n",
        "abcdefgh\nX-Injected: 1",
        "<script>alert(1)</script>",
        "",
    ],
    ids=["500", "65", "spaces", "short", "trailing-newline", "header-injection", "html", "empty"],
)
def test_an_insane_client_request_id_is_replaced(reader_client, supplied, request_records):
    response = reader_client.get(LIST, HTTP_X_REQUEST_ID=supplied)

    assert response.status_code == 200
    assert GENERATED_ID.match(response["X-Request-ID"])
    assert request_log(request_records)[-1].request_id == response["X-Request-ID"]


# One record per request ------------------------------------------------------------------------


def test_one_record_per_request_with_its_fields(
    locmem_cache, reader, reader_client, inventory, request_records
):
    responses = [get(reader_client, LIST), get(reader_client, LIST)]

    records = request_log(request_records)
    assert len(records) == 2
    for record, response, cache in zip(records, responses, ["MISS", "HIT"], strict=True):
        assert record.request_id == response["X-Request-ID"]
        assert record.user_id == reader.pk
        assert (record.method, record.path, record.status) == ("GET", LIST, 200)
        assert isinstance(record.duration_ms, float)
        assert record.duration_ms >= 0
        assert record.cache == cache


def test_anonymous_and_uncached_requests_log_none(client, request_records):
    client.get(LIST)

    (record,) = request_log(request_records)
    assert (record.user_id, record.status, record.cache) == (None, 401, None)


def test_json_lines_carry_the_fields(locmem_cache, reader, reader_client, inventory, json_log):
    first = get(reader_client, LIST, HTTP_X_REQUEST_ID="trace-0001-abcd")
    get(reader_client, f"{LIST}?ordering=-hostname")
    get(reader_client, LIST)

    lines = json_lines(json_log)
    assert len(lines) == 3
    assert lines[0]["request_id"] == first["X-Request-ID"] == "trace-0001-abcd"
    assert [line["cache"] for line in lines] == ["MISS", "MISS", "HIT"]
    for line in lines:
        assert line["level"] == "INFO"
        assert line["user_id"] == reader.pk
        assert (line["method"], line["path"], line["status"]) == ("GET", LIST, 200)
        assert line["duration_ms"] >= 0
        assert GENERATED_ID.match(line["request_id"]) or line["request_id"] == "trace-0001-abcd"


# Nothing secret --------------------------------------------------------------------------------


def test_passwords_and_tokens_never_reach_the_log(client, reader, json_log, caplog):
    caplog.set_level(logging.DEBUG)
    response = client.post(
        "/api/auth/token/?password=" + PASSWORD,
        {"username": "reader", "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200
    token = response.json()["token"]
    refused = client.post(
        "/api/auth/token/",
        {"username": "reader", "password": PASSWORD + "-wrong"},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert client.get(LIST, HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    assert client.get(f"{LIST}?token={token}", HTTP_AUTHORIZATION=f"Token {token}").status_code

    logged = json_log.getvalue() + caplog.text
    assert len(json_lines(json_log)) == 4
    assert "/api/auth/token/" in logged
    assert PASSWORD not in logged
    assert token not in logged
