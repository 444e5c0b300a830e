"""What a client can write into the logs: nothing but its own line, once per request.

A path may hold any character once percent-decoded (``%0A`` is a newline), and a ``Host``
header any host: neither may start a line of its own in the plain log, and a host the service
does not serve is one warning per host per minute, not an error with a traceback per request.
Checked in-process through the formatters and filter ``LOGGING`` configures, and end to end in
the log of a real gunicorn, in both formats.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from project.logs import DisallowedHostFilter, PlainFormatter, escape_controls
from tests.performance.servers import Gunicorn, copy_database, migrated_site, site_env

FORGED = "2026-01-01 00:00:00,000 ERROR django.security forged"
START_TIMEOUT = 60.0


@pytest.fixture
def plain_log(settings) -> Iterator[io.StringIO]:
    """Everything logged, through the plain formatter ``LOGGING`` configures."""
    config = dict(settings.LOGGING["formatters"]["plain"])
    factory = config.pop("()")
    assert factory == "project.logs.PlainFormatter"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PlainFormatter(config["format"]))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


@pytest.fixture
def host_filter() -> Iterator[DisallowedHostFilter]:
    """The filter ``LOGGING`` put on Django's DisallowedHost logger, with a clock to set."""
    logger = logging.getLogger("django.security.DisallowedHost")
    (configured,) = [f for f in logger.filters if isinstance(f, DisallowedHostFilter)]
    now = [1_000.0]
    configured.timer = lambda: now[0]
    configured._last.clear()
    configured.now = now
    yield configured
    del configured.timer
    configured._last.clear()


# The formatter -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("x\u2028y", "x\\u2028y"),
        ("tab\there", "tab\\there"),
        ("é ü ✓", "é ü ✓"),
    ],
)
def test_control_characters_are_escaped(text, escaped):
    assert escape_controls(text) == escaped


@pytest.mark.django_db
def test_a_newline_in_the_path_cannot_forge_a_plain_line(plain_log, client):
    response = client.get("/api/nothing%0A" + FORGED.replace(" ", "%20"))
    assert response.status_code in {401, 404}

    lines = plain_log.getvalue().splitlines()
    assert lines, "the request was not logged"
    assert not [line for line in lines if line.startswith("2026-01-01")]
    assert any("/api/nothing\\n2026-01-01" in line for line in lines)


def test_a_traceback_keeps_its_lines(plain_log):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("tests.logs").exception("failed on %s", "/a\nb")
    text = plain_log.getvalue()
    assert "failed on /a\\nb" in text
    assert "Traceback (most recent call last):\n" in text


# DisallowedHost --------------------------------------------------------------------------------


def security_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("django.security")]


@pytest.mark.django_db
def test_a_disallowed_host_is_one_line_per_host_per_minute(caplog, host_filter):
    caplog.set_level(logging.INFO)
    browser = Client(raise_request_exception=False)
    for n in range(20):
        host = "evil.example" if n % 2 else "other.example"
        assert browser.get("/health/", HTTP_HOST=host).status_code == 400
    records = security_records(caplog)
    assert sorted(r.getMessage() for r in records) == [
        "refused a request for host 'evil.example': not in ALLOWED_HOSTS (logged once a minute)",
        "refused a request for host 'other.example': not in ALLOWED_HOSTS (logged once a minute)",
    ]
    assert {(r.levelname, r.exc_info) for r in records} == {("WARNING", None)}

    host_filter.now[0] += 61
    caplog.clear()
    browser.get("/health/", HTTP_HOST="evil.example")
    assert len(security_records(caplog)) == 1


def test_the_hosts_remembered_are_bounded():
    bounded = DisallowedHostFilter(max_hosts=3)
    for n in range(10):
        record = logging.LogRecord("django.security.DisallowedHost", 40, "", 0, "x", (), None)
        record.request = type("R", (), {"META": {"HTTP_HOST": f"h{n}.example"}})()
        assert bounded.filter(record)
    assert list(bounded._last) == ["h7.example", "h8.example", "h9.example"]


# End to end: the log of a real server ------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return migrated_site(tmp_path_factory.mktemp("logs-site"), 1)


def raw_request(port: int, head: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_the_server_log_holds_one_line_per_request(site, tmp_path: Path, log_format: str):
    database = copy_database(site["database"], tmp_path / "db.sqlite3")
    env = site_env(database, tmp_path / "var", LOG_FORMAT=log_format)
    server = Gunicorn(f"logs-{log_format}", env, tmp_path)
    try:
        server.wait_until_ready(time.monotonic() + START_TIMEOUT)
        forged = FORGED.replace(" ", "%20")
        answer = raw_request(
            server.port,
            f"GET /nothing%0A{forged} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 404")
        for n in range(20):
            host = "evil.example" if n % 2 else "other.example"
            answer = raw_request(
                server.port, f"GET /health/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 400")
    finally:
        server.stop()

    lines = server.log_text().splitlines()
    assert not [line for line in lines if FORGED in line and not line.startswith(("{", "20"))]
    assert not [line for line in lines if line.startswith("2026-01-01")]
    assert "Traceback" not in server.log_text()
    disallowed = [line for line in lines if "ALLOWED_HOSTS" in line]
    assert len(disallowed) == 2, disallowed
    if log_format == "json":
        records = [json.loads(line) for line in lines if line.startswith("{")]
        (forged_record,) = [r for r in records if FORGED in r.get("path", "")]
        assert forged_record["path"].startswith("/nothing\n")  # the value, escaped by JSON
        assert {r["level"] for r in records if "ALLOWED_HOSTS" in r["message"]} == {"WARNING"}
