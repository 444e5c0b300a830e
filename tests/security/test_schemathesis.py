"""Property-based tests of the API against its own OpenAPI schema (schemathesis).

Schemathesis reads ``/api/schema/`` from the WSGI application (no server), generates requests
for every operation of the inventory API, valid and invalid, sends them with a superuser's
token, and checks each response: no 5xx, and status code, content type, headers and body as the
schema declares. It runs inside the test's transaction, so what it creates is rolled back.

Bounded: ``MAX_EXAMPLES`` per operation and a per-example deadline; the whole test takes well
under a minute.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations.choices import Status

MAX_EXAMPLES = 25
#: Every operation: the workstation and location endpoints (summary included), obtaining a
#: token, and the staff performance API (as a superuser, who may manage the cache).
OPERATIONS = r"^/api/"


@pytest.fixture
def keep_connection():
    """Schemathesis calls the real WSGI handler, whose request signals close the database
    connection when it is inside a transaction, as the test's is (Django's test client
    disconnects them the same way)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, staff, keep_connection):
    # A few rows to find: list, filter and detail responses then have bodies to check.
    lab = LocationFactory(name="Lab")
    user = UserFactory(username="alice")
    WorkstationFactory(location=lab, status=Status.DEPLOYED, assigned_to=user)
    WorkstationFactory(location=None)
    token, _ = Token.objects.get_or_create(user=staff)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    schema.config.headers = {"Authorization": f"Token {token.key}"}
    return schema.include(path_regex=OPERATIONS)


#: "A schema-valid request must be accepted" cannot hold here: the schema cannot express the
#: rules that depend on state or on the domain (a location name already taken, a filter naming
#: a location that does not exist, an RFC 1123 hostname, the right password), so a schema-valid
#: request is sometimes rightly a 400. Every other check runs: no 5xx, documented status codes,
#: content types, headers and bodies, and schema-violating requests rejected.
EXCLUDED_CHECKS = [positive_data_acceptance]


def _has_inputs(operation) -> bool:
    return any(
        len(container) for container in (operation.path_parameters, operation.query)
    ) or bool(list(operation.body))


def _run(
    operation, mode: GenerationMode, headers: dict[str, str], literal_paths: frozenset[str]
) -> None:
    # A negative id can be another route's name: /api/workstations/{id}/ with "summary" is the
    # summary, which rightly answers. Such a case tests the router, not the schema: skipped.
    strategy = operation.as_strategy(generation_mode=mode)
    if "{" in operation.path:
        strategy = strategy.filter(lambda case: case.formatted_path not in literal_paths)

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=timedelta(seconds=5),
        database=None,  # no example database under .hypothesis/: every run starts afresh
        # The rows made by the fixture are shared by every example, on purpose. A negative
        # case of a read with only an id and the conditional headers (If-Match, If-None-Match:
        # any string) is mostly filtered out: a header has no invalid string that can be sent.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
    )
    def check(case) -> None:
        case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS)

    check()


# schemathesis.pytest's lazy loader (from_fixture) needs pytest internals that pytest 9 dropped
# (``Function._nodeid``), so each operation runs through the Python API instead.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_conforms_to_its_schema(api_schema, mode):
    headers = api_schema.config.headers
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    literal_paths = frozenset(op.path for op in operations if "{" not in op.path)
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
            continue  # nothing to make invalid (the staff figures take no parameter)
        try:
            _run(operation, mode, headers, literal_paths)
        except (Exception, BaseExceptionGroup) as exc:  # one failure must not hide the others
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
