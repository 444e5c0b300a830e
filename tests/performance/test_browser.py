"""The cache performance page in a real browser: Debian's Chromium, driven by Playwright.

A browser is never downloaded: the test launches ``/usr/bin/chromium`` (``make test`` installs
Debian's ``chromium`` package when it can). Without it the test is skipped loudly on a
developer's machine and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from performance import cache as perf_cache
from performance.models import CacheAction
from tests.conftest import require_service
from tests.factories import LocationFactory, UserFactory, WorkstationFactory

# Playwright's sync API runs an asyncio event loop in this thread for as long as it is started
# (pytest-playwright keeps it started for the session), and Django refuses ORM calls from a
# thread with a running loop. Every call made here is an ordinary synchronous one.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "correct-horse-battery"  # what UserFactory sets
PAGE = "/admin/performance/cache/"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch Debian's Chromium instead of a browser Playwright would have to download."""
    if not os.access(CHROMIUM, os.X_OK):
        require_service(
            "Chromium",
            f"{CHROMIUM} is missing; install Debian's chromium package (`make test` does it "
            "as root or with sudo)",
        )
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "headless": True,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture
def screenshot_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def logical_keys(namespace: str) -> list[str]:
    return sorted(perf_cache.backend().logical_keys(f"{namespace}:*"))


def test_staff_invalidate_a_pattern_through_the_confirmation(
    page: Page, live_server, transactional_db, screenshot_dir: Path
):
    UserFactory(username="ops", is_staff=True, is_superuser=True)
    WorkstationFactory.create_batch(5, location=LocationFactory(name="Lab 1"))
    page.set_viewport_size({"width": 1400, "height": 1000})
    perf_cache.reset_stats()  # the figures are the process's: earlier tests counted too

    # Log in through the admin's form; it brings us back to the page we asked for.
    page.goto(live_server.url + PAGE)
    expect(page).to_have_url(re.compile(r"/admin/login/\?next="))
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(live_server.url + PAGE)
    expect(page).to_have_title(re.compile(r"^Cache performance \|"))
    expect(page.locator("#nav-sidebar")).to_contain_text("Cache performance")

    # Entries, put there the way an API consumer does it (the browser's session authenticates).
    for path in ("/api/workstations/", "/api/workstations/?status=staged", "/api/locations/"):
        for _ in range(2):
            response = page.request.get(
                live_server.url + path, headers={"Accept": "application/json"}
            )
            assert response.ok, response.status
    assert len(logical_keys("workstations")) == 2
    locations = logical_keys("locations")
    assert len(locations) == 1

    page.reload()
    workstations_row = page.locator("#perf-namespaces tr.perf-ns-workstations")
    expect(workstations_row).to_contain_text("50.0 %")  # 2 misses, then 2 hits
    expect(page.locator("#perf-scope")).to_contain_text(re.compile(r"This process only|Fleet-wide"))
    expect(page.locator("#perf-totals")).to_be_visible()
    expect(page.locator("svg#perf-history")).to_be_visible()
    expect(page.locator("svg#perf-history rect.requests").first).to_be_visible()
    expect(page.locator("svg#perf-namespaces")).to_contain_text("workstations")
    expect(page.locator("#perf-system")).to_contain_text("Resident memory (RSS)")
    page.screenshot(path=screenshot_dir / "performance-console.png", full_page=True)

    # Invalidate by pattern: a dry run first, which says how many keys would go.
    page.fill("#perf-pattern", "workstations:*")
    page.click("input[value='Dry run…']")
    expect(page.locator("#content")).to_contain_text("2 keys would be removed")
    assert len(logical_keys("workstations")) == 2
    page.screenshot(path=screenshot_dir / "performance-confirm.png", full_page=True)

    page.click("input[value='Yes, remove these keys']")
    expect(page).to_have_url(live_server.url + PAGE)
    expect(page.locator(".messagelist .success")).to_have_text(
        "The pattern “workstations:*” removed 2 keys."
    )
    latest = page.locator("#perf-audit tr.perf-audit-row").first
    expect(latest).to_contain_text("Invalidate by pattern")
    expect(latest).to_contain_text("workstations:*")
    expect(latest).to_contain_text("ops")
    expect(latest).not_to_contain_text("dry run")
    page.screenshot(path=screenshot_dir / "performance-after-invalidation.png", full_page=True)

    assert logical_keys("workstations") == []
    assert logical_keys("locations") == locations
    done = CacheAction.objects.get(dry_run=False)
    assert (done.kind, done.target, done.keys_affected, done.user.username) == (
        CacheAction.Kind.INVALIDATE_PATTERN,
        "workstations:*",
        2,
        "ops",
    )


# Content-Security-Policy ---------------------------------------------------------------------

#: Every violation the page reports, as "directive blocked-uri", gathered before any script of
#: the page runs (Playwright's init scripts are not subject to the page's policy).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_the_admin_the_console_and_the_api_docs_work_under_the_policy(
    page: Page, live_server, transactional_db
):
    UserFactory(username="ops", is_staff=True, is_superuser=True)
    WorkstationFactory.create_batch(3, location=LocationFactory(name="Lab 1"))
    page.add_init_script(RECORD_VIOLATIONS)
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    policies: dict[str, str] = {}
    page.on(
        "response",
        lambda response: (
            policies.__setitem__(response.url, response.headers.get("content-security-policy", ""))
            if response.request.resource_type == "document"
            else None
        ),
    )

    page.goto(live_server.url + "/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(live_server.url + "/admin/")
    visited = {}
    for path in ("/admin/", "/admin/workstations/workstation/", PAGE, "/api/docs/"):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        visited[path] = page.evaluate("window.__cspViolations")

    # The console's charts are drawn (server-side SVG, styled by the nonced stylesheet)...
    page.goto(live_server.url + PAGE)
    expect(page.locator("svg#perf-history")).to_be_visible()
    # ...and Swagger UI renders the operations of the schema, its script served as a file.
    page.goto(live_server.url + "/api/docs/")
    expect(page.locator("#swagger-ui .opblock").first).to_be_visible(timeout=15_000)
    expect(page.locator("#swagger-ui")).to_contain_text("/api/workstations/")
    visited["/api/docs/ rendered"] = page.evaluate("window.__cspViolations")

    assert all(policies.values()), policies
    for policy in policies.values():
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert {path: found for path, found in visited.items() if found} == {}
    assert refused == []


#: The scripted traffic: (path, times). Each first request computes, the others are answered
#: from the cache; the 404s are not cacheable.
KNOWN_TRAFFIC = [
    ("/api/workstations/", 5),
    ("/api/workstations/?status=staged", 3),
    ("/api/locations/", 2),
    ("/api/workstations/999999/", 2),
]


def test_the_console_shows_the_hit_rate_of_known_traffic(
    page: Page, live_server, transactional_db, screenshot_dir: Path
):
    """After a scripted run whose outcome is known, the headline says it: responses answered
    from the cache per cacheable request, token lookups and generations left out. The
    screenshot shows the expected rate (written in by the test) beside the one shown."""
    UserFactory(username="ops", is_staff=True, is_superuser=True)
    WorkstationFactory.create_batch(5, location=LocationFactory(name="Lab 1"))
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(live_server.url + PAGE)
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(live_server.url + PAGE)
    perf_cache.reset_stats()

    seen = {"HIT": 0, "MISS": 0, None: 0}
    for path, times in KNOWN_TRAFFIC:
        for _ in range(times):
            response = page.request.get(
                live_server.url + path, headers={"Accept": "application/json"}
            )
            seen[response.headers.get("x-cache")] += 1
    expected_hits, expected_cacheable = 7, 10
    assert seen == {"HIT": expected_hits, "MISS": 3, None: 2}
    expected = f"{expected_hits / expected_cacheable * 100:.1f} %"

    page.reload()
    shown = page.locator("#perf-hit-rate")
    expect(shown).to_have_text(expected)
    expect(page.locator("#perf-cacheable")).to_have_text(
        f"{expected_hits} of {expected_cacheable} cacheable requests answered from the cache"
    )
    expect(page.locator("#perf-group-responses")).to_contain_text("workstations")
    expect(page.locator("#perf-group-bookkeeping")).to_contain_text("auth")
    expect(page.locator("svg#perf-history rect.requests").first).to_be_visible()
    # Side by side in the screenshot: what the script expects, next to what the page shows.
    page.evaluate(
        """([expected, detail]) => {
            const box = document.createElement('div');
            box.id = 'perf-expected';
            box.style.cssText = 'border:2px dashed #c00;padding:4px 8px;min-width:140px';
            box.innerHTML = '<span class="quiet">Expected from the scripted traffic</span>' +
                '<strong style="color:#c00">' + expected + '</strong>' +
                '<span class="quiet">' + detail + '</span>';
            document.querySelector('#perf-hit-rate').parentElement.after(box);
        }""",
        [expected, f"{expected_hits} of {expected_cacheable}: {KNOWN_TRAFFIC}"],
    )
    expect(page.locator("#perf-expected")).to_contain_text(expected)
    page.locator("#perf-backend").screenshot(
        path=screenshot_dir / "performance-console-known-traffic-headline.png"
    )
    page.screenshot(path=screenshot_dir / "performance-console-known-traffic.png", full_page=True)
