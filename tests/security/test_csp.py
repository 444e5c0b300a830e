"""A Content-Security-Policy on every page a browser shows: the admin, the console, the docs.

What the browser makes of it (Swagger UI and the console's charts working, no violation) is
tested in tests/performance/test_browser.py.
"""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_browser(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/login/",
        "/admin/workstations/workstation/",
        "/admin/performance/cache/",
        "/api/docs/",
        "/api/workstations/",
    ],
)
def test_pages_carry_a_strict_policy(staff_browser, path):
    response = staff_browser.get(path, HTTP_ACCEPT="text/html")
    assert response.status_code in {200, 302}  # the login form sends staff on to the index
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]


def test_inline_styles_carry_the_nonce_of_their_response(staff_browser):
    for path in ("/admin/performance/cache/", "/api/docs/"):
        response = staff_browser.get(path)
        policy = response["Content-Security-Policy"]
        nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
        assert f'<style nonce="{nonce}">' in response.content.decode()


def test_the_docs_start_swagger_ui_from_a_file_not_an_inline_script(staff_browser):
    page = staff_browser.get("/api/docs/").content.decode()
    assert '<script src="/api/docs/?script="></script>' in page
    assert "<script>" not in page
    script = staff_browser.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


def test_a_response_of_no_policy_of_its_own_gets_what_django_csp_builds(
    staff_browser, reader_client, settings
):
    """The common header is built once (project/csp.py); it must be django-csp's own, for
    JSON answered warm and cold alike, and follow the settings when they change."""
    from csp.utils import build_policy

    expected = build_policy()
    assert "nonce" not in expected
    for _ in range(2):  # a miss, then a warm hit answered before DRF's dispatch
        response = reader_client.get("/api/workstations/", HTTP_ACCEPT="application/json")
        assert response["Content-Security-Policy"] == expected
    console = staff_browser.get("/admin/performance/cache/")["Content-Security-Policy"]
    assert "nonce-" in console  # a page that took a nonce: django-csp builds its header

    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    response = reader_client.get("/api/workstations/", HTTP_ACCEPT="application/json")
    assert response["Content-Security-Policy"] == "default-src 'none'"
