"""The workstation admin in a real browser at 1366 by 768 pixels (Debian's Chromium, as
tests/performance/test_browser.py launches it): the changelist fits, a machine is edited and
saved, and a save over someone else's change is refused. Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from tests.performance.test_browser import (  # noqa: F401 (a fixture: Debian's Chromium)
    ARTIFACTS,
    PASSWORD,
    browser_type_launch_args,
)
from workstations import services
from workstations.choices import Status
from workstations.models import Workstation

# Playwright's sync API keeps an event loop running in this thread (see test_browser.py).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

WIDTH, HEIGHT = 1366, 768
CHANGELIST = "/admin/workstations/workstation/"


@pytest.fixture
def screenshot_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def test_staff_edit_a_machine_at_1366_and_a_stale_save_is_refused(
    page: Page, live_server, transactional_db, screenshot_dir: Path
):
    UserFactory(username="ops", is_staff=True, is_superuser=True)
    zoe = UserFactory(username="zoe.vandenberg", first_name="Zoë", last_name="van den Berg")
    amsterdam = LocationFactory(name="Amsterdam Zuidas floor 12 room 1204")
    for n in range(12):
        WorkstationFactory(
            hostname=f"ams-eng-workstation-{n:03d}",
            manufacturer="Hewlett-Packard",
            model_name="EliteDesk 800 G9 Desktop Mini",
            department="Research and Development",
            location=amsterdam,
            status=Status.DEPLOYED,
            assigned_to=zoe,
        )
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})

    page.goto(live_server.url + CHANGELIST)
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(live_server.url + CHANGELIST)
    expect(page).to_have_title(re.compile(r"\| Workstation Inventory$"))
    expect(page.locator("#site-name")).to_have_text("Workstation Inventory")

    # Every column, Location and Warranty included, within the window and within the list's
    # own box (it scrolls sideways when the table is wider: then the last columns are hidden).
    shown = page.locator("#changelist .results").bounding_box()
    assert shown is not None and shown["x"] + shown["width"] <= WIDTH
    for column in ("hostname", "status", "assigned_to", "location", "warranty_expires"):
        box = page.locator(f"#result_list th.column-{column}").bounding_box()
        assert box is not None, column
        assert shown["x"] <= box["x"] and box["x"] + box["width"] <= shown["x"] + shown["width"], (
            column,
            box,
            shown,
        )
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    page.screenshot(path=screenshot_dir / "admin-changelist-1366.png")

    # Edit a machine and save it.
    page.click("text=ams-eng-workstation-003")
    expect(page.locator("#id_department")).to_have_value("Research and Development")
    page.fill("#id_department", "Finance")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    machine = Workstation.objects.get(hostname="ams-eng-workstation-003")
    assert machine.department == "Finance"

    # Open it again; someone else changes it meanwhile; saving over that is refused.
    page.goto(f"{live_server.url}{CHANGELIST}{machine.pk}/change/")
    services.workstation_update(workstation=machine, data={"notes": "Screen replaced"})
    page.fill("#id_department", "Sales")
    page.click("input[name=_save]")
    refusal = page.locator(".errornote, .errorlist.nonfield")
    expect(refusal.last).to_contain_text("since you opened this page: Notes")
    page.screenshot(path=screenshot_dir / "admin-stale-save-refused.png", full_page=True)
    machine.refresh_from_db()
    assert (machine.department, machine.notes) == ("Finance", "Screen replaced")

    # Bulk edit: two machines to the repair shop, through the intermediate form.
    page.goto(live_server.url + CHANGELIST)
    page.locator("#result_list input.action-select").nth(0).check()
    page.locator("#result_list input.action-select").nth(1).check()
    page.select_option("select[name=action]", "bulk_edit")
    page.click("button[name=index]")
    expect(page.locator("#bulk-edit-selection li")).to_have_count(2)
    page.select_option("#id_status", "in_repair")
    page.screenshot(path=screenshot_dir / "admin-bulk-edit.png", full_page=True)
    page.click("input[value='Apply to 2 workstations']")
    expect(page.locator(".messagelist .success")).to_have_text("2 workstation(s) changed.")
    assert Workstation.objects.filter(status=Status.IN_REPAIR).count() == 2
