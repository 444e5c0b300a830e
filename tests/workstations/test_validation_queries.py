"""A change is validated where it can break something: the fields it changes, and the
constraints that name one of them. What it leaves as it was, a stored row met already (and the
database holds the constraints too): asking again cost a PATCH of the notes five queries."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory, WorkstationFactory
from workstations import services

pytestmark = pytest.mark.django_db

# What Django's validation asks: a check constraint's condition, a unique value's owner.
_VALIDATION = ('AS "_check"', 'SELECT 1 AS "a"')


def _validations(queries) -> list[str]:
    return [q["sql"] for q in queries if any(mark in q["sql"] for mark in _VALIDATION)]


def _patch(client, machine, body):
    with CaptureQueriesContext(connection) as queries:
        response = client.patch(f"/api/workstations/{machine.pk}/", body, format="json")
    return response, _validations(queries.captured_queries)


def test_a_change_of_the_notes_asks_nothing_to_validate(editor_client):
    machine = WorkstationFactory(hostname="ws-1", serial_number="SN-1")
    response, asked = _patch(editor_client, machine, {"notes": "new toner"})
    assert response.status_code == 200, response.content
    assert response.json()["notes"] == "new toner"
    assert asked == []


def test_a_change_of_a_unique_field_is_checked_against_the_others(editor_client):
    WorkstationFactory(hostname="taken")
    machine = WorkstationFactory(hostname="ws-1")
    response, asked = _patch(editor_client, machine, {"hostname": "taken"})
    assert response.status_code == 400
    assert "hostname" in response.json()
    assert len(asked) == 1


def test_a_change_of_the_status_is_checked_against_the_assignee():
    """The status and the assignee go together: a change of one is validated with the other,
    before the database refuses it (a message naming what is wrong, not a 500)."""
    machine = WorkstationFactory(status="in_stock", assigned_to=None)
    with pytest.raises(ValidationError) as refused:
        services.workstation_update(workstation=machine, data={"status": "deployed"})
    assert "assign" in str(refused.value).lower()
    someone = UserFactory()
    services.workstation_update(
        workstation=machine, data={"status": "deployed", "assigned_to": someone}
    )
    machine.refresh_from_db()
    assert (machine.status, machine.assigned_to) == ("deployed", someone)
