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
import hashlib
import json
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connections, models
from django.utils import timezone
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from workstations import columns
from workstations.models import Workstation


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


def _decimal(value: Decimal | None, places: int) -> str | None:
    # As DRF's DecimalField(decimal_places=places) with COERCE_DECIMAL_TO_STRING.
    return None if value is None else f"{value.quantize(Decimal(1).scaleb(-places)):f}"


def _ip(value: Any) -> str | None:
    return None if value is None else str(value)


def _converter(field: models.Field | None) -> Callable[..., str | None] | None:
    """How DRF's field for this model field represents a value, where it is not the value."""
    if isinstance(field, models.DateTimeField):  # before DateField: a subclass of it
        return _datetime  # given the time zone per page, in rows_to_representation
    if isinstance(field, models.DateField):
        return _date
    if isinstance(field, models.DecimalField):
        return functools.partial(_decimal, places=field.decimal_places)
    if isinstance(field, models.GenericIPAddressField):
        return _ip
    return None


def _columns() -> Iterator[tuple[str, str, models.Field | None]]:
    # (output field, values_list path, model field) for each of the serializer's fields: a
    # relation reads its key column and its natural key joined in, not the related row.
    for column in columns.COLUMNS:
        field = column.model_field
        yield column.name, field.attname, field
        if column.related_name is not None:
            yield column.related_name, f"{column.name}__{column.natural_key}", None


#: (output field, database column) in the serializer's field order, both from ``columns``.
_COLUMNS: tuple[tuple[str, str], ...] = tuple((name, path) for name, path, _ in _columns())
_NAMES = tuple(name for name, _ in _COLUMNS)
_ID = _NAMES.index("id")
_CONVERTERS = tuple(_converter(field) for _, _, field in _columns())


#: What a row's representation is made of: part of the key its rendering is kept under, so
#: that processes of two versions of the service never share rows of different shapes.
def _described(convert: Callable[..., Any] | None) -> str:
    if isinstance(convert, functools.partial):
        return f"{convert.func.__qualname__}{sorted(convert.keywords.items())}"
    return getattr(convert, "__qualname__", repr(convert))


#: (A hash, made once: it is part of every cold page's key, which would otherwise hash it anew.)
SHAPE = hashlib.sha256(
    repr(
        [
            (name, path, _described(convert))
            for (name, path), convert in zip(_COLUMNS, _CONVERTERS, strict=True)
        ]
    ).encode()
).hexdigest()[:16]


def values_queryset(queryset: models.QuerySet[Workstation]) -> models.QuerySet:
    """The same rows, same order, as tuples of exactly the listed columns."""
    return queryset.values_list(*(column for _, column in _COLUMNS))


#: Keys no table holds, standing in for the keys a statement is compiled for (``RowsById``).
_STAND_IN = -1_000_000_000
_UNCOMPILED = object()


class RowsById:
    """``list(rows.filter(pk__in=ids))`` for a ``values_queryset`` of rows, through a statement
    compiled once per database connection and number of keys: building that query (twenty-seven
    columns, two joins) cost a cold row four times what reading it does, and every change of a
    workstation renders its row again (the detail's miss, the first page that shows it). The
    statement is Django's own for the query, its keys' parameters given each time as the
    lookup would prepare them, its values converted by the compiler's converters; a query whose
    keys cannot be found among its parameters is made by the ORM each time."""

    def __init__(self, rows: models.QuerySet) -> None:
        self._rows = rows.order_by()  # (the rows are taken by key: no order to compute)
        self._pk = rows.model._meta.pk
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __call__(self, ids: Iterable[Any]) -> list[tuple]:
        keys = list(dict.fromkeys(ids))  # (as ``__in`` reads them: once each)
        connection = connections[self._rows.db]
        statements = self._compiled.setdefault(connection, {})
        statement = statements.get(len(keys), _UNCOMPILED)
        if statement is _UNCOMPILED:
            # (As many as a page has rows at most: bounded by the paginator.)
            statement = statements[len(keys)] = self._compile(connection, len(keys))
        if statement is None:
            return list(self._rows.filter(pk__in=keys))
        sql, params, positions, converters = statement
        params = list(params)
        pk = self._pk
        for position, key in zip(positions, keys, strict=True):
            params[position] = pk.get_db_prep_value(pk.get_prep_value(key), connection, True)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
        if not converters:
            return [tuple(row) for row in found]
        # As the compiler converts what it reads (``apply_converters``), without keeping it.
        converted = []
        for row in found:
            values = list(row)
            for position, convert, expression in converters:
                values[position] = convert(values[position], expression, connection)
            converted.append(tuple(values))
        return converted

    def _compile(self, connection: Any, count: int) -> tuple | None:
        query = self._rows.query
        if not count or query.annotation_select or query.extra_select:
            return None  # (no keys: no statement; other columns: the ORM orders them)
        stand_ins = [_STAND_IN - n for n in range(count)]
        compiler = self._rows.filter(pk__in=stand_ins).query.get_compiler(connection=connection)
        try:
            sql, params = compiler.as_sql()
        except (EmptyResultSet, FullResultSet):  # (decided without a query: the ORM's)
            return None
        positions = [n for n, value in enumerate(params) if value in stand_ins]
        if [params[n] for n in positions] != stand_ins:
            return None
        # As the compiler converts the rows it reads itself (``results_iter``).
        columns = [column[0] for column in compiler.select]
        if compiler.has_composite_fields(columns):
            return None
        # Only the statement and its converters are kept, not the compiler with its query (a
        # tree of hundreds of objects per connection and number of keys, which the garbage
        # collector would look at for as long as the process runs).
        converters = tuple(
            (position, convert, expression)
            for position, (converts, expression) in compiler.get_converters(columns).items()
            for convert in converts
        )
        return sql, tuple(params), tuple(positions), converters


def ids(rows: Iterable[tuple]) -> list[Any]:
    """The primary keys of ``rows`` (``values_queryset``'s)."""
    return [row[_ID] for row in rows]


def rows_to_representation(rows: Iterable[tuple]) -> list[dict[str, Any]]:
    # The current time zone is looked up once per page, not once per value.
    utc = timezone.get_current_timezone_name() == "UTC"
    as_datetime = functools.partial(_datetime, utc=utc)
    converters = [as_datetime if convert is _datetime else convert for convert in _CONVERTERS]
    out = []
    for row in rows:
        item = {}
        for name, convert, value in zip(_NAMES, converters, row, strict=True):
            item[name] = convert(value) if convert is not None else value
        out.append(item)
    return out


def renders_compactly(renderer: BaseRenderer | None, media_type: str, context: dict) -> bool:
    """Whether ``renderer`` writes a list as its items' own renderings joined by commas in
    brackets — a JSON renderer with compact separators and no indent, that renders so (asked
    once per class: ``_splices``) — so that a page can be made of rows rendered one by one
    (``PageOfRenderedRows``)."""
    return (
        isinstance(renderer, JSONRenderer)
        and renderer.compact
        and not renderer.get_indent(media_type, context)
        and _splices(type(renderer))
    )


@functools.cache
def _splices(kind: type[JSONRenderer]) -> bool:
    """Whether a ``kind`` renders an envelope with rows as the envelope without them with the
    rows rendered apart spliced in, on values of the kinds rows hold."""
    renderer = kind()
    rows = [{"a": 1, "b": "\u00e9\u2028", "c": None}, {"d": "2.50", "e": True}]
    empty = renderer.render({"count": 2, "results": []}, None, {})
    whole = renderer.render({"count": 2, "results": rows}, None, {})
    apart = b",".join(renderer.render(row, None, {}) for row in rows)
    end = PageOfRenderedRows.EMPTY_END
    return empty.endswith(end) and whole == empty[: -len(end)] + end[:-2] + apart + end[-2:]


class PageOfRenderedRows(Response):
    """A page whose rows come rendered already (bytes each, by the renderer the page is
    rendered with): the renderer renders the envelope with no rows, and they are spliced in —
    the same bytes as the whole page rendered at once (``renders_compactly``;
    ``tests/workstations/test_rows.py``)."""

    #: How the envelope (``get_paginated_response``'s, the rows last) ends without rows.
    EMPTY_END = b'"results":[]}'

    def __init__(self, envelope: dict[str, Any], rows: Sequence[bytes]) -> None:
        super().__init__({**envelope, "results": []})
        self.rows = rows

    @property
    def rendered_content(self) -> bytes:
        rendered = super().rendered_content
        if rendered.endswith(self.EMPTY_END):
            return rendered[:-2] + b",".join(self.rows) + rendered[-2:]
        # An envelope whose rows are not last (another paginator): rendered whole.
        self.data["results"] = [json.loads(row) for row in self.rows]
        return super().rendered_content


class RenderedRow(Response):
    """One object's representation, rendered already by the renderer the response is rendered
    with (``renders_compactly``): its bytes, as DRF would have rendered them."""

    def __init__(self, body: bytes) -> None:
        super().__init__({})
        self.body = body

    @property
    def rendered_content(self) -> bytes:
        super().rendered_content  # noqa: B018 (what DRF sets on every response: the content type)
        return self.body
