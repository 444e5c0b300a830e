"""The workstation list, rendered straight from database rows.

A page of 50 workstations through ``WorkstationSerializer`` costs some 1,300 field
``to_representation`` calls and 100 model instances with their related users and locations.
The list needs none of that: it reads exactly the columns it shows (the location's name and the
assignee's username joined in, not their whole rows) and turns each row into the serializer's
own representation. ``tests/workstations/test_rows.py`` holds the two outputs equal, field by
field, for every kind of value.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from workstations.models import Workstation

from .serializers import WorkstationSerializer

#: Output fields that are not a column of their own name.
_COLUMN_OF = {
    "assigned_to": "assigned_to_id",
    "assigned_to_username": "assigned_to__username",
    "location": "location_id",
    "location_name": "location__name",
}
#: (output field, database column) in the serializer's field order.
_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (name, _COLUMN_OF.get(name, name)) for name in WorkstationSerializer.Meta.fields
)
_NAMES = tuple(name for name, _ in _COLUMNS)


def _datetime(value: datetime.datetime | None, utc: bool) -> str | None:
    # As DRF's DateTimeField: in the current time zone, ISO 8601, UTC written as "Z".
    if value is None:
        return None
    if utc:
        value = value.astimezone(datetime.UTC) if value.utcoffset() else value
    else:
        value = timezone.localtime(value)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _date(value: datetime.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _cost(value: Decimal | None) -> str | None:
    # As DRF's DecimalField(decimal_places=2) with COERCE_DECIMAL_TO_STRING.
    return None if value is None else f"{value.quantize(Decimal('0.01')):f}"


def _ip(value: Any) -> str | None:
    return None if value is None else str(value)


_CONVERT = {
    "purchase_date": _date,
    "warranty_expires": _date,
    "last_audit_date": _date,
    "purchase_cost": _cost,
    "ip_address": _ip,
}
_DATETIMES = frozenset({"created_at", "updated_at"})


def values_queryset(queryset: QuerySet[Workstation]) -> QuerySet:
    """The same rows, same order, as tuples of exactly the listed columns."""
    return queryset.values_list(*(column for _, column in _COLUMNS))


def rows_to_representation(rows: Iterable[tuple]) -> list[dict[str, Any]]:
    # The current time zone is looked up once per page, not once per value.
    utc = timezone.get_current_timezone_name() == "UTC"
    as_datetime = functools.partial(_datetime, utc=utc)
    converters = [as_datetime if name in _DATETIMES else _CONVERT.get(name) for name in _NAMES]
    out = []
    for row in rows:
        item = {}
        for name, convert, value in zip(_NAMES, converters, row, strict=True):
            item[name] = convert(value) if convert is not None else value
        out.append(item)
    return out
