"""Who a token is, as the cache holds it: plain data, and a user rebuilt from it that is never
silently wrong (``performance.cache.tokens``)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from performance.cache import tokens
from performance.cache.keys import token_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "0123456789abcdef0123456789abcdef01234567"
GENERATION = 7
PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's
PLAIN = (dict, list, str, int, float, bool, type(None))


def _loaded(user):
    """The user as DRF's token authentication hands it over: freshly loaded, every field."""
    return get_user_model().objects.get(pk=user.pk)


def _rebuilt(cache, user):
    """The user the cache gives back for ``TOKEN`` once ``user`` was remembered, decoded from
    the cache's entry (not from this process's memo)."""
    tokens.remember(cache, TOKEN, GENERATION, _loaded(user), 300)
    cache.state.tokens.clear()
    rebuilt = tokens.lookup(cache, TOKEN, GENERATION)
    assert rebuilt is not None
    return rebuilt


def _plain_all_the_way(value) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and _plain_all_the_way(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_all_the_way(item) for item in value)
    return type(value) in PLAIN


def test_the_entry_is_plain_data_without_the_password(cache_backend, editor):
    stored = cache_backend.get(token_key(GENERATION, TOKEN))
    assert stored is None
    tokens.remember(cache_backend, TOKEN, GENERATION, _loaded(editor), 300)
    stored = cache_backend.get(token_key(GENERATION, TOKEN))
    assert _plain_all_the_way(stored)
    assert stored["fields"] == {
        "id": editor.pk,
        "username": "editor",
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
    }
    assert "workstations.view_workstation" in stored["permissions"]["_perm_cache"]
    assert _loaded(editor).password not in repr(stored)


def test_the_rebuilt_user_is_loaded_from_the_database_with_the_rest_deferred(
    cache_backend, editor, django_assert_num_queries
):
    user = _rebuilt(cache_backend, editor)
    assert type(user) is get_user_model()
    assert user._state.adding is False
    assert user._state.db == "default"
    assert (user.pk, user.get_username(), user.is_authenticated) == (editor.pk, "editor", True)
    assert (user.is_active, user.is_staff, user.is_superuser) == (True, False, False)
    assert {"password", "email", "last_login", "date_joined"} <= user.get_deferred_fields()
    own = _loaded(editor).get_user_permissions()
    with django_assert_num_queries(0):
        assert user.has_perm("workstations.change_workstation")
        assert not user.has_perm("performance.manage_cache")
        assert user.has_perms(["workstations.add_location", "workstations.view_location"])
        assert user.get_user_permissions() == own
        assert user.get_group_permissions() == set()


def test_what_is_not_stored_is_read_from_the_database_not_made_up(
    cache_backend, editor, django_assert_num_queries
):
    user = _rebuilt(cache_backend, editor)
    with django_assert_num_queries(1):
        assert user.has_usable_password()
    assert user.check_password(PASSWORD)
    assert not user.check_password("wrong")
    assert _rebuilt(cache_backend, editor).email == "editor@example.com"

    locked = UserFactory(username="locked")
    locked.set_unusable_password()
    locked.save()
    assert not _rebuilt(cache_backend, locked).has_usable_password()


def test_saving_the_rebuilt_user_writes_only_what_it_holds(cache_backend, editor):
    """A rebuilt user never held the password: saving it cannot wipe it, nor any field changed
    in the database since."""
    user = _rebuilt(cache_backend, editor)
    get_user_model().objects.filter(pk=editor.pk).update(email="moved@example.com")
    user.first_name = "Ed"  # a field it did not hold, set on purpose: saved with the others
    user.save()
    saved = _loaded(editor)
    assert saved.check_password(PASSWORD)
    assert saved.password == editor.password
    assert (saved.email, saved.first_name, saved.username) == ("moved@example.com", "Ed", "editor")


def test_a_superuser_needs_no_sql_for_any_permission(
    cache_backend, staff, django_assert_num_queries
):
    user = _rebuilt(cache_backend, staff)
    with django_assert_num_queries(0):
        assert user.has_perm("performance.manage_cache")
        assert "workstations.delete_workstation" in user.get_all_permissions()


def test_group_permissions_are_kept_apart_from_the_users_own(cache_backend, reader):
    viewers = Group.objects.create(name="viewers")
    viewers.permissions.add(Permission.objects.get(codename="view_location"))
    reader.groups.add(viewers)
    reader.user_permissions.add(Permission.objects.get(codename="view_workstation"))
    user = _rebuilt(cache_backend, reader)
    assert user.get_user_permissions() == {"workstations.view_workstation"}
    assert user.get_group_permissions() == {"workstations.view_location"}
    assert user.has_perms(["workstations.view_workstation", "workstations.view_location"])


def test_each_request_gets_its_own_user(cache_backend, editor):
    tokens.remember(cache_backend, TOKEN, GENERATION, _loaded(editor), 300)
    first = tokens.lookup(cache_backend, TOKEN, GENERATION)
    second = tokens.lookup(cache_backend, TOKEN, GENERATION)
    assert first is not second
    first.is_staff = True
    first._perm_cache = frozenset()
    assert second.is_staff is False
    assert second.has_perm("workstations.view_workstation")
    with pytest.raises(AttributeError):  # frozen: shared by every request's copy
        second._user_perm_cache.add("performance.manage_cache")


@pytest.mark.parametrize(
    "stored",
    [
        "a string",
        ["format", 1],
        {},
        {"format": 2},
        "extra key",
        "missing field",
        "field of another type",
        "permissions not a list",
        "unknown permission cache",
        "inactive",
        "expiry not a number",
    ],
)
def test_a_value_of_another_shape_is_a_miss(cache_backend, editor, stored):
    """Under a token's key, anything but the entry this service writes (another format, another
    program's value) is a miss: the caller asks the database. Each value here is signed as this
    service signs (an older format of its own would be): refused for its shape alone."""
    tokens.remember(cache_backend, TOKEN, GENERATION, _loaded(editor), 300)
    entry = cache_backend.get(token_key(GENERATION, TOKEN))
    if stored == "extra key":
        stored = {**entry, "password": "x"}
    elif stored == "missing field":
        stored = {**entry, "fields": {k: v for k, v in entry["fields"].items() if k != "id"}}
    elif stored == "field of another type":
        stored = {**entry, "fields": {**entry["fields"], "username": ["editor"]}}
    elif stored == "permissions not a list":
        stored = {**entry, "permissions": {"_perm_cache": "workstations.view_workstation"}}
    elif stored == "unknown permission cache":
        stored = {**entry, "permissions": {"__class__": []}}
    elif stored == "inactive":
        stored = {**entry, "fields": {**entry["fields"], "is_active": False}}
    elif stored == "expiry not a number":
        stored = {**entry, "expires_at": "never"}
    if isinstance(stored, dict):
        unsigned = {name: item for name, item in stored.items() if name != "signature"}
        stored = {
            **unsigned,
            "signature": tokens._signature(token_key(GENERATION, TOKEN), unsigned),
        }
    cache_backend.set(token_key(GENERATION, TOKEN), stored, 300)
    cache_backend.state.tokens.clear()
    assert tokens.lookup(cache_backend, TOKEN, GENERATION) is None


def test_an_entry_signed_for_another_key_is_a_miss(cache_backend, editor):
    """The signature covers the key: an entry copied under another token's key, or another
    generation's, names nobody."""
    tokens.remember(cache_backend, TOKEN, GENERATION, _loaded(editor), 300)
    entry = cache_backend.get(token_key(GENERATION, TOKEN))
    other = "f" * 40
    cache_backend.set(token_key(GENERATION, other), entry, 300)
    cache_backend.set(token_key(GENERATION + 1, TOKEN), entry, 300)
    cache_backend.state.tokens.clear()
    assert tokens.lookup(cache_backend, other, GENERATION) is None
    assert tokens.lookup(cache_backend, TOKEN, GENERATION + 1) is None
    assert tokens.lookup(cache_backend, TOKEN, GENERATION).pk == editor.pk


def test_an_entry_signed_without_the_secret_key_is_a_miss(cache_backend, editor, settings):
    """Forged by someone without ``SECRET_KEY`` (or written before it was rotated)."""
    settings.SECRET_KEY = "not-the-service-secret-" + "x" * 40
    tokens.remember(cache_backend, TOKEN, GENERATION, _loaded(editor), 300)
    settings.SECRET_KEY = "the-service-secret-" + "y" * 40
    cache_backend.state.tokens.clear()
    assert tokens.lookup(cache_backend, TOKEN, GENERATION) is None


def test_an_entry_without_a_timeout_never_expires_in_the_memo(cache_backend, editor):
    tokens.remember(cache_backend, TOKEN, GENERATION, _loaded(editor), None)
    assert cache_backend.get(token_key(GENERATION, TOKEN))["expires_at"] is None
    assert cache_backend.state.tokens.get(TOKEN, GENERATION) is not None
