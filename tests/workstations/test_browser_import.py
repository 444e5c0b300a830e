"""Importing a CSV through the admin in a real browser (Debian's Chromium, via Playwright):
the changelist's link, the upload, the preview, the confirmation, the rows in the list."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from tests.performance import test_browser
from workstations.models import Workstation

# The browser tests' fixtures: Debian's Chromium, never downloaded (the test is skipped loudly
# without it, and fails under CI=true), and screenshots in test-artifacts/.
browser_type_launch_args = test_browser.browser_type_launch_args
screenshot_dir = test_browser.screenshot_dir
PASSWORD = test_browser.PASSWORD

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHANGELIST = "/admin/workstations/workstation/"


@pytest.fixture
def inventory_csv(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.csv"
    # Semicolons, as Excel saves CSV in many locales; a label for the status.
    path.write_text(
        "asset_tag;hostname;status;department;location\n"
        "WS-100;lon-dt-100;Staged;Finance;Lab 1\n"
        "WS-200;lon-dt-200;In stock;Finance;Lab 1\n"
        "WS-201;lon-dt-201;planned;Facilities;Lab 1\n",
        encoding="utf-8",
    )
    return path


def test_staff_import_a_csv_through_the_preview_and_confirm(
    page: Page, live_server, transactional_db, screenshot_dir: Path, inventory_csv: Path
):
    UserFactory(username="ops", is_staff=True, is_superuser=True)
    lab = LocationFactory(name="Lab 1")
    WorkstationFactory(asset_tag="WS-100", hostname="lon-dt-100", department="Sales", location=lab)
    page.set_viewport_size({"width": 1366, "height": 900})

    page.goto(live_server.url + CHANGELIST)
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(live_server.url + CHANGELIST)

    page.click("a.ws-import-link")
    expect(page).to_have_title(re.compile(r"^Import workstations \|"))
    page.set_input_files("#id_file", str(inventory_csv))
    page.check("#id_update")
    page.click("#ws-import-form input[type=submit]")

    summary = page.locator("#ws-import-summary")
    expect(summary).to_contain_text("2 to create, 1 to update, 0 unchanged")
    changes = page.locator("#ws-import-changes tbody tr")
    expect(changes).to_have_count(1)
    expect(changes.first).to_contain_text("department")
    expect(changes.first).to_contain_text("Sales")
    expect(changes.first).to_contain_text("Finance")
    expect(page.locator("#ws-import-creates tbody tr")).to_have_count(2)
    page.screenshot(path=screenshot_dir / "import-preview.png", full_page=True)
    assert Workstation.objects.count() == 1  # nothing written by the preview

    page.click("#ws-import-confirm input[type=submit]")

    expect(page).to_have_url(live_server.url + CHANGELIST)
    expect(page.locator(".messagelist .success")).to_have_text(
        "Imported inventory.csv: 2 created, 1 updated, 0 unchanged."
    )
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#result_list")).to_contain_text("lon-dt-201")
    page.screenshot(path=screenshot_dir / "import-done.png", full_page=True)
    assert dict(Workstation.objects.values_list("asset_tag", "department")) == {
        "WS-100": "Finance",
        "WS-200": "Finance",
        "WS-201": "Facilities",
    }


def test_a_file_with_errors_shows_them_by_line_and_cannot_be_confirmed(
    page: Page, live_server, transactional_db, screenshot_dir: Path, tmp_path: Path
):
    UserFactory(username="ops", is_staff=True, is_superuser=True)
    path = tmp_path / "bad.csv"
    path.write_text("asset_tag,hostname,status\nWS-1,ok-host,staged\nWS-2,bad host,Broken\n")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(live_server.url + CHANGELIST + "import/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    page.set_input_files("#id_file", str(path))
    page.click("#ws-import-form input[type=submit]")

    errors = page.locator("#ws-import-errors li")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text("line 3, hostname")
    expect(errors.nth(1)).to_contain_text("line 3, status: 'Broken' is not a valid status")
    expect(page.locator("#ws-import-confirm")).to_have_count(0)
    page.screenshot(path=screenshot_dir / "import-errors.png", full_page=True)
    assert not Workstation.objects.exists()
