"""Reading and writing the inventory's file format (CSV or JSON), shared by import and export.

One row is one workstation, one column per field; ``location`` holds a location *name* and
``assigned_to`` a *username*, so a file travels between databases whose primary keys differ.
An export can be imported into a database that has the same locations and users and no
workstations.

Validation of a row happens in two steps, the same as on the API:

1. types and formats through ``WorkstationImportSerializer`` (the API's ``WorkstationSerializer``
   with names instead of primary keys), so a date or a number means the same thing in a file and
   in a request;
2. the rules of the domain through ``Model.full_clean()``: status and assignee, warranty after
   purchase, normalised host name and MAC address.

On top of that the importer finds what neither sees row by row: duplicates *within* the file
(after normalisation), values an existing workstation already has (a few bulk queries per file
rather than several per row), unknown location names and usernames. Every problem is collected
(never just the first), each with the line number and the column a user has to fix.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, UniqueConstraint
from rest_framework import serializers
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.settings import api_settings
from rest_framework.validators import UniqueValidator

from . import columns, services
from .api.serializers import WorkstationSerializer
from .models import Location, Workstation
from .selectors import workstation_list

#: The columns of an inventory file, in the order an export writes them (see ``columns``).
COLUMNS: tuple[str, ...] = columns.FILE_COLUMNS
REQUIRED_COLUMNS: tuple[str, ...] = ("asset_tag", "hostname")
FORMATS: tuple[str, ...] = ("csv", "json")

#: Columns holding a related object's natural key rather than a value of the row itself.
_RELATED_COLUMNS: tuple[str, ...] = tuple(columns.NATURAL_KEYS)
#: Rows per ``IN (...)`` lookup: below SQLite's limit on query parameters.
_LOOKUP_CHUNK = 500
#: The messages full_clean would give for a taken value: the field's, or its constraint's.
_UNIQUE_MESSAGES = {
    column: Workstation().unique_error_message(Workstation, (column,)).messages[0]
    for column in COLUMNS
    if Workstation._meta.get_field(column).unique
}
_UNIQUE_MESSAGES.update(
    {
        constraint.fields[0]: str(constraint.get_violation_error_message())
        for constraint in Workstation._meta.constraints
        if isinstance(constraint, UniqueConstraint) and len(constraint.fields) == 1
    }
)
#: Unique among workstations, as the model says (a field's or a constraint's), so a value may
#: appear once per file.
_UNIQUE_COLUMNS: tuple[str, ...] = tuple(column for column in COLUMNS if column in _UNIQUE_MESSAGES)


class ImportFileError(Exception):
    """The file cannot be read as an inventory file at all (missing, empty, not UTF-8...)."""


@dataclass(frozen=True)
class RowError:
    """One problem a user can fix: where (``line 5`` of a CSV, ``item 3`` of JSON), which
    column (``None`` for the row as a whole), and what is wrong."""

    line: int
    field: str | None
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}"
        return (
            f"{where}, {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def sort_key(self) -> tuple[int, int]:
        return self.line, COLUMNS.index(self.field) if self.field in COLUMNS else len(COLUMNS)


@dataclass(frozen=True)
class Row:
    """One record of the file: its position for messages and its cells by column name."""

    line: int
    values: dict[str, Any]
    unit: str = "line"

    def error(self, field: str | None, message: str) -> RowError:
        return RowError(self.line, field, message, self.unit)


@dataclass
class Table:
    """A parsed file: its columns as written and its records."""

    columns: list[str]
    rows: list[Row]
    errors: list[RowError] = field(default_factory=list)


@dataclass
class ValidationReport:
    """The outcome of validating a table: the workstations to create, or what is wrong."""

    workstations: list[Workstation]
    errors: list[RowError]

    @property
    def ok(self) -> bool:
        return not self.errors


class WorkstationImportSerializer(WorkstationSerializer):
    """The API serializer's fields for one file row: types and formats only.

    Related objects are named in a file (location name, username) and resolved in bulk by the
    importer; uniqueness is checked once, by ``full_clean`` and the in-file duplicate check,
    instead of a query per unique column per row.
    """

    # The API's natural-key fields: a file names related objects in their own columns.
    location_name = None
    assigned_to_username = None

    class Meta(WorkstationSerializer.Meta):
        fields = tuple(column for column in COLUMNS if column not in _RELATED_COLUMNS)
        read_only_fields: tuple[str, ...] = ()

    def build_standard_field(
        self, field_name: str, model_field: Field
    ) -> tuple[type[serializers.Field], dict[str, Any]]:
        """The API's field without its ``UniqueValidator``, which would query once per row;
        ``taken_in_database`` checks the whole file in a few queries instead."""
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if "validators" in kwargs:
            kwargs["validators"] = [
                validator
                for validator in kwargs["validators"]
                if not isinstance(validator, UniqueValidator)
            ]
        return field_class, kwargs


# Reading -----------------------------------------------------------------------------------


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The file's format: ``fmt`` when given, else from the extension (CSV unless ``.json``)."""
    if fmt:
        if fmt not in FORMATS:
            raise ImportFileError(f"Unknown format {fmt!r}; use one of: {', '.join(FORMATS)}.")
        return fmt
    return "json" if path.suffix.lower() == ".json" else "csv"


def read_table(path: Path, *, fmt: str | None = None) -> Table:
    """Read an inventory file; ``ImportFileError`` when it cannot be read at all."""
    text = _read_text(path)
    if not text.strip():
        raise ImportFileError(f"{path} is empty: expected a header row and data rows.")
    if detect_format(path, fmt) == "json":
        return _parse_json(text, path)
    return _parse_csv(text, path)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path} is a directory, not a file.") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read ({exc.strerror}).") from None
    try:
        # utf-8-sig: spreadsheets often save a byte order mark in front of the header.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
            "save the file as UTF-8 and try again."
        ) from None


def _check_columns(columns: list[str], unit: str) -> list[RowError]:
    """Errors about the header; ``ImportFileError`` when the rows could not be read anyway."""
    if not any(column in COLUMNS for column in columns):
        raise ImportFileError(
            f"{unit} 1 is not a header: expected column names such as "
            f"{', '.join(REQUIRED_COLUMNS)} (known columns: {', '.join(COLUMNS)})."
        )
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise ImportFileError(f"Missing required column(s): {', '.join(missing)}.")
    errors = []
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            errors.append(RowError(1, column, "Column appears more than once.", unit))
        elif column not in COLUMNS:
            errors.append(
                RowError(
                    1,
                    column or "(empty)",
                    f"Unknown column; known columns are: {', '.join(COLUMNS)}.",
                    unit,
                )
            )
        seen.add(column)
    return errors


def _parse_csv(text: str, path: Path) -> Table:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[Row] = []
    try:
        header = [name.strip() for name in next(reader)]
        errors = _check_columns(header, "line")
        last_line = reader.line_num
        for cells in reader:
            # A quoted cell may span lines: report the line the record starts on.
            line, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            row = Row(line, dict(zip(header, cells, strict=False)))
            if len(cells) > len(header):
                errors.append(
                    row.error(None, f"{len(cells)} values but the header has {len(header)}.")
                )
                continue
            rows.append(row)
    except csv.Error as exc:
        raise ImportFileError(f"{path}, line {reader.line_num}: not valid CSV ({exc}).") from None
    return Table(columns=header, rows=rows, errors=errors)


def _parse_json(text: str, path: Path) -> Table:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ImportFileError(f"{path}: expected a JSON array of objects, one per workstation.")
    if not items:
        return Table(columns=list(COLUMNS), rows=[])
    first_item: dict[str, int] = {}
    for number, item in enumerate(items, start=1):
        for key in item:
            first_item.setdefault(key, number)
    columns = list(first_item)
    # Objects need not all have the same keys: name the first item that has a bad one.
    errors = [
        replace(error, line=first_item.get(error.field, 1))
        for error in _check_columns(columns, "item")
    ]
    rows = [Row(n, item, unit="item") for n, item in enumerate(items, start=1)]
    return Table(columns=columns, rows=rows, errors=errors)


# Validating --------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A cell as the serializer should see it; ``None`` when empty (the column's default)."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def _first_message(detail: Any) -> str:
    while isinstance(detail, (list, dict)):
        detail = next(iter(detail.values() if isinstance(detail, dict) else detail), "")
    return str(detail)


def validate_table(
    table: Table, *, progress: Callable[[int, int], None] | None = None
) -> ValidationReport:
    """Validate every row; returns the unsaved workstations, or every error found.

    ``progress(done, total)`` is called after each row, for a progress indicator.
    """
    validator = _RowValidator()
    errors = list(table.errors)
    workstations: list[Workstation] = []
    total = len(table.rows)
    for done, row in enumerate(table.rows, start=1):
        workstation, row_errors = validator.validate(row)
        errors.extend(row_errors)
        if not row_errors:
            workstations.append(workstation)
        if progress is not None:
            progress(done, total)
    errors.extend(validator.taken_in_database())
    errors.sort(key=RowError.sort_key)
    return ValidationReport(workstations=[] if errors else workstations, errors=errors)


class _RowValidator:
    """Validates rows one by one, remembering what earlier rows of the file used.

    ``full_clean`` runs on every row for the field checks and the rules of ``clean()``, but
    without its per-row uniqueness and constraint queries (up to five per row, most of an
    import's time): uniqueness against the database is checked once for the whole file by
    ``taken_in_database``, and the check constraints repeat rules ``clean()`` already enforces
    with a message on the field. The database's constraints stay the last word at insert time.
    """

    def __init__(self) -> None:
        # Two queries for the whole file instead of two per row.
        self.locations = {location.name: location for location in Location.objects.all()}
        self.users = dict(get_user_model().objects.values_list("username", "pk"))
        self.serializer = WorkstationImportSerializer()
        self.first_seen: dict[str, dict[Any, Row]] = {column: {} for column in _UNIQUE_COLUMNS}

    def validate(self, row: Row) -> tuple[Workstation, list[RowError]]:
        errors: dict[str, str] = {}  # one message per column: the first problem is the one to fix
        workstation = Workstation(**self._convert(row, errors))
        self._resolve_related(row, workstation, errors)

        # Location and assignee were just looked up among existing rows: no existence query.
        exclude = {*_RELATED_COLUMNS, *(column for column in errors if column in COLUMNS)}
        try:
            workstation.full_clean(
                exclude=exclude, validate_unique=False, validate_constraints=False
            )
        except DjangoValidationError as exc:
            for column, messages in exc.message_dict.items():
                errors.setdefault(column, messages[0])

        # full_clean normalised the values (host names are lower-cased): compare those.
        for column in _UNIQUE_COLUMNS:
            value = getattr(workstation, column)
            if column in errors or not value:
                continue
            earlier = self.first_seen[column].setdefault(value, row)
            if earlier is not row:
                errors[column] = f"{value!r} already appears on {row.unit} {earlier.line}."

        return workstation, [
            row.error(None if column == NON_FIELD_ERRORS else column, message)
            for column, message in errors.items()
        ]

    def taken_in_database(self) -> Iterator[RowError]:
        """Rows whose unique values an existing workstation has, in a few queries per file."""
        for column in _UNIQUE_COLUMNS:
            message = _UNIQUE_MESSAGES[column]
            values = list(self.first_seen[column])
            for start in range(0, len(values), _LOOKUP_CHUNK):
                chunk = values[start : start + _LOOKUP_CHUNK]
                taken = workstation_list().filter(**{f"{column}__in": chunk})
                for value in taken.values_list(column, flat=True):
                    yield self.first_seen[column][value].error(column, message)

    def _convert(self, row: Row, errors: dict[str, str]) -> dict[str, Any]:
        """Types and formats, through the API serializer's fields."""
        data = {
            column: cell
            for column, value in row.values.items()
            if column in COLUMNS
            and column not in _RELATED_COLUMNS
            and (cell := _cell(value)) is not None
        }
        try:
            return dict(self.serializer.run_validation(data))
        except DRFValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {NON_FIELD_ERRORS: exc.detail}
            for column, messages in detail.items():
                key = NON_FIELD_ERRORS if column == api_settings.NON_FIELD_ERRORS_KEY else column
                errors[key] = _first_message(messages)
        # The serializer rejects the row as a whole: keep the columns that were fine, so that
        # full_clean can still report what else is wrong with them.
        converted = {}
        for column, value in data.items():
            if column not in errors:  # passed the serializer's check just now
                converted[column] = self.serializer.fields[column].run_validation(value)
        return converted

    def _resolve_related(self, row: Row, workstation: Workstation, errors: dict[str, str]) -> None:
        name = _cell(row.values.get("location"))
        if name is not None:
            workstation.location = self.locations.get(str(name))
            if workstation.location is None:
                errors["location"] = f"No location is named {str(name)!r}."
        username = _cell(row.values.get("assigned_to"))
        if username is not None:
            workstation.assigned_to_id = self.users.get(str(username))
            if workstation.assigned_to_id is None:
                errors["assigned_to"] = f"No user has the username {str(username)!r}."


# Importing ---------------------------------------------------------------------------------


def create_workstations(report: ValidationReport) -> list[Workstation]:
    """Create the workstations of a clean report, all in one transaction.

    Every row already passed ``full_clean``, so the service does not validate them twice; a
    unique value taken by a concurrent writer in between still fails the whole insert
    (``ValidationError``, nothing written).
    """
    if report.errors:
        raise ValueError("Refusing to import a report that has errors.")
    if not report.workstations:
        return []
    return services.workstation_bulk_create(workstations=report.workstations, validate=False)


# Exporting ---------------------------------------------------------------------------------


def export_row(workstation: Workstation) -> dict[str, Any]:
    """One workstation as a file row: JSON-ready values, related objects by natural key."""
    row: dict[str, Any] = {}
    for column in COLUMNS:
        value = getattr(workstation, column)  # related objects: select_related by the selector
        natural_key = columns.NATURAL_KEYS.get(column)
        if natural_key is not None and value is not None:
            value = getattr(value, natural_key)
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        row[column] = value
    return row


def write_csv(stream: TextIO, workstations: Iterable[Workstation]) -> int:
    """Write a header and one row per workstation; returns the number of rows."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for workstation in workstations:
        row = export_row(workstation)
        writer.writerow(["" if row[column] is None else row[column] for column in COLUMNS])
        count += 1
    return count


def write_json(stream: TextIO, workstations: Iterable[Workstation]) -> int:
    """Write a JSON array, one object per line, without holding the list in memory."""
    count = 0
    stream.write("[")
    for workstation in workstations:
        stream.write(("\n" if count == 0 else ",\n") + json.dumps(export_row(workstation)))
        count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


WRITERS: dict[str, Callable[[TextIO, Iterable[Workstation]], int]] = {
    "csv": write_csv,
    "json": write_json,
}
