"""DJANGO_ENV=production turns every HTTPS and cookie setting on, and refuses to start weak.

Settings are read once per process, so each case runs ``manage.py`` in a subprocess with its
own environment.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Everything the settings read that could leak in from the developer's shell or CI.
#: Variables a deployment would not have: the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE for
#: the test session (Playwright's loop), which check --deploy rightly refuses (async.E001).
SCRUBBED = {
    "DJANGO_ENV",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}
SETTINGS_DUMP = """
import json
from django.conf import settings
names = [
    "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY", "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY", "SECURE_PROXY_SSL_HEADER", "DATA_UPLOAD_MAX_MEMORY_SIZE",
]
print(json.dumps({name: getattr(settings, name) for name in names}))
"""


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    environ.update({"VAR_DIR": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def production(**overrides: str) -> dict[str, str]:
    return {
        "DJANGO_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "inventory.example.com",
        **overrides,
    }


def test_deploy_check_passes_in_production(tmp_path):
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_fails_in_development(tmp_path):
    """The control: the same check does flag a shape without HTTPS settings."""
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_ENV="development",
        SECRET_KEY=secrets.token_urlsafe(50),
    )
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_production_turns_on_every_https_and_cookie_setting(tmp_path):
    result = manage(tmp_path, "shell", "-c", SETTINGS_DUMP, **production())
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "DATA_UPLOAD_MAX_MEMORY_SIZE": 1024 * 1024,
    }


@pytest.mark.parametrize(
    "secret_key",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("short-but-random-Zq8", id="short"),
        pytest.param("ab" * 40, id="few-distinct-characters"),
        pytest.param("django-insecure-" + secrets.token_urlsafe(50), id="django-insecure"),
    ],
)
def test_weak_or_missing_secret_key_refuses_to_start(tmp_path, secret_key):
    env = production()
    if secret_key is None:
        del env["SECRET_KEY"]
    else:
        env["SECRET_KEY"] = secret_key
    result = manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY is missing or weak" in result.stderr
    if secret_key:
        assert secret_key not in result.stderr  # the message never echoes the key


def test_debug_is_refused_in_production(tmp_path):
    result = manage(tmp_path, "check", **production(DEBUG="true"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DEBUG must be off when DJANGO_ENV=production" in result.stderr


def test_https_redirect_and_headers_in_production(tmp_path):
    """The settings take effect: plain HTTP is redirected, HTTPS answers carry HSTS and the
    other headers, and the CSRF cookie the admin login sets is Secure."""
    script = """
from django.conf import settings
from django.test import Client, override_settings
client = Client()
plain = client.get("/api/", HTTP_HOST="inventory.example.com")
print(plain.status_code, plain["Location"])
# No collectstatic has run: serve static names without the manifest.
plain_static = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain_static}):
    secure = client.get(
        "/admin/login/", HTTP_HOST="inventory.example.com", HTTP_X_FORWARDED_PROTO="https"
    )
print(secure.status_code)
print(secure["Strict-Transport-Security"])
print(secure["X-Frame-Options"], secure["X-Content-Type-Options"], secure["Referrer-Policy"])
csrf = secure.cookies["csrftoken"]
print(bool(csrf["secure"]))
"""
    result = manage(tmp_path, "shell", "-c", script, **production())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()[-5:]
    assert lines[0] == "301 https://inventory.example.com/api/"
    assert lines[1] == "200"
    assert lines[2] == "max-age=31536000; includeSubDomains; preload"
    assert lines[3] == "DENY nosniff same-origin"
    assert lines[4] == "True"


def test_a_development_key_being_written_is_never_read_empty(tmp_path, monkeypatch):
    """A process that finds the key file another one has just created, before its key is
    written, used to start with an empty SECRET_KEY (every request a 500): the key is linked
    into place whole, and a file left empty is replaced."""
    from project import settings as project_settings

    monkeypatch.setattr(project_settings, "VAR_DIR", tmp_path)
    (tmp_path / "secret_key").write_text("")  # (created, not yet written)
    key = project_settings._development_secret_key()
    assert len(key) >= project_settings.SECRET_KEY_MIN_LENGTH
    assert (tmp_path / "secret_key").read_text() == key
    assert project_settings._development_secret_key() == key
    assert sorted(path.name for path in tmp_path.iterdir()) == ["secret_key"]


def test_processes_starting_together_share_one_development_key(tmp_path, monkeypatch):
    """Workers and commands that start at once on a fresh var/ each made a key of their own
    when none saw the file yet (sessions signed by one refused by the others): the first key
    linked into place is every one's."""
    import threading

    from project import settings as project_settings

    monkeypatch.setattr(project_settings, "VAR_DIR", tmp_path / "var")
    together = threading.Barrier(16)
    keys = []

    def start() -> None:
        together.wait()
        keys.append(project_settings._development_secret_key())

    threads = [threading.Thread(target=start) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 16
    assert len(set(keys)) == 1
    assert keys[0] == (tmp_path / "var" / "secret_key").read_text()
