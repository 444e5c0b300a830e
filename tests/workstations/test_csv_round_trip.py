"""The CSV round trip of issue 12: export, edit in a spreadsheet, import --update.

Also what a file from elsewhere needs (labels, delimiters, column mapping, the Snipe-IT
preset), formula injection both ways, and malformed files ending in a clear error.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import importing
from workstations.models import Workstation
from workstations.selectors import workstation_list

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data"


def run(*args: str, **options) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command(*args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


def snapshot() -> dict[str, tuple]:
    """Every workstation's file row and its last change time, by asset tag."""
    return {
        ws.asset_tag: (importing.export_row(ws), ws.updated_at)
        for ws in workstation_list().order_by("asset_tag")
    }


def export(path: Path) -> list[dict[str, str]]:
    run("export_workstations", "--output", str(path))
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def write(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def error_lines(excinfo: pytest.ExceptionInfo) -> list[str]:
    return [line.strip() for line in str(excinfo.value).splitlines()[1:]]


# The round trip ------------------------------------------------------------------------------


def test_export_edit_three_rows_import_update_changes_exactly_those_rows(tmp_path):
    """Before: --update did not exist, and the import refused every row as existing."""
    run("seed_demo", "--count", "40")
    path = tmp_path / "inventory.csv"
    rows = export(path)
    before = snapshot()
    in_stock = next(row for row in rows if row["status"] == "in_stock")
    other_location = next(r["location"] for r in rows if r["location"] != rows[1]["location"])
    edits = {
        rows[0]["asset_tag"]: {"department": "Facilities"},
        rows[1]["asset_tag"]: {"location": other_location, "notes": '=HYPERLINK("x")'},
        in_stock["asset_tag"]: {"status": "In repair"},  # the admin's label
    }
    for row in rows:
        row.update(edits.get(row["asset_tag"], {}))
    write(path, rows)

    out, _ = run("import_workstations", str(path), "--update", "--dry-run")

    assert "0 to create, 3 to update, 37 unchanged; nothing written" in out
    assert f"line 2, {rows[0]['asset_tag']}: department" in out
    assert f"line 3, {rows[1]['asset_tag']}: location, notes" in out
    assert f"{in_stock['asset_tag']}: status" in out
    assert snapshot() == before

    out, _ = run("import_workstations", str(path), "--update")

    assert "Imported 0 workstations" in out and "updated 3, 37 unchanged" in out
    after = snapshot()
    changed = {tag for tag in before if before[tag] != after[tag]}
    assert changed == set(edits)
    assert after[rows[0]["asset_tag"]][0]["department"] == "Facilities"
    assert after[rows[1]["asset_tag"]][0]["location"] == other_location
    assert after[rows[1]["asset_tag"]][0]["notes"] == '=HYPERLINK("x")'
    assert after[in_stock["asset_tag"]][0]["status"] == "in_repair"

    # A second run has nothing left to do: no row is an error, none changes.
    out, _ = run("import_workstations", str(path), "--update")
    assert "updated 0, 40 unchanged" in out
    assert snapshot() == after


def test_update_creates_new_rows_and_changes_existing_ones_in_one_import(tmp_path):
    WorkstationFactory(asset_tag="AT-1", hostname="ws-1", department="Sales")
    path = tmp_path / "in.csv"
    write(
        path,
        [
            {"asset_tag": "AT-1", "hostname": "ws-1", "department": "Finance"},
            {"asset_tag": "AT-2", "hostname": "ws-2", "department": "Finance"},
        ],
    )

    out, _ = run("import_workstations", str(path), "--update", "-v", "2")

    assert "Imported 1 workstations" in out and "updated 1, 0 unchanged" in out
    assert "line 2, AT-1: department: 'Sales' → 'Finance'" in out
    assert dict(Workstation.objects.values_list("asset_tag", "department")) == {
        "AT-1": "Finance",
        "AT-2": "Finance",
    }


def test_update_reports_only_the_real_problems_and_writes_nothing(tmp_path):
    """Before: 'already exists' for every row buried the bad MAC and the duplicate host."""
    run("seed_demo", "--count", "30")
    path = tmp_path / "inventory.csv"
    rows = export(path)
    before = snapshot()
    rows[0]["department"] = "Facilities"  # a good change, which must not be written either
    rows[4]["mac_address"] = "00:11:22:33:44"  # line 6
    rows[9]["hostname"] = rows[2]["hostname"]  # line 11: the host name of line 4
    write(path, rows)

    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(path), "--update")

    assert error_lines(excinfo) == [
        "line 6, mac_address: Enter a valid MAC address, such as 00:1A:2B:3C:4D:5E.",
        f"line 11, hostname: {rows[2]['hostname']!r} already appears on line 4.",
    ]
    assert str(excinfo.value).startswith("2 errors in ")
    assert snapshot() == before


def test_validating_an_update_runs_a_constant_number_of_queries(tmp_path):
    def queries(count: int) -> int:
        Workstation.objects.all().delete()
        WorkstationFactory.create_batch(count, assigned_to=UserFactory(username="jane"),
                                        status="in_repair")  # fmt: skip
        path = tmp_path / f"in-{count}.csv"
        rows = export(path)
        for row in rows:
            row["department"] = "Changed"
        write(path, rows)
        with CaptureQueriesContext(connection) as context:
            run("import_workstations", str(path), "--update", "--dry-run")
        return len(context)

    assert queries(5) == queries(40)


def test_update_refuses_a_value_another_workstation_has(tmp_path):
    WorkstationFactory(asset_tag="AT-1", hostname="ws-1")
    WorkstationFactory(asset_tag="AT-2", hostname="ws-2", serial_number="SN-2")
    path = write(tmp_path / "in.csv", [{"asset_tag": "AT-1", "hostname": "ws-2"}])

    with pytest.raises(CommandError, match="line 2, hostname: Workstation with this Hostname"):
        run("import_workstations", str(path), "--update")
    assert Workstation.objects.get(asset_tag="AT-1").hostname == "ws-1"


def test_update_empty_cells_clear_what_may_be_empty_and_keep_the_rest(tmp_path):
    WorkstationFactory(asset_tag="AT-1", hostname="ws-1", department="Sales", ram_gb=16)
    path = write(
        tmp_path / "in.csv",
        [{"asset_tag": "AT-1", "hostname": "ws-1", "department": "", "ram_gb": "", "status": ""}],
    )
    run("import_workstations", str(path), "--update")
    workstation = Workstation.objects.get(asset_tag="AT-1")
    assert (workstation.department, workstation.ram_gb) == ("", None)
    assert workstation.status == "staged"  # a status may not be empty: kept
    assert workstation.manufacturer == "Dell"  # not a column of the file: kept


def test_without_update_existing_asset_tags_are_errors_that_say_to_use_update(tmp_path):
    WorkstationFactory(asset_tag="AT-1", hostname="ws-1")
    path = write(tmp_path / "in.csv", [{"asset_tag": "AT-1", "hostname": "ws-1"}])
    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(path))
    assert error_lines(excinfo) == [
        "line 2, asset_tag: Workstation with this Asset tag already exists. To change existing "
        "workstations, run the import again with --update."
    ]


def test_without_update_the_existing_rows_are_one_line_and_the_real_problems_stand_out(tmp_path):
    """Before: one 'already exists' per row (904 of them), the two real problems among them."""
    run("seed_demo", "--count", "30")
    path = tmp_path / "inventory.csv"
    rows = export(path)
    rows[4]["mac_address"] = "00:11:22:33:44"  # line 6
    rows[9]["hostname"] = rows[2]["hostname"]  # line 11
    write(path, rows)

    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(path))

    assert str(excinfo.value).startswith("32 errors in ")
    assert error_lines(excinfo) == [
        "lines 2-31 (30 rows), asset_tag: Workstation with this Asset tag already exists. To "
        "change existing workstations, run the import again with --update.",
        "line 6, mac_address: Enter a valid MAC address, such as 00:1A:2B:3C:4D:5E.",
        f"line 11, hostname: {rows[2]['hostname']!r} already appears on line 4.",
    ]


def test_errors_are_grouped_only_when_the_same_problem_repeats():
    errors = [
        importing.RowError(line, "location", "No location is named 'Mars'.")
        for line in (2, 3, 4, 7, 9, 10)
    ] + [importing.RowError(5, "hostname", "Bad."), importing.RowError(6, "hostname", "Bad.")]
    assert importing.summarise_errors(errors) == [
        "lines 2-4, 7, 9-10 (6 rows), location: No location is named 'Mars'.",
        "line 5, hostname: Bad.",
        "line 6, hostname: Bad.",
    ]


# Values, delimiters, columns ---------------------------------------------------------------


def test_labels_are_accepted_in_any_case_and_errors_list_the_valid_values(tmp_path):
    UserFactory(username="jane")
    good = write(
        tmp_path / "good.csv",
        [
            {"asset_tag": "A1", "hostname": "h1", "status": "Deployed", "assigned_to": "jane",
             "form_factor": "all-in-one"},
            {"asset_tag": "A2", "hostname": "h2", "status": "IN STOCK", "assigned_to": "",
             "form_factor": "Thin client"},
            {"asset_tag": "A3", "hostname": "h3", "status": "lost or stolen", "assigned_to": "",
             "form_factor": "laptop"},
        ],
    )  # fmt: skip
    run("import_workstations", str(good))
    assert dict(Workstation.objects.values_list("asset_tag", "status")) == {
        "A1": "deployed",
        "A2": "in_stock",
        "A3": "lost_stolen",
    }
    assert Workstation.objects.get(asset_tag="A1").form_factor == "all_in_one"

    bad = write(
        tmp_path / "bad.csv",
        [{"asset_tag": "B1", "hostname": "b1", "status": "Broken", "form_factor": "Phone"}],
    )
    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(bad))
    message = str(excinfo.value)
    assert (
        "line 2, form_factor: 'Phone' is not a valid form factor; valid values: desktop "
        "(Desktop), laptop (Laptop), all_in_one (All-in-one), tower (Tower), thin_client "
        "(Thin client)." in message
    )
    assert "line 2, status: 'Broken' is not a valid status; valid values: planned (Planned), "
    assert "in_stock (In stock)" in message and "lost_stolen (Lost or stolen)." in message


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab"), (",", None)])
def test_the_delimiter_is_detected_or_given(tmp_path, delimiter, name):
    """Before: a semicolon-separated file (Excel in many locales) was 'not a header'."""
    rows = [{"asset_tag": "A1", "hostname": "h1", "notes": "one, two; three"}]
    path = write(tmp_path / "in.csv", rows, delimiter=delimiter)
    run("import_workstations", str(path), "--dry-run")
    if name:
        run("import_workstations", str(path), "--delimiter", name)
    else:
        run("import_workstations", str(path))
    assert Workstation.objects.get().notes == "one, two; three"


def test_a_given_delimiter_wins_over_detection(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("asset_tag;hostname\nA1;h1\n")
    with pytest.raises(CommandError, match="line 1 is not a header"):
        run("import_workstations", str(path), "--delimiter", "comma")


def test_map_reads_columns_named_otherwise(tmp_path):
    path = write(tmp_path / "in.csv", [{"Tag": "A1", "Host Name": "h1", "Dept": "IT"}])
    run(
        "import_workstations",
        str(path),
        "--map",
        "Tag=asset_tag, host name=hostname,Dept=department",
    )
    workstation = Workstation.objects.get()
    assert (workstation.asset_tag, workstation.hostname, workstation.department) == (
        "A1",
        "h1",
        "IT",
    )


@pytest.mark.parametrize(
    ("mapping", "message"),
    [("Tag", "write it as 'Header in the file=column'"), ("Tag=colour", "names no column")],
)
def test_a_bad_map_is_a_clear_error(tmp_path, mapping, message):
    path = write(tmp_path / "in.csv", [{"asset_tag": "A1", "hostname": "h1"}])
    with pytest.raises(CommandError, match=message):
        run("import_workstations", str(path), "--map", mapping)


def test_unknown_columns_are_named_or_left_out_when_asked(tmp_path):
    path = write(tmp_path / "in.csv", [{"asset_tag": "A1", "hostname": "h1", "colour": "red",
                                       "size": "L"}])  # fmt: skip
    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(path))
    lines = error_lines(excinfo)
    assert lines[0].startswith("line 1, colour: Unknown column; known columns are: asset_tag,")
    assert "--ignore-unknown-columns" in lines[0]
    assert lines[1] == "line 1, size: Unknown column."

    out, _ = run("import_workstations", str(path), "--ignore-unknown-columns")
    assert "Ignored columns: colour, size" in out
    assert Workstation.objects.get().hostname == "h1"


# Snipe-IT -------------------------------------------------------------------------------------


def test_a_snipeit_asset_export_imports_with_its_preset():
    """Before: its header was refused, and so were "1,249.00" and its status names."""
    london = LocationFactory(name="London HQ / Floor 4")
    elena = UserFactory(username="elena.adams", first_name="Elena", last_name="Adams")
    path = DATA / "snipeit_assets.csv"

    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(path), "--preset", "snipeit")
    unknown = [line for line in error_lines(excinfo) if "Unknown column" in line]
    assert [line.split(":")[0] for line in unknown] == [
        "line 1, Company",
        "line 1, Model No.",
        "line 1, Category",
        "line 1, Order Number",
        "line 1, Supplier",
        "line 1, Warranty",
        "line 1, Created At",
    ]

    out, _ = run(
        "import_workstations", str(path), "--preset", "snipeit", "--ignore-unknown-columns"
    )

    assert "Imported 6 workstations" in out
    by_tag = {ws.asset_tag: ws for ws in Workstation.objects.all()}
    assert {tag: ws.status for tag, ws in by_tag.items()} == {
        "SNIPE-0001": "deployed",
        "SNIPE-0002": "in_stock",
        "SNIPE-0003": "in_repair",
        "SNIPE-0004": "retired",
        "SNIPE-0005": "lost_stolen",
        "SNIPE-0006": "in_repair",
    }
    first = by_tag["SNIPE-0001"]
    assert first.assigned_to == elena  # "Checked Out To" holds the full name
    assert first.location == london
    assert (first.hostname, first.serial_number, first.model_name) == (
        "lon-lt-7001",
        "SNP7001A",
        "Latitude 5440",
    )
    assert first.purchase_cost == Decimal("1249.00")
    assert by_tag["SNIPE-0005"].purchase_cost == Decimal("2399.00")
    assert by_tag["SNIPE-0006"].purchase_cost == Decimal("1099.50")
    assert str(first.warranty_expires) == "2027-03-04"
    assert first.notes == "Docked at desk 4.12"

    # The same export again, with --update: nothing to change.
    out, _ = run(
        "import_workstations", str(path), "--preset", "snipeit", "--ignore-unknown-columns",
        "--update",
    )  # fmt: skip
    assert "updated 0, 6 unchanged" in out


def test_thousands_separators_are_read_only_in_whole_groups(tmp_path):
    path = write(
        tmp_path / "in.csv",
        [
            {"asset_tag": "A1", "hostname": "h1", "purchase_cost": "12,345.50", "ram_gb": "16"},
            {"asset_tag": "A2", "hostname": "h2", "purchase_cost": "1,5", "ram_gb": "1,024"},
        ],
    )
    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(path))
    assert [line.split(":")[0] for line in error_lines(excinfo)] == ["line 3, purchase_cost"]


# Formula injection ----------------------------------------------------------------------------


FORMULAS = ['=HYPERLINK("http://evil.example","click")', "+1+2", "-3+4", "@SUM(A1)", "\t=1"]


def test_the_csv_export_neutralises_cells_a_spreadsheet_would_run(tmp_path):
    """Before: '=HYPERLINK(...)' in notes was written as it is, and ran in the spreadsheet."""
    for number, formula in enumerate(FORMULAS):
        WorkstationFactory(asset_tag=f"F{number}", notes=formula, department=formula)
    WorkstationFactory(asset_tag="F9", notes="'=quoted already", department="plain")

    rows = {row["asset_tag"]: row for row in export(tmp_path / "out.csv")}

    for number, formula in enumerate(FORMULAS):
        assert rows[f"F{number}"]["notes"] == "'" + formula
        assert rows[f"F{number}"]["department"] == "'" + formula
    assert rows["F9"]["notes"] == "''=quoted already"
    assert rows["F9"]["department"] == "plain"
    # JSON is read by programs, not spreadsheets: values as they are.
    out, _ = run("export_workstations", "--format", "json")
    assert {row["notes"] for row in json.loads(out)} == {*FORMULAS, "'=quoted already"}


def test_a_neutralised_export_imports_back_unchanged(tmp_path):
    # (Leading whitespace is trimmed by every write path, the API's too: left out here.)
    for number, formula in enumerate(FORMULAS[:-1]):
        WorkstationFactory(asset_tag=f"F{number}", notes=formula, department=formula.strip())
    WorkstationFactory(asset_tag="F9", notes="'=quoted already")
    path = tmp_path / "out.csv"
    export(path)
    before = snapshot()

    out, _ = run("import_workstations", str(path), "--update")

    assert "updated 0, 5 unchanged" in out
    assert snapshot() == before
    Workstation.objects.all().delete()
    run("import_workstations", str(path))
    assert {tag: row for tag, (row, _) in snapshot().items()} == {
        tag: row for tag, (row, _) in before.items()
    }


def test_the_import_refuses_a_formula_outside_notes_and_keeps_one_in_notes(tmp_path):
    """Before: '=HYPERLINK(...)' was accepted in any column."""
    path = write(
        tmp_path / "in.csv",
        [
            {"asset_tag": "A1", "hostname": "h1", "department": '=HYPERLINK("x")', "notes": ""},
            {"asset_tag": "A2", "hostname": "h2", "department": "@cmd", "notes": ""},
            {"asset_tag": "A3", "hostname": "h3", "department": "", "notes": "=1+1"},
        ],
    )
    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(path))
    assert error_lines(excinfo) == [
        "line 2, department: '=HYPERLINK(\"x\")' starts with '=', which a spreadsheet runs as a "
        'formula; write it with an apostrophe in front (\'=HYPERLINK("x")) to keep it as text.',
        "line 3, department: '@cmd' starts with '@', which a spreadsheet runs as a formula; "
        "write it with an apostrophe in front ('@cmd) to keep it as text.",
    ]
    assert not Workstation.objects.exists()


# Malformed files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
        ("big.json", b"[" + b"1" * 5_000 + b"]", "not valid JSON"),
        ("in.json", b'[{"asset_tag": ["A1"], "hostname": "h1"}]', "item 1, asset_tag: Expected a"),
        ("in.json", b'{"asset_tag": "A1"}', "JSON array of objects"),
        ("in.json", b"[1, 2]", "JSON array of objects"),
        ("in.json", b'[{"asset_tag": "A1", "hostname": "h1"', "not valid JSON"),
        ("in.csv", b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)), r"\.xlsx"),
        ("in.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), r"\.xls workbook"),
        ("in.csv", "asset_tag,hostname\nA1,h1\n".encode("utf-16"), "UTF-16 text"),
        ("in.csv", b"\x00\x01\x02asset_tag\x00\n\x00", "binary file"),
        ("in.csv", b"", "is empty"),
        ("in.csv", b"asset_tag,hostname,notes\nA1,h1\n", "line 2: 2 values but the header has 3"),
        ("in.csv", b'asset_tag,hostname\nA1,"h1\n', r"line 2: not valid CSV \(unexpected end"),
        ("in.csv", b'asset_tag,hostname\nA1,"h1"x\n', r"line 2: not valid CSV"),
    ],
)
def test_malformed_files_end_in_a_clear_error(tmp_path, name, content, message):
    """Before: a deeply nested JSON file ended in a RecursionError traceback (and a very long
    number in a ValueError one); a short CSV row filled the columns it had."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        run("import_workstations", str(path))
    assert not Workstation.objects.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [("deep.json", b"[" * 100_000 + b"]" * 100_000), ("book.csv", b"PK\x03\x04" + bytes(300))],
)
def test_a_malformed_file_exits_non_zero_without_a_traceback(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": ""}
    env.pop("DJANGO_SETTINGS_MODULE")
    result = subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "import_workstations",
         str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("CommandError: ")


def test_write_csv_round_trips_values_through_the_parser():
    """The writer's neutralising and the reader's undoing are exact inverses."""
    values = ["=1", "''=2", "'plain", "-", "a=b", "", "'", "@"]
    for value in values:
        cell = importing.neutralise(value)
        row = next(csv.reader(io.StringIO(cell + "\n")), None) or [""]
        undone = row[0][1:] if importing._NEUTRALISED.match(row[0]) else row[0]
        assert undone == value, value
