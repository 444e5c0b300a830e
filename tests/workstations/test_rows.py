"""The list's row rendering equals WorkstationSerializer's output, field by field."""

from __future__ import annotations

import datetime
import gc
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import selectors
from workstations.api import rows
from workstations.api.serializers import WorkstationSerializer
from workstations.choices import Status


def _workstations_of_every_kind() -> list:
    """Workstations whose rows hold every kind of value: a datetime, a date, a decimal (and
    zero), both kinds of address, a joined name in Unicode, text a JSON encoder escapes, none."""
    someone = UserFactory(username="zoë.ünïcode")
    return [
        WorkstationFactory(
            status=Status.DEPLOYED,
            assigned_to=someone,
            location=LocationFactory(name="Zürich / Büro 3"),
            purchase_cost=Decimal("899.5"),
            ip_address="10.0.0.1",
            mac_address="00:1a:2b:3c:4d:5e",
            notes='Quotes " and \\ backslashes\nand a newline',
        ),
        WorkstationFactory(
            location=None,
            purchase_cost=None,
            purchase_date=None,
            warranty_expires=None,
            ip_address="2001:db8::1",
            ram_gb=None,
            last_audit_date=datetime.date(2024, 2, 29),
        ),
        WorkstationFactory(purchase_cost=Decimal("0"), serial_number="", ip_address=None),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Europe/Zurich", "America/Los_Angeles"])
def test_rows_match_the_serializer_for_every_kind_of_value(zone):
    _workstations_of_every_kind()

    queryset = selectors.workstation_list().order_by("hostname")
    with timezone.override(zone):  # datetimes are written in the current time zone
        expected = WorkstationSerializer(queryset, many=True).data
        actual = rows.rows_to_representation(rows.values_queryset(queryset))
    assert [dict(item) for item in expected] == actual
    # Same keys in the same order: the rendered bytes are the same too.
    assert [list(item) for item in expected] == [list(item) for item in actual]


@pytest.mark.django_db
def test_rows_read_by_key_are_the_orm_s_rows_for_every_kind_of_value(django_assert_num_queries):
    """A cold row is read through a statement compiled once (``RowsById``): the same values as
    the ORM's query gives, each converted as it converts them (a datetime, a decimal, an
    address, a joined name, none of them), in one query, for any number of keys."""
    made = _workstations_of_every_kind()
    source = rows.values_queryset(selectors.workstation_list())
    read = rows.RowsById(source)
    keys = [w.pk for w in made]
    for asked in ([keys[0]], keys[::-1], [keys[1], keys[1], 10**9], [keys[2], *keys]):
        expected = sorted(source.filter(pk__in=asked))
        with django_assert_num_queries(1):
            actual = read(asked)
        assert sorted(actual) == expected
        assert {type(value) for row in actual for value in row} == {
            type(value) for row in expected for value in row
        }
    assert read([]) == []


@pytest.mark.django_db
def test_statements_read_by_key_keep_no_query_for_the_garbage_collector():
    """A process keeps a statement per database connection and number of keys as long as it
    runs (a page's rows: up to the page's size), and a full collection holds every thread while
    it looks at each object it tracks: each keeps its SQL and its converters, not the compiler
    with its query (a tree of a few hundred objects: the columns, the joins, the keys' lookup)."""
    made = _workstations_of_every_kind()
    read = rows.RowsById(rows.values_queryset(selectors.workstation_list()))
    statements = 20
    assert len(read([made[0].pk])) == 1
    gc.collect()
    before = len(gc.get_objects())
    for count in range(2, statements + 2):
        assert read([made[0].pk, *range(10**9, 10**9 + count - 1)])  # (``count`` keys)
    gc.collect()
    assert (len(gc.get_objects()) - before) / statements < 30
