"""Reading and writing the inventory's file format (CSV or JSON), shared by import and export.

One row is one workstation, one column per field; ``location`` holds a location *name* and
``assigned_to`` a *username*, so a file travels between databases whose primary keys differ.
An export can be imported into a database that has the same locations and users and no
workstations, or back into the same one with ``update``: rows whose asset tag exists change
that workstation, the others are created, and a row that changes nothing is left alone.

The management command and the admin's import page are two front ends of this one importer:
the same reading (delimiter, column mapping, presets), the same validation, the same report.

Validation of a row happens in two steps, the same as on the API:

1. types and formats through ``WorkstationImportSerializer`` (the API's ``WorkstationSerializer``
   with names instead of primary keys), so a date or a number means the same thing in a file and
   in a request; choices are accepted by value or label, in any case;
2. the rules of the domain through ``Model.full_clean()``: status and assignee, warranty after
   purchase, normalised host name and MAC address.

On top of that the importer finds what neither sees row by row: duplicates *within* the file
(after normalisation), values another workstation already has (a few bulk queries per file
rather than several per row), unknown location names and usernames. Every problem is collected
(never just the first), each with the line number and the column a user has to fix.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
as a formula (OWASP's "CSV injection"). A CSV export prefixes such cells with ``'``, which a
spreadsheet shows as text, and a CSV import takes exactly one ``'`` off again, so an export
imports back unchanged; a formula written by hand is refused in every column but ``notes``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import Field, UniqueConstraint
from rest_framework import serializers
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.settings import api_settings
from rest_framework.validators import UniqueValidator

from . import columns, services
from .api.serializers import WorkstationSerializer
from .choices import Status
from .models import Location, Workstation
from .selectors import workstation_list

#: The columns of an inventory file, in the order an export writes them (see ``columns``).
COLUMNS: tuple[str, ...] = columns.FILE_COLUMNS
REQUIRED_COLUMNS: tuple[str, ...] = ("asset_tag", "hostname")
FORMATS: tuple[str, ...] = ("csv", "json")
#: The column an update matches existing workstations by.
MATCH_COLUMN = "asset_tag"
#: Free text, where a formula written by hand is kept (and neutralised again on export).
FREE_TEXT_COLUMNS: frozenset[str] = frozenset({"notes"})
#: Delimiters a CSV file may use: comma, semicolon (Excel in many locales), tab.
DELIMITERS: dict[str, str] = {",": "comma", ";": "semicolon", "\t": "tab"}
#: First characters that make a spreadsheet evaluate a cell (OWASP's list).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")

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
#: A neutralised cell: one or more apostrophes, then what a spreadsheet would run.
_NEUTRALISED = re.compile(r"^'+[=+\-@\t\r]")
#: A number written with thousands separators, as spreadsheets and Snipe-IT export them
#: ("1,249.00"). Only whole groups of three digits: "1,5" (a decimal comma) is not one.
_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")
#: How a file that is not text at all starts: named, so the error says what to do instead.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx or OpenDocument .ods workbook?)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
)


class ImportFileError(Exception):
    """The file cannot be read as an inventory file at all (missing, empty, not UTF-8...)."""


# Presets and options -----------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """How another product's export maps onto this inventory's columns.

    ``columns``: its header names (compared without case) to ours; ``values``: per column of
    ours, its names for our values (compared without case), tried before our own values and
    labels.
    """

    name: str
    description: str
    columns: Mapping[str, str]
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


#: Snipe-IT's asset export (its list's "Export" button, or Admin > Reports). Columns without a
#: home here (Company, Category, Supplier, Order Number, EOL...) are unknown: name them with
#: ``ignore_unknown_columns``. Its default status labels map onto our statuses.
SNIPEIT = Preset(
    name="snipeit",
    description="Snipe-IT's asset export",
    columns={
        "Asset Tag": "asset_tag",
        "Asset Name": "hostname",
        "Serial": "serial_number",
        "Model": "model_name",
        "Manufacturer": "manufacturer",
        "Status": "status",
        "Location": "location",
        "Checked Out To": "assigned_to",
        "Purchase Date": "purchase_date",
        "Purchase Cost": "purchase_cost",
        "Warranty Expires": "warranty_expires",
        "Last Audit": "last_audit_date",
        "Notes": "notes",
        "MAC Address": "mac_address",
        "IP Address": "ip_address",
        "Operating System": "os",
        "CPU": "cpu",
        "RAM": "ram_gb",
    },
    values={
        "status": {
            "Ready to Deploy": Status.IN_STOCK,
            "Deployable": Status.IN_STOCK,
            "Deployed": Status.DEPLOYED,
            "Pending": Status.IN_REPAIR,
            "Out for Diagnostics": Status.IN_REPAIR,
            "Out for Repair": Status.IN_REPAIR,
            "Broken - Not Fixable": Status.FAILED,
            "Archived": Status.RETIRED,
            "Lost/Stolen": Status.LOST_STOLEN,
        },
    },
)
PRESETS: dict[str, Preset] = {SNIPEIT.name: SNIPEIT}


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file: its format, delimiter and how its header names our columns.

    ``delimiter=None`` detects comma, semicolon or tab from the header; ``mapping`` (header →
    column) wins over the preset's; ``ignore_unknown_columns`` leaves other columns out instead
    of refusing the file.
    """

    fmt: str | None = None
    delimiter: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)
    preset: Preset | None = None
    ignore_unknown_columns: bool = False


def parse_mapping(text: str) -> dict[str, str]:
    """``"Asset Tag=asset_tag,Serial=serial_number"`` as a dict; ``ImportFileError`` if bad."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        header, sep, column = (part.strip() for part in pair.partition("="))
        if not sep or not header or not column:
            raise ImportFileError(
                f"Cannot read the mapping {pair!r}: write it as 'Header in the file=column'."
            )
        if column not in COLUMNS:
            raise ImportFileError(
                f"The mapping {pair!r} names no column of ours; columns are: {', '.join(COLUMNS)}."
            )
        mapping[header] = column
    return mapping


def get_preset(name: str | None) -> Preset | None:
    """The preset called ``name``; ``ImportFileError`` listing the presets if there is none."""
    if not name:
        return None
    try:
        return PRESETS[name]
    except KeyError:
        raise ImportFileError(f"Unknown preset {name!r}; presets: {', '.join(PRESETS)}.") from None


# Results -----------------------------------------------------------------------------------


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


def summarise_errors(errors: Iterable[RowError], *, group_from: int = 3) -> list[str]:
    """Errors as lines to show, the same problem on many rows said once with their lines.

    An inventory exported and imported again without ``update`` has one "already exists" per
    row: listed one by one, they hid the two rows that had a real problem.
    """
    groups: dict[tuple[str, str | None, str], list[RowError]] = {}
    for error in errors:
        groups.setdefault((error.unit, error.field, error.message), []).append(error)
    shown: list[tuple[int, str]] = []
    for (unit, field_name, message), members in groups.items():
        if len(members) < group_from:
            shown.extend((error.line, str(error)) for error in members)
            continue
        where = f"{unit}s {_ranges([error.line for error in members])} ({len(members):,} rows)"
        shown.append(
            (
                members[0].line,
                f"{where}, {field_name}: {message}" if field_name else f"{where}: {message}",
            )
        )
    return [text for _, text in sorted(shown, key=lambda item: item[0])]


def _ranges(numbers: list[int]) -> str:
    """``2-5, 7, 9-10`` for 2, 3, 4, 5, 7, 9, 10."""
    parts: list[str] = []
    numbers = sorted(numbers)
    start = end = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == end + 1:
            end = number
            continue
        parts.append(str(start) if start == end else f"{start}-{end}")
        if number is not None:
            start = end = number
    return ", ".join(parts)


@dataclass(frozen=True)
class Row:
    """One record of the file: its position for messages and its cells by column name."""

    line: int
    values: dict[str, Any]
    unit: str = "line"

    def error(self, field: str | None, message: str) -> RowError:
        return RowError(self.line, field, message, self.unit)

    @property
    def where(self) -> str:
        return f"{self.unit} {self.line}"


@dataclass
class Table:
    """A parsed file: our columns it has, its records, and the header's problems.

    ``spreadsheet``: the file is CSV, whose cells may have been neutralised against formulas.
    """

    columns: list[str]
    rows: list[Row]
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    delimiter: str | None = None
    spreadsheet: bool = False


@dataclass(frozen=True)
class Change:
    """An existing workstation a row changes: the new values, and each field's before/after."""

    line: int
    unit: str
    workstation: Workstation
    data: dict[str, Any]
    fields: dict[str, tuple[Any, Any]]

    @property
    def where(self) -> str:
        return f"{self.unit} {self.line}"


@dataclass
class ValidationReport:
    """The outcome of validating a table: what to create and change, or what is wrong.

    ``workstations``: new workstations to create; ``changes``: existing ones to update;
    ``unchanged``: rows that match an existing workstation exactly (not an error).
    """

    workstations: list[Workstation]
    errors: list[RowError]
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return (
            f"{len(self.workstations):,} to create, {len(self.changes):,} to update, "
            f"{self.unchanged:,} unchanged"
        )


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


def read_table(path: Path, *, fmt: str | None = None, options: ReadOptions | None = None) -> Table:
    """Read an inventory file; ``ImportFileError`` when it cannot be read at all."""
    options = options or ReadOptions(fmt=fmt)
    if fmt and not options.fmt:
        options = replace(options, fmt=fmt)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path} is a directory, not a file.") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read ({exc.strerror}).") from None
    return parse_bytes(raw, name=str(path), options=options)


def parse_bytes(raw: bytes, *, name: str, options: ReadOptions) -> Table:
    """Parse a file's content (from disk or an upload); ``name`` is what messages call it."""
    text = _decode(raw, name)
    if not text.strip():
        raise ImportFileError(f"{name} is empty: expected a header row and data rows.")
    if detect_format(Path(name), options.fmt) == "json":
        return _parse_json(text, name, options)
    return _parse_csv(text, name, options)


def _decode(raw: bytes, name: str) -> str:
    for signature, kind in _BINARY_SIGNATURES:
        if raw.startswith(signature):
            raise ImportFileError(
                f"{name} is {kind}, not a CSV or JSON text file; save or export it as "
                "CSV (UTF-8) and try again."
            )
    try:
        # utf-8-sig: spreadsheets often save a byte order mark in front of the header.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"{name}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
            "save the file as UTF-8 and try again."
        ) from None
    if "\x00" in text.partition("\n")[0]:
        # Text has no NUL characters; a header with them is some binary format.
        raise ImportFileError(
            f"{name} is a binary file, not CSV or JSON text; save it as CSV (UTF-8)."
        )
    return text


class _HeaderMap:
    """Our column for each of the file's header names: mapping, then preset, then our names."""

    def __init__(self, options: ReadOptions) -> None:
        self.names: dict[str, str] = {}
        if options.preset is not None:
            self.names.update({k.casefold(): v for k, v in options.preset.columns.items()})
        self.names.update({k.strip().casefold(): v for k, v in options.mapping.items()})

    def column(self, header: str) -> str:
        return self.names.get(header.strip().casefold(), header.strip())


def _check_columns(
    header: list[str], unit: str, options: ReadOptions
) -> tuple[list[str | None], list[str], list[RowError]]:
    """Our column for each header cell (``None``: left out), the headers left out, and the
    header's errors; ``ImportFileError`` when the rows could not be read anyway."""
    header_map = _HeaderMap(options)
    mapped = [header_map.column(name) for name in header]
    if not any(column in COLUMNS for column in mapped):
        hint = (
            f" (with the {options.preset.name} preset: {', '.join(options.preset.columns)})"
            if options.preset
            else "; another product's export needs --map or --preset"
        )
        raise ImportFileError(
            f"{unit} 1 is not a header: expected column names such as "
            f"{', '.join(REQUIRED_COLUMNS)}{hint} (known columns: {', '.join(COLUMNS)})."
        )
    missing = [column for column in REQUIRED_COLUMNS if column not in mapped]
    if missing:
        raise ImportFileError(f"Missing required column(s): {', '.join(missing)}.")
    errors: list[RowError] = []
    ignored: list[str] = []
    used: list[str | None] = []
    seen: set[str] = set()
    for name, column in zip(header, mapped, strict=True):
        if column not in COLUMNS:
            if options.ignore_unknown_columns:
                ignored.append(name)
            else:
                # What to do is said once, on the first unknown column.
                first = not any(error.message.startswith("Unknown column") for error in errors)
                message = (
                    f"Unknown column; known columns are: {', '.join(COLUMNS)}. Map another name "
                    "to one of them (--map 'Header=column'), or leave unknown columns out "
                    "(--ignore-unknown-columns)."
                    if first
                    else "Unknown column."
                )
                errors.append(RowError(1, name.strip() or "(empty)", message, unit))
            used.append(None)
            continue
        if column in seen:
            errors.append(RowError(1, column, "Column appears more than once.", unit))
        seen.add(column)
        used.append(column)
    return used, ignored, errors


def _detect_delimiter(text: str) -> str:
    """The delimiter that splits the header line into the most columns (comma on a tie).

    A header-based rule rather than ``csv.Sniffer``, which guesses from the data rows too and
    can take a character common in them (a colon in MAC addresses) for the delimiter.
    """
    header_line = text.lstrip("\ufeff").partition("\n")[0]
    counts = {
        delimiter: len(next(csv.reader([header_line], delimiter=delimiter), []))
        for delimiter in DELIMITERS
    }
    return max(DELIMITERS, key=lambda delimiter: counts[delimiter])  # first (comma) on a tie


def _parse_csv(text: str, name: str, options: ReadOptions) -> Table:
    delimiter = options.delimiter or _detect_delimiter(text)
    # strict: an unclosed quote is an error, not a cell that swallows the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[Row] = []
    try:
        header = next(reader)
        used, ignored, errors = _check_columns(header, "line", options)
        last_line = reader.line_num
        for cells in reader:
            # A quoted cell may span lines: report the line the record starts on.
            line, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            row = Row(
                line,
                {column: cell for column, cell in zip(used, cells, strict=False) if column},
            )
            if len(cells) != len(header):
                # Too few values as much as too many: a shifted row would fill wrong columns.
                errors.append(
                    row.error(None, f"{len(cells)} values but the header has {len(header)}.")
                )
                continue
            rows.append(row)
    except csv.Error as exc:
        raise ImportFileError(f"{name}, line {reader.line_num}: not valid CSV ({exc}).") from None
    return Table(
        columns=[column for column in used if column],
        rows=rows,
        errors=errors,
        ignored_columns=ignored,
        delimiter=delimiter,
        spreadsheet=True,
    )


def _parse_json(text: str, name: str, options: ReadOptions) -> Table:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{name}, line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    except RecursionError:
        raise ImportFileError(
            f"{name}: JSON nested too deeply; expected an array of flat objects, "
            "one per workstation."
        ) from None
    except ValueError as exc:
        # Python refuses to read an integer of thousands of digits (a denial-of-service guard).
        raise ImportFileError(f"{name}: not valid JSON ({exc}).") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ImportFileError(f"{name}: expected a JSON array of objects, one per workstation.")
    if not items:
        return Table(columns=list(COLUMNS), rows=[])
    first_item: dict[str, int] = {}
    for number, item in enumerate(items, start=1):
        for key in item:
            first_item.setdefault(key, number)
    keys = list(first_item)
    used, ignored, errors = _check_columns(keys, "item", options)
    by_key = {key: column for key, column in zip(keys, used, strict=True) if column}
    # Objects need not all have the same keys: name the first item that has a bad one.
    errors = [
        replace(error, line=first_item.get(error.field or "", 1))
        if error.field in first_item
        else error
        for error in errors
    ]
    rows = []
    for number, item in enumerate(items, start=1):
        row = Row(number, {by_key[k]: v for k, v in item.items() if k in by_key}, unit="item")
        nested = [column for column, value in row.values.items() if isinstance(value, list | dict)]
        errors.extend(
            row.error(column, "Expected a single value, not a list or an object.")
            for column in nested
        )
        if not nested:
            rows.append(row)
    return Table(
        columns=[column for column in used if column],
        rows=rows,
        errors=errors,
        ignored_columns=ignored,
    )


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


def _choices_of(column: str) -> list[tuple[str, str]]:
    return [(str(v), str(label)) for v, label in Workstation._meta.get_field(column).choices]


#: Columns with a fixed set of values, each taken by value or label without regard to case.
_CHOICE_COLUMNS: dict[str, dict[str, str]] = {
    column: {
        spelling.casefold(): value
        for value, label in _choices_of(column)
        for spelling in (value, label)
    }
    for column in COLUMNS
    if Workstation._meta.get_field(column).choices
}


def valid_values(column: str) -> str:
    """``planned (Planned), in_stock (In stock), ...``: what an error about a choice lists."""
    return ", ".join(f"{value} ({label})" for value, label in _choices_of(column))


def neutralise(value: str) -> str:
    """A cell a spreadsheet shows as text: ``'`` before what it would run as a formula.

    A value that already starts with apostrophes before such a character gets one more, so
    that the import, which takes exactly one off, gives back the value as it was.
    """
    if value.lstrip("'")[:1] in FORMULA_PREFIXES and value.lstrip("'"):
        return "'" + value
    return value


def validate_table(
    table: Table,
    *,
    update: bool = False,
    update_hint: str = "import with --update to change it",
    preset: Preset | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Validate every row; returns what to create and change, or every error found.

    ``update``: a row whose asset tag exists changes that workstation (otherwise it is an
    error, whose message ends with ``update_hint``). ``preset``: its names for our values.
    ``progress(done, total)`` is called after each row, for a progress indicator.
    """
    validator = _RowValidator(table, update=update, update_hint=update_hint, preset=preset)
    errors = list(table.errors)
    workstations: list[Workstation] = []
    changes: list[Change] = []
    unchanged = 0
    total = len(table.rows)
    for done, row in enumerate(table.rows, start=1):
        outcome, row_errors = validator.validate(row)
        errors.extend(row_errors)
        if not row_errors:
            if isinstance(outcome, Change):
                if outcome.fields:
                    changes.append(outcome)
                else:
                    unchanged += 1
            else:
                workstations.append(outcome)
        if progress is not None:
            progress(done, total)
    errors.extend(validator.taken_in_database())
    errors.sort(key=RowError.sort_key)
    if errors:
        return ValidationReport(workstations=[], errors=errors)
    return ValidationReport(
        workstations=workstations, errors=[], changes=changes, unchanged=unchanged
    )


class _RowValidator:
    """Validates rows one by one, remembering what earlier rows of the file used.

    ``full_clean`` runs on every row for the field checks and the rules of ``clean()``, but
    without its per-row uniqueness and constraint queries (up to five per row, most of an
    import's time): uniqueness against the database is checked once for the whole file by
    ``taken_in_database``, and the check constraints repeat rules ``clean()`` already enforces
    with a message on the field. The database's constraints stay the last word at insert time.
    """

    def __init__(
        self, table: Table, *, update: bool, update_hint: str, preset: Preset | None
    ) -> None:
        self.update = update
        self.update_hint = update_hint
        self.spreadsheet = table.spreadsheet
        self.file_columns = [column for column in table.columns if column in COLUMNS]
        # Two queries for the whole file instead of two per row.
        self.locations = {location.name: location for location in Location.objects.all()}
        self.users = {
            user.username: user
            for user in get_user_model().objects.only("pk", "username", "first_name", "last_name")
        }
        self.users_by_full_name: dict[str, list[Any]] = {}
        for user in self.users.values():
            full_name = f"{user.first_name} {user.last_name}".strip().casefold()
            if full_name:
                self.users_by_full_name.setdefault(full_name, []).append(user)
        self.choices = {
            column: {
                **spellings,
                **{
                    k.casefold(): v
                    for k, v in (preset.values.get(column, {}) if preset else {}).items()
                },
            }
            for column, spellings in _CHOICE_COLUMNS.items()
        }
        self.serializer = WorkstationImportSerializer()
        # A row that updates names only the columns it changes: the others keep their values.
        self.partial_serializer = WorkstationImportSerializer(partial=True)
        self.existing = self._existing(table) if MATCH_COLUMN in self.file_columns else {}
        self.first_seen: dict[str, dict[Any, Row]] = {column: {} for column in _UNIQUE_COLUMNS}
        #: The workstation each row updates (by line), so its own values are not "taken".
        self.own_pk: dict[int, int] = {}

    def _existing(self, table: Table) -> dict[str, Workstation]:
        """The workstations the file's asset tags name, in a query per chunk of rows."""
        tags = sorted(
            {
                str(cell)
                for row in table.rows
                if (cell := _cell(row.values.get(MATCH_COLUMN))) is not None
            }
        )
        found: dict[str, Workstation] = {}
        for start in range(0, len(tags), _LOOKUP_CHUNK):
            chunk = tags[start : start + _LOOKUP_CHUNK]
            for workstation in workstation_list().filter(**{f"{MATCH_COLUMN}__in": chunk}):
                found[workstation.asset_tag] = workstation
        return found

    def validate(self, row: Row) -> tuple[Workstation | Change, list[RowError]]:
        errors: dict[str, str] = {}  # one message per column: the first problem is the one to fix
        values = self._prepare(row, errors)
        tag = _cell(values.get(MATCH_COLUMN))
        existing = self.existing.get(str(tag)) if tag is not None else None
        if existing is not None and not self.update:
            errors[MATCH_COLUMN] = (
                f"{_UNIQUE_MESSAGES[MATCH_COLUMN]} To change existing workstations, "
                f"{self.update_hint}."
            )
            # Its other values are that workstation's own: one error says it all.
            self.own_pk[row.line] = existing.pk
            existing = None

        if existing is not None:
            self.own_pk[row.line] = existing.pk
            workstation = self._copy(existing)
            for column, value in self._convert(values, errors, partial=True).items():
                setattr(workstation, column, value)
            # A column that is in the file but empty clears the field, where it may be empty;
            # a field that may not (status, form factor) keeps its value.
            for column in self.file_columns:
                if column in _RELATED_COLUMNS or column in errors:
                    continue
                if _cell(values.get(column)) is None:
                    model_field = Workstation._meta.get_field(column)
                    if model_field.null:
                        setattr(workstation, column, None)
                    elif model_field.blank:
                        setattr(workstation, column, "")
        else:
            workstation = Workstation(**self._convert(values, errors, partial=False))
        self._resolve_related(row, values, workstation, errors)

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

        row_errors = [
            row.error(None if column == NON_FIELD_ERRORS else column, message)
            for column, message in errors.items()
        ]
        if existing is not None:
            return self._change(row, existing, workstation), row_errors
        return workstation, row_errors

    def taken_in_database(self) -> Iterator[RowError]:
        """Rows whose unique values another workstation has, in a few queries per file."""
        for column in _UNIQUE_COLUMNS:
            message = _UNIQUE_MESSAGES[column]
            values = list(self.first_seen[column])
            for start in range(0, len(values), _LOOKUP_CHUNK):
                chunk = values[start : start + _LOOKUP_CHUNK]
                taken = workstation_list().filter(**{f"{column}__in": chunk})
                for value, pk in taken.values_list(column, "pk"):
                    row = self.first_seen[column][value]
                    if self.own_pk.get(row.line) != pk:  # not the one the row updates
                        yield row.error(column, message)

    @staticmethod
    def _copy(existing: Workstation) -> Workstation:
        """A detached copy to validate the row's values on, leaving ``existing`` as read."""
        copy = Workstation(
            **{f.attname: getattr(existing, f.attname) for f in Workstation._meta.concrete_fields}
        )
        copy._state.adding = False
        return copy

    def _change(self, row: Row, existing: Workstation, workstation: Workstation) -> Change:
        fields: dict[str, tuple[Any, Any]] = {}
        data: dict[str, Any] = {}
        for column in self.file_columns:
            model_field = Workstation._meta.get_field(column)
            before = getattr(existing, model_field.attname)
            after = getattr(workstation, model_field.attname)
            if before == after:
                continue
            if column in _RELATED_COLUMNS:
                natural_key = columns.NATURAL_KEYS[column]
                old, new = getattr(existing, column), getattr(workstation, column)
                fields[column] = (
                    getattr(old, natural_key) if old is not None else None,
                    getattr(new, natural_key) if new is not None else None,
                )
                data[column] = new
            else:
                fields[column] = (before, after)
                data[column] = after
        return Change(row.line, row.unit, existing, data, fields)

    def _prepare(self, row: Row, errors: dict[str, str]) -> dict[str, Any]:
        """The row's cells with formulas refused or un-neutralised, choices by value, and
        thousands separators taken out of numbers."""
        values: dict[str, Any] = {}
        for column, raw in row.values.items():
            value = _cell(raw)
            if isinstance(value, str):
                if self.spreadsheet:
                    if value[:1] in FORMULA_PREFIXES and column not in FREE_TEXT_COLUMNS:
                        errors[column] = (
                            f"{value!r} starts with {value[:1]!r}, which a spreadsheet runs as "
                            "a formula; write it with an apostrophe in front "
                            f"('{value}) to keep it as text."
                        )
                        continue
                    if _NEUTRALISED.match(value):
                        value = value[1:]
                if column in self.choices:
                    value = self.choices[column].get(value.casefold(), value)
                elif isinstance(
                    Workstation._meta.get_field(column),
                    models.DecimalField | models.IntegerField,
                ) and _THOUSANDS.match(value):
                    value = value.replace(",", "")
            values[column] = value
        return values

    def _convert(
        self, values: dict[str, Any], errors: dict[str, str], *, partial: bool
    ) -> dict[str, Any]:
        """Types and formats, through the API serializer's fields."""
        serializer = self.partial_serializer if partial else self.serializer
        data = {
            column: cell
            for column, value in values.items()
            if column in COLUMNS
            and column not in _RELATED_COLUMNS
            and column not in errors
            and (cell := _cell(value)) is not None
        }
        try:
            return dict(serializer.run_validation(data))
        except DRFValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {NON_FIELD_ERRORS: exc.detail}
            for column, messages in detail.items():
                key = NON_FIELD_ERRORS if column == api_settings.NON_FIELD_ERRORS_KEY else column
                message = _first_message(messages)
                if key in _CHOICE_COLUMNS and key in data:
                    message = (
                        f"{data[key]!r} is not a valid {key.replace('_', ' ')}; valid values: "
                        f"{valid_values(key)}."
                    )
                errors.setdefault(key, message)
        # The serializer rejects the row as a whole: keep the columns that were fine, so that
        # full_clean can still report what else is wrong with them.
        converted = {}
        for column, value in data.items():
            if column not in errors:  # passed the serializer's check just now
                converted[column] = serializer.fields[column].run_validation(value)
        return converted

    def _resolve_related(
        self, row: Row, values: dict[str, Any], workstation: Workstation, errors: dict[str, str]
    ) -> None:
        if "location" in values and "location" not in errors:
            name = _cell(values["location"])
            workstation.location = None
            if name is not None:
                workstation.location = self.locations.get(str(name))
                if workstation.location is None:
                    errors["location"] = f"No location is named {str(name)!r}."
        if "assigned_to" in values and "assigned_to" not in errors:
            username = _cell(values["assigned_to"])
            workstation.assigned_to = None
            if username is not None:
                user = self.users.get(str(username))
                if user is None:
                    # Other products export the assignee's full name ("Checked Out To").
                    same_name = self.users_by_full_name.get(str(username).casefold(), [])
                    user = same_name[0] if len(same_name) == 1 else None
                if user is None:
                    errors["assigned_to"] = f"No user has the username {str(username)!r}."
                else:
                    workstation.assigned_to = user


# Importing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    created: list[Workstation]
    updated: list[Workstation]
    unchanged: int


def apply_report(report: ValidationReport, *, actor: Any = None) -> ImportResult:
    """Create and update what a clean report says, all in one transaction (the service's),
    recorded in the history as ``actor``'s (the admin's user; a command's own by default).

    Every row already passed ``full_clean``; a unique value taken by a concurrent writer in
    between still fails the whole import (``ValidationError``, nothing written).
    """
    if report.errors:
        raise ValueError("Refusing to import a report that has errors.")
    created, updated = services.workstation_bulk_import(
        create=report.workstations,
        update=[(change.workstation, change.data) for change in report.changes],
        actor=actor,
    )
    return ImportResult(created=created, updated=updated, unchanged=report.unchanged)


def create_workstations(report: ValidationReport) -> list[Workstation]:
    """Create the workstations of a clean report, all in one transaction."""
    return apply_report(report).created


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
    """Write a header and one row per workstation, cells neutralised against formulas;
    returns the number of rows."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for workstation in workstations:
        row = export_row(workstation)
        writer.writerow(
            ["" if row[column] is None else neutralise(str(row[column])) for column in COLUMNS]
        )
        count += 1
    return count


def write_json(stream: TextIO, workstations: Iterable[Workstation]) -> int:
    """Write a JSON array, one object per line, without holding the list in memory.

    JSON is not opened by spreadsheets: values are written as they are.
    """
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
