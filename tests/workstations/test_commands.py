"""Management commands: seed_demo, bootstrap, import_workstations, export_workstations."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import importing, services
from workstations.choices import STATUSES_FORBIDDING_ASSIGNEE, STATUSES_REQUIRING_ASSIGNEE
from workstations.management.commands import _demo, import_workstations
from workstations.models import Location, Workstation
from workstations.selectors import workstation_list

pytestmark = pytest.mark.django_db

User = get_user_model()


def run(*args: str, **options) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command(*args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


def exported() -> list[dict]:
    return [importing.export_row(ws) for ws in workstation_list().order_by("asset_tag")]


def write_csv(path: Path, header: list[str], *rows: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def wipe() -> None:
    Workstation.objects.all().delete()
    Location.objects.all().delete()
    User.objects.all().delete()


# seed_demo ---------------------------------------------------------------------------------


def test_seed_demo_same_seed_gives_identical_rows():
    run("seed_demo", "--count", "80", "--seed", "7")
    first = exported()
    wipe()
    run("seed_demo", "--count", "80", "--seed", "7")
    assert exported() == first
    wipe()
    run("seed_demo", "--count", "80", "--seed", "8")
    assert exported() != first


def test_seed_demo_rows_are_valid_and_follow_the_status_rules():
    out, _ = run("seed_demo")

    assert "Created 300 workstations (WS-000001 to WS-000300)" in out
    assert Location.objects.count() == 6
    employees = User.objects.all()
    assert employees.count() == 40
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+", u.username) for u in employees)
    assert not any(u.has_usable_password() for u in employees)
    workstations = list(workstation_list())
    assert len(workstations) == 300
    for workstation in workstations:
        workstation.full_clean()
        if workstation.status in STATUSES_REQUIRING_ASSIGNEE:
            assert workstation.assigned_to_id is not None
        if workstation.status in STATUSES_FORBIDDING_ASSIGNEE:
            assert workstation.assigned_to_id is None
        assert re.fullmatch(r"WS-\d{6}", workstation.asset_tag)
        assert workstation.manufacturer in {"Dell", "HP", "Lenovo", "Apple"}
        assert (workstation.os == "macOS") == (workstation.manufacturer == "Apple")
    statuses = {w.status for w in workstations}
    assert {"deployed", "in_stock", "retired"} <= statuses
    deployed = sum(w.status == "deployed" for w in workstations)
    assert 0.5 < deployed / 300 < 0.8  # most of a fleet in use is deployed


def test_seed_demo_writes_in_batches_through_the_service(monkeypatch):
    calls = []
    real = services.workstation_bulk_create

    def spy(**kwargs):
        calls.append(len(kwargs["workstations"]))
        return real(**kwargs)

    monkeypatch.setattr(services, "workstation_bulk_create", spy)
    monkeypatch.setattr(_demo, "BATCH_SIZE", 40)

    _, err = run("seed_demo", "--count", "100")

    assert calls == [40, 40, 20]
    assert "100/100 workstations" in err
    assert Workstation.objects.count() == 100


def test_seed_demo_refuses_to_run_twice_unless_appending():
    run("seed_demo", "--count", "30")
    with pytest.raises(CommandError, match="--append"):
        run("seed_demo", "--count", "30")
    assert Workstation.objects.count() == 30

    out, _ = run("seed_demo", "--count", "20", "--append", "--seed", "99")

    assert "WS-000031 to WS-000050" in out
    assert Workstation.objects.count() == 50
    assert Workstation.objects.values("hostname").distinct().count() == 50
    assert Workstation.objects.values("serial_number").distinct().count() == 50
    assert Location.objects.count() == 6  # reused, not duplicated


def test_seed_demo_appends_after_imported_demo_numbers():
    WorkstationFactory(asset_tag="WS-000500", hostname="lon-lt-000900")
    run("seed_demo", "--count", "3", "--append")
    assert Workstation.objects.filter(asset_tag="WS-000901").exists()


def test_seed_demo_rejects_a_negative_count():
    with pytest.raises(CommandError, match="--count"):
        run("seed_demo", "--count", "-1")


# bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_seeds_creates_a_superuser_once_and_the_groups():
    out, _ = run("bootstrap")

    assert Workstation.objects.count() == 300
    password = re.search(r"Password:\s+(\S+)", out).group(1)
    assert "http://127.0.0.1:8000/admin/" in out
    assert ".venv/bin/python manage.py changepassword admin" in out
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(password)
    assert len(password) >= 16

    editors = Group.objects.get(name="Inventory editors")
    assert set(editors.permissions.values_list("codename", flat=True)) == {
        f"{action}_{model}"
        for action in ("add", "change", "delete", "view")
        for model in ("workstation", "location")
    }
    readers = Group.objects.get(name="Inventory readers")
    assert set(readers.permissions.values_list("codename", flat=True)) == {
        "view_workstation",
        "view_location",
    }

    again, _ = run("bootstrap")

    assert "Superuser exists" in again
    assert "assword" not in again
    assert User.objects.filter(is_superuser=True).count() == 1
    assert Workstation.objects.count() == 300
    assert Group.objects.filter(name__startswith="Inventory").count() == 2


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("127.0.0.1:9123", "http://127.0.0.1:9123/admin/"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080/admin/"),
        ("[::1]:8001", "http://[::1]:8001/admin/"),
        ("localhost", "http://localhost:8000/admin/"),
        ("unix:/run/inventory.sock", "(through the proxy in front of unix:/run/inventory.sock)"),
    ],
)
def test_bootstrap_prints_the_address_gunicorn_binds(settings, bind, url):
    """The notice said port 8000 whatever BIND said (settings.BIND is BIND, as gunicorn reads
    it)."""
    settings.BIND = bind
    out, _ = run("bootstrap", "--no-demo")
    assert f"URL:       {url}" in out


def test_bootstrap_without_demo_data_makes_the_superuser_and_groups_only():
    out, _ = run("bootstrap", "--no-demo")
    assert not Workstation.objects.exists()
    password = re.search(r"Password:\s+(\S+)", out).group(1)
    assert User.objects.get(username="admin", is_superuser=True).check_password(password)
    assert Group.objects.filter(name__in=["Inventory editors", "Inventory readers"]).count() == 2


def test_bootstrap_passwords_are_generated():
    first, _ = run("bootstrap", verbosity=0)
    User.objects.filter(username="admin").delete()
    second, _ = run("bootstrap", verbosity=0)
    passwords = [re.search(r"Password:\s+(\S+)", out).group(1) for out in (first, second)]
    assert passwords[0] != passwords[1]


def test_bootstrap_leaves_existing_data_superusers_and_groups_alone(staff):
    WorkstationFactory()
    readers = Group.objects.create(name="Inventory readers")  # the staff emptied it on purpose

    out, _ = run("bootstrap")

    assert Workstation.objects.count() == 1
    assert "Superuser exists" in out
    assert "assword" not in out
    assert not User.objects.filter(username="admin").exclude(pk=staff.pk).exists()
    assert readers.permissions.count() == 0
    assert Group.objects.get(name="Inventory editors").permissions.count() == 8


def test_bootstrap_refuses_to_promote_an_ordinary_admin_user():
    WorkstationFactory()
    UserFactory(username="admin")
    with pytest.raises(CommandError, match="not a superuser"):
        run("bootstrap")
    assert not User.objects.filter(is_superuser=True).exists()


# import_workstations -----------------------------------------------------------------------


@pytest.fixture
def hq():
    return LocationFactory(name="HQ room 1")


@pytest.fixture
def jane():
    return UserFactory(username="jane.doe")


GOOD_HEADER = [
    "asset_tag",
    "hostname",
    "serial_number",
    "mac_address",
    "status",
    "assigned_to",
    "location",
    "ram_gb",
    "purchase_date",
    "purchase_cost",
    "notes",
]


def test_import_creates_valid_rows_with_normalised_values(tmp_path, hq, jane):
    path = write_csv(
        tmp_path / "good.csv",
        GOOD_HEADER,
        [
            "IMP-001",
            "WS-LON-001.Example.COM.",
            "SN1",
            "0011.2233.4455",
            "deployed",
            "jane.doe",
            "HQ room 1",
            "16",
            "2024-02-01",
            "899.5",
            "first",
        ],
        ["IMP-002", "ws-lon-002", "", "", "in_stock", "", "", "", "", "", ""],
    )

    out, err = run("import_workstations", str(path))

    assert "Imported 2 workstations" in out
    assert err == ""
    first = Workstation.objects.get(asset_tag="IMP-001")
    assert first.hostname == "ws-lon-001.example.com"
    assert first.mac_address == "00:11:22:33:44:55"
    assert first.assigned_to == jane
    assert first.location == hq
    assert first.ram_gb == 16
    assert first.purchase_cost == Decimal("899.50")
    second = Workstation.objects.get(asset_tag="IMP-002")
    assert second.location is None and second.assigned_to is None
    assert second.ram_gb is None and second.serial_number == ""


def test_import_needs_only_asset_tag_and_hostname_and_accepts_a_bom(tmp_path):
    path = tmp_path / "minimal.csv"
    path.write_bytes("asset_tag,hostname\r\nIMP-9,ws-9\r\n".encode("utf-8-sig"))

    run("import_workstations", str(path))

    workstation = Workstation.objects.get()
    assert (workstation.asset_tag, workstation.hostname) == ("IMP-9", "ws-9")
    assert workstation.status == "planned"  # the model's default for an empty column


def test_import_reports_every_bad_row_and_writes_nothing(tmp_path, hq, jane):
    WorkstationFactory(asset_tag="EXIST-1", hostname="existing-host")
    header = ["asset_tag", "hostname", "status", "assigned_to", "location", "purchase_date"]
    path = write_csv(
        tmp_path / "bad.csv",
        [*header, "colour"],
        ["IMP-001", "ws-dup", "deployed", "jane.doe", "HQ room 1", "2024-01-01", "red"],  # 2 ok
        ["IMP-002", "bad_host!", "staged", "", "", "", ""],  # 3
        ["IMP-003", "ws-3", "deployed", "", "", "", ""],  # 4
        ["IMP-001", "ws-4", "staged", "", "", "", ""],  # 5: asset tag of line 2
        ["IMP-005", "Existing-Host", "staged", "", "", "", ""],  # 6: in the database
        ["IMP-006", "ws-6", "staged", "", "Mars base", "", ""],  # 7
        ["IMP-007", "ws-7", "staged", "", "", "2024-13-45", ""],  # 8
        ["IMP-008", "ws-8", "staged", "nobody", "", "", ""],  # 9
        ["IMP-009", "WS-DUP", "staged", "", "", "", ""],  # 10: host name of line 2
    )

    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(path))

    message = str(excinfo.value)
    expected = [
        "line 1, colour: Unknown column",
        "line 3, hostname: Enter a valid host name",
        "line 4, assigned_to: A workstation with status 'deployed' needs an assignee.",
        "line 5, asset_tag: 'IMP-001' already appears on line 2.",
        "line 6, hostname: Workstation with this Hostname already exists.",
        "line 7, location: No location is named 'Mars base'.",
        "line 8, purchase_date: Date has wrong format.",
        "line 9, assigned_to: No user has the username 'nobody'.",
        "line 10, hostname: 'ws-dup' already appears on line 2.",
    ]
    for text in expected:
        assert text in message
    assert message.startswith(f"{len(expected)} errors in ")
    assert "nothing imported" in message
    assert "line 2" not in message.replace("on line 2", "")  # the good row has no error
    assert list(Workstation.objects.values_list("asset_tag", flat=True)) == ["EXIST-1"]


def test_import_reports_the_line_a_multiline_record_starts_on(tmp_path):
    path = write_csv(
        tmp_path / "multiline.csv",
        ["asset_tag", "hostname", "notes"],
        ["IMP-1", "ws-1", "first line\nsecond line"],
        ["IMP-2", "not valid!", ""],
    )
    with pytest.raises(CommandError, match=r"line 4, hostname"):
        run("import_workstations", str(path))


def test_import_serial_number_duplicates_name_the_column(tmp_path):
    WorkstationFactory(serial_number="SN-TAKEN")
    path = write_csv(
        tmp_path / "serials.csv",
        ["asset_tag", "hostname", "serial_number"],
        ["IMP-1", "ws-1", "SN-TAKEN"],
        ["IMP-2", "ws-2", "SN-NEW"],
        ["IMP-3", "ws-3", "SN-NEW"],
    )
    with pytest.raises(CommandError) as excinfo:
        run("import_workstations", str(path))
    message = str(excinfo.value)
    assert "line 2, serial_number: A workstation with this serial number already exists." in (
        message
    )
    assert "line 4, serial_number: 'SN-NEW' already appears on line 3." in message


def test_import_dry_run_validates_without_writing(tmp_path, hq):
    good = write_csv(tmp_path / "good.csv", ["asset_tag", "hostname"], ["IMP-1", "ws-1"])
    bad = write_csv(tmp_path / "bad.csv", ["asset_tag", "hostname"], ["IMP-1", "bad host"])

    out, _ = run("import_workstations", str(good), "--dry-run")
    assert "Dry run: 1 rows" in out
    assert not Workstation.objects.exists()

    with pytest.raises(CommandError, match=r"1 error in .*dry run"):
        run("import_workstations", str(bad), "--dry-run")
    assert not Workstation.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"IMP-1,ws-1\nIMP-2,ws-2\n", "line 1 is not a header"),
        (b"asset_tag,status\nIMP-1,planned\n", r"Missing required column\(s\): hostname"),
        (b"asset_tag,hostname\nIMP-1,caf\xe9\n", r"line 2: not UTF-8 text \(byte 0xe9\)"),
        (b"asset_tag,hostname\nIMP-1,ws-1,extra\n", "line 2: 3 values but the header has 2"),
        (b"asset_tag,notes\nIMP-1,a\x00b\n", "Missing required column"),
        (b"asset_tag,hostname,notes\nIMP-1,ws-1,a\x00b\n", "line 2, notes: Null characters"),
    ],
)
def test_import_rejects_unreadable_files_with_a_clear_error(tmp_path, content, message):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        run("import_workstations", str(path))
    assert not Workstation.objects.exists()


def test_import_rejects_a_json_file_that_is_not_a_list(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('{"asset_tag": "IMP-1"}')
    with pytest.raises(CommandError, match="JSON array of objects"):
        run("import_workstations", str(path))


def test_import_json_names_the_item_with_an_unknown_key(tmp_path):
    path = tmp_path / "in.json"
    items = [
        {"asset_tag": "IMP-1", "hostname": "ws-1"},
        {"asset_tag": "IMP-2", "hostname": "ws-2", "colour": "red"},
    ]
    path.write_text(json.dumps(items))
    with pytest.raises(CommandError, match="item 2, colour: Unknown column"):
        run("import_workstations", str(path))
    assert not Workstation.objects.exists()


def test_import_of_a_header_only_file_creates_nothing(tmp_path):
    path = write_csv(tmp_path / "empty.csv", ["asset_tag", "hostname"])
    out, _ = run("import_workstations", str(path))
    assert "Imported 0 workstations" in out


def test_import_shows_progress_on_long_files(tmp_path, monkeypatch):
    monkeypatch.setattr(import_workstations, "PROGRESS_EVERY", 5)
    rows = [[f"IMP-{n}", f"ws-{n}"] for n in range(12)]
    path = write_csv(tmp_path / "long.csv", ["asset_tag", "hostname"], *rows)

    _, err = run("import_workstations", str(path), "--dry-run")
    assert "validated 5/12 rows" in err
    assert "validated 10/12 rows" in err
    assert "validated 12/12 rows" in err

    _, quiet = run("import_workstations", str(path), "--dry-run", verbosity=0)
    assert quiet == ""


def test_import_writes_once_through_the_service(tmp_path, monkeypatch):
    calls = []
    real = services.workstation_bulk_create

    def spy(**kwargs):
        calls.append(len(kwargs["workstations"]))
        return real(**kwargs)

    monkeypatch.setattr(services, "workstation_bulk_create", spy)
    rows = [[f"IMP-{n}", f"ws-{n}"] for n in range(3)]
    run(
        "import_workstations", str(write_csv(tmp_path / "in.csv", ["asset_tag", "hostname"], *rows))
    )
    assert calls == [3]


# export_workstations -----------------------------------------------------------------------


def test_export_csv_to_stdout_uses_names_for_related_objects(hq, jane):
    WorkstationFactory(asset_tag="AT-1", location=hq, assigned_to=jane, status="deployed")
    WorkstationFactory(asset_tag="AT-2", location=None, purchase_cost=None)

    out, _ = run("export_workstations")

    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(importing.COLUMNS)
    by_tag = {row["asset_tag"]: row for row in rows}
    assert by_tag["AT-1"]["location"] == "HQ room 1"
    assert by_tag["AT-1"]["assigned_to"] == "jane.doe"
    assert by_tag["AT-1"]["purchase_date"] == "2024-01-15"
    assert by_tag["AT-1"]["purchase_cost"] == "899.00"
    assert by_tag["AT-2"]["location"] == ""
    assert by_tag["AT-2"]["purchase_cost"] == ""


def test_export_json_to_a_file(tmp_path, hq):
    WorkstationFactory(asset_tag="AT-1", location=hq, ram_gb=32)
    path = tmp_path / "out.json"

    out, _ = run("export_workstations", "--format", "json", "--output", str(path))

    assert "Exported 1 workstations" in out
    [row] = json.loads(path.read_text())
    assert row["asset_tag"] == "AT-1"
    assert row["ram_gb"] == 32
    assert row["location"] == "HQ room 1"
    assert row["assigned_to"] is None


def test_export_of_an_empty_inventory_is_valid_json():
    out, _ = run("export_workstations", "--format", "json")
    assert json.loads(out) == []


def test_export_to_an_unwritable_path_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="Cannot write"):
        run("export_workstations", "--output", str(tmp_path / "missing-dir" / "out.csv"))


def test_export_runs_a_constant_number_of_queries():
    def queries(n: int) -> int:
        Workstation.objects.all().delete()
        WorkstationFactory.create_batch(n)
        with CaptureQueriesContext(connection) as context:
            run("export_workstations")
        return len(context)

    assert queries(3) == queries(30)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_then_import_into_an_empty_inventory_round_trips(tmp_path, fmt):
    run("seed_demo", "--count", "60")
    path = tmp_path / f"inventory.{fmt}"
    run("export_workstations", "--format", fmt, "--output", str(path))
    before = path.read_text()
    original = exported()
    Workstation.objects.all().delete()  # locations and people stay: rows refer to them by name

    out, _ = run("import_workstations", str(path))

    assert "Imported 60 workstations" in out
    assert exported() == original
    run("export_workstations", "--format", fmt, "--output", str(path))
    assert path.read_text() == before
