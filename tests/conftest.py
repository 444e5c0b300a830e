"""Shared fixtures: users with each level of rights, API clients, real services."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.test.signals import clear_cache_handlers
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from performance.cache import state
from tests.factories import UserFactory

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_service(name: str, reason: str) -> None:
    """Skip loudly on a developer's machine; fail under CI=true, where every service runs."""
    message = f"{name} unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required)")
    pytest.skip(f"!!! SKIPPED — {message}")


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Tests run before collectstatic: serve static names without the manifest's hashes."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """PBKDF2 costs ~0.4 s a user; tests create hundreds and do not test hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Every test starts as a new process would: empty caches, and none of the state a process
    keeps about them (statistics, breaker, decoded tokens, copies, request rates)."""
    for cache in caches.all():
        cache.clear()
    state.reset_all()
    clear_cache_handlers(setting="CACHES")
    yield


def _with_perms(user, *codenames: str):
    perms = Permission.objects.filter(codename__in=codenames)
    assert perms.count() == len(codenames), codenames
    user.user_permissions.add(*perms)
    return user


@pytest.fixture
def reader(db):
    """An authenticated user without any model permission: may read, not write."""
    return UserFactory(username="reader")


@pytest.fixture
def editor(db):
    """A user with every workstation and location permission, not staff."""
    user = UserFactory(username="editor")
    return _with_perms(
        user,
        *(
            f"{action}_{model}"
            for action in ("add", "change", "delete", "view")
            for model in ("workstation", "location")
        ),
    )


@pytest.fixture
def staff(db):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def reader_client(reader) -> APIClient:
    return _client_for(reader)


@pytest.fixture
def editor_client(editor) -> APIClient:
    return _client_for(editor)


@pytest.fixture
def staff_client(staff) -> APIClient:
    return _client_for(staff)
