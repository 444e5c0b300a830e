"""The admin's import (preview, then confirm) and export, as staff uses them."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import admin_files
from workstations.models import Workstation

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/workstations/workstation/"
IMPORT = "/admin/workstations/workstation/import/"
EXPORT = "/admin/workstations/workstation/export/"


@pytest.fixture
def staff_browser(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def upload(text: str, name: str = "inventory.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def preview(client: Client, text: str, **fields):
    return client.post(IMPORT, {"file": upload(text), **fields})


def token_of(response) -> str:
    return response.context["token"]


def test_the_changelist_links_to_import_and_to_an_export_of_what_it_shows(staff_browser):
    response = staff_browser.get(CHANGELIST + "?status__exact=deployed&q=lon")
    content = response.content.decode()
    assert f'href="{IMPORT}"' in content
    assert f'href="{EXPORT}?q=lon&amp;status__exact=deployed"' in content


def test_the_import_page_shows_the_form(staff_browser):
    response = staff_browser.get(IMPORT)
    assert response.status_code == 200
    content = response.content.decode()
    assert "Import workstations" in content
    for name in ("file", "update", "delimiter", "preset", "mapping", "ignore_unknown_columns"):
        assert f'name="{name}"' in content


def test_preview_shows_what_would_change_and_writes_nothing_until_confirmed(staff_browser):
    WorkstationFactory(asset_tag="AT-1", hostname="ws-1", department="Sales")
    WorkstationFactory(asset_tag="AT-2", hostname="ws-2", department="Sales")
    text = (
        "asset_tag;hostname;department;status\n"
        "AT-1;ws-1;Finance;Staged\n"
        "AT-2;ws-2;Sales;staged\n"
        "AT-3;ws-3;Finance;In stock\n"
    )

    response = preview(staff_browser, text, update="on")

    assert response.status_code == 200
    content = response.content.decode()
    assert "1 to create, 1 to update, 1 unchanged" in content
    changes = response.context["changes"]
    assert [(c.line, c.workstation.asset_tag, c.fields) for c in changes] == [
        (2, "AT-1", {"department": ("Sales", "Finance")})
    ]
    assert "Confirm import" in content
    assert not Workstation.objects.filter(asset_tag="AT-3").exists()
    assert Workstation.objects.get(asset_tag="AT-1").department == "Sales"

    token = token_of(response)
    response = staff_browser.post(IMPORT, {"token": token}, follow=True)

    assert response.redirect_chain == [(CHANGELIST, 302)]
    assert "Imported inventory.csv: 1 created, 1 updated, 1 unchanged." in [
        str(m) for m in response.context["messages"]
    ]
    assert dict(Workstation.objects.values_list("asset_tag", "department")) == {
        "AT-1": "Finance",
        "AT-2": "Sales",
        "AT-3": "Finance",
    }
    # The same confirmation again (a double click, the back button) does nothing more.
    again = staff_browser.post(IMPORT, {"token": token}, follow=True)
    assert "That import was already done or has expired" in again.content.decode()
    assert Workstation.objects.count() == 3


def test_preview_lists_every_error_by_line_and_offers_no_confirmation(staff_browser):
    WorkstationFactory(asset_tag="AT-1", hostname="ws-1")
    text = "asset_tag,hostname,status,department\nAT-1,ws-1,staged,x\nAT-2,bad host,Broken,=1+2\n"

    response = preview(staff_browser, text)

    content = response.content.decode()
    assert [str(error) for error in response.context["report"].errors] == [
        "line 2, asset_tag: Workstation with this Asset tag already exists. To change existing "
        "workstations, tick “Update existing workstations”.",
        "line 3, hostname: Enter a valid host name: labels of letters, digits and hyphens "
        "(RFC 1123), separated by dots.",
        "line 3, status: 'Broken' is not a valid status; valid values: planned (Planned), "
        "in_stock (In stock), staged (Staged), deployed (Deployed), in_repair (In repair), "
        "failed (Failed), retired (Retired), lost_stolen (Lost or stolen).",
        "line 3, department: '=1+2' starts with '=', which a spreadsheet runs as a formula; "
        "write it with an apostrophe in front ('=1+2) to keep it as text.",
    ]
    assert "4 errors: nothing will be imported" in content
    assert "Confirm import" not in content
    assert not response.context["token"]
    assert Workstation.objects.count() == 1


def test_an_unreadable_upload_is_a_clear_error_not_a_500(staff_browser):
    response = staff_browser.post(
        IMPORT, {"file": SimpleUploadedFile("book.xlsx", b"PK\x03\x04" + bytes(100))}
    )
    assert response.status_code == 200
    assert "not a CSV or JSON text file" in response.context["file_error"]
    nested = staff_browser.post(
        IMPORT, {"file": SimpleUploadedFile("deep.json", b"[" * 50_000 + b"]" * 50_000)}
    )
    assert "nested too deeply" in nested.context["file_error"]


def test_an_upload_over_the_limit_is_refused_with_the_command_to_use(staff_browser, monkeypatch):
    monkeypatch.setattr(admin_files, "MAX_UPLOAD_BYTES", 100)
    response = preview(staff_browser, "asset_tag,hostname\n" + "A1,h1\n" * 30)
    assert response.status_code == 200
    assert "import_workstations command" in str(response.context["form"].errors["file"])
    assert not Workstation.objects.exists()


def test_confirm_validates_again_and_writes_nothing_if_the_inventory_changed(staff_browser):
    response = preview(staff_browser, "asset_tag,hostname\nAT-1,ws-1\nAT-2,ws-2\n")
    token = token_of(response)
    WorkstationFactory(asset_tag="AT-9", hostname="ws-2")  # taken in between

    response = staff_browser.post(IMPORT, {"token": token})

    assert response.status_code == 200
    assert [str(e) for e in response.context["report"].errors] == [
        "line 3, hostname: Workstation with this Hostname already exists."
    ]
    assert list(Workstation.objects.values_list("asset_tag", flat=True)) == ["AT-9"]


def test_the_snipeit_preset_and_options_are_the_commands(staff_browser, settings):
    LocationFactory(name="London HQ / Floor 4")
    UserFactory(username="elena.adams", first_name="Elena", last_name="Adams")
    with open(settings.BASE_DIR / "tests/workstations/data/snipeit_assets.csv") as stream:
        text = stream.read()
    response = preview(staff_browser, text, preset="snipeit", ignore_unknown_columns="on")
    assert "6 to create, 0 to update, 0 unchanged" in response.content.decode()
    staff_browser.post(IMPORT, {"token": token_of(response)})
    assert Workstation.objects.filter(status="lost_stolen").count() == 1


def test_import_needs_the_add_permission_and_update_the_change_permission(client):
    user = UserFactory(username="clerk", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename="view_workstation"))
    client.force_login(user)
    assert client.get(IMPORT).status_code == 403
    user.user_permissions.add(*Permission.objects.filter(codename="add_workstation"))
    assert client.get(IMPORT).status_code == 200
    response = preview(client, "asset_tag,hostname\nAT-1,ws-1\n", update="on")
    assert response.status_code == 403
    assert not Workstation.objects.exists()


def test_export_writes_the_changelists_filtered_rows_as_neutralised_csv(staff_browser):
    WorkstationFactory(asset_tag="AT-1", status="staged", notes="=HYPERLINK(1)")
    WorkstationFactory(asset_tag="AT-2", status="in_repair")
    WorkstationFactory(asset_tag="AT-3", status="staged", hostname="lon-x")

    response = staff_browser.get(EXPORT + "?status__exact=staged&o=2")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="workstations-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["asset_tag"] for row in rows] == ["AT-1", "AT-3"]
    assert rows[0]["notes"] == "'=HYPERLINK(1)"
    searched = staff_browser.get(EXPORT + "?q=lon-x")
    assert [row["asset_tag"] for row in csv.DictReader(io.StringIO(searched.content.decode()))] == [
        "AT-3"
    ]


def test_export_refuses_a_filter_the_changelist_does_not_have(staff_browser):
    assert staff_browser.get(EXPORT + "?colour=red").status_code == 400


def test_anonymous_users_are_sent_to_log_in(client):
    for url in (IMPORT, EXPORT):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
