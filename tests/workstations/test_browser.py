"""Checking a machine out in the admin, in a real browser (Debian's Chromium, as in
tests/performance/test_browser.py), and finding it on the machine's History page."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.factories import UserFactory, WorkstationFactory

# The launch arguments (Debian's Chromium, never a download) and the screenshot directory.
from tests.performance.test_browser import (  # noqa: F401
    PASSWORD,
    browser_type_launch_args,
    screenshot_dir,
)
from workstations.choices import Status
from workstations.models import Workstation

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHANGELIST = "/admin/workstations/workstation/"


@pytest.mark.usefixtures("transactional_db")
def test_check_out_in_the_admin_then_read_the_history(
    page: Page,
    live_server,
    screenshot_dir: Path,  # noqa: F811
):
    UserFactory(username="ops", is_staff=True, is_superuser=True)
    UserFactory(username="zoe")
    UserFactory(username="left.last.year", is_active=False)
    workstation = WorkstationFactory(hostname="loaner-01", status=Status.IN_STOCK)
    page.set_viewport_size({"width": 1366, "height": 900})

    page.goto(live_server.url + CHANGELIST)
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(live_server.url + CHANGELIST)

    # Select the machine, pick the action: an intermediate page asks who gets it.
    page.fill("#searchbar", "loaner")
    page.press("#searchbar", "Enter")
    page.check(f"input[name=_selected_action][value='{workstation.pk}']")
    page.select_option("select[name=action]", "checkout")
    page.click("button[name=index]")
    expect(page.locator("h1")).to_have_text("Check out loaner-01")
    options = page.locator("#id_assigned_to option").all_inner_texts()
    assert "zoe" in options and "left.last.year" not in options  # active users only
    page.select_option("#id_assigned_to", label="zoe")
    page.fill("#id_note", "Loan for the Berlin trip")
    page.screenshot(path=screenshot_dir / "admin-checkout-form.png", full_page=True)
    page.click("input[type=submit][value='Check out']")

    expect(page.locator(".messagelist .success")).to_have_text("Loaner-01 checked out to zoe.")
    row = page.locator("#result_list tbody tr", has_text="loaner-01")
    expect(row).to_contain_text("Deployed")
    expect(row).to_contain_text("zoe")
    page.screenshot(path=screenshot_dir / "admin-checked-out.png", full_page=True)

    # The History page: who did it, when, the note, and each field before and after.
    page.goto(f"{live_server.url}{CHANGELIST}{workstation.pk}/change/")
    page.click("a.historylink")
    expect(page.locator("h1")).to_have_text("Change history: loaner-01")
    latest = page.locator(".change-entry").first
    expect(latest.locator(".entry-user")).to_have_text("ops")
    expect(latest.locator(".entry-action")).to_have_text("checked out")
    expect(latest).to_contain_text("Loan for the Berlin trip")
    expect(latest.locator("tr", has_text="Assigned to")).to_contain_text(re.compile(r"—\s*→\s*zoe"))
    expect(latest.locator("tr", has_text="Status")).to_contain_text(
        re.compile(r"In stock\s*→\s*Deployed")
    )
    page.screenshot(path=screenshot_dir / "admin-history.png", full_page=True)

    workstation = Workstation.objects.get(pk=workstation.pk)
    assert (workstation.status, workstation.assigned_to.username) == (Status.DEPLOYED, "zoe")
