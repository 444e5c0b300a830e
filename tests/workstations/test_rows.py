"""The list's row rendering equals WorkstationSerializer's output, field by field."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import selectors
from workstations.api import rows
from workstations.api.serializers import WorkstationSerializer
from workstations.choices import Status


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Europe/Zurich", "America/Los_Angeles"])
def test_rows_match_the_serializer_for_every_kind_of_value(zone):
    someone = UserFactory(username="zoë.ünïcode")
    WorkstationFactory(
        status=Status.DEPLOYED,
        assigned_to=someone,
        location=LocationFactory(name="Zürich / Büro 3"),
        purchase_cost=Decimal("899.5"),
        ip_address="10.0.0.1",
        mac_address="00:1a:2b:3c:4d:5e",
        notes='Quotes " and \\ backslashes\nand a newline',
    )
    WorkstationFactory(
        location=None,
        purchase_cost=None,
        purchase_date=None,
        warranty_expires=None,
        ip_address="2001:db8::1",
        ram_gb=None,
        last_audit_date=datetime.date(2024, 2, 29),
    )
    WorkstationFactory(purchase_cost=Decimal("0"), serial_number="", ip_address=None)

    queryset = selectors.workstation_list().order_by("hostname")
    with timezone.override(zone):  # datetimes are written in the current time zone
        expected = WorkstationSerializer(queryset, many=True).data
        actual = rows.rows_to_representation(rows.values_queryset(queryset))
    assert [dict(item) for item in expected] == actual
    # Same keys in the same order: the rendered bytes are the same too.
    assert [list(item) for item in expected] == [list(item) for item in actual]
