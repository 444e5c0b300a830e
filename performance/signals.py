"""Invalidate cached authentication whenever who a token is, or what they may do, changes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models.signals import m2m_changed, post_delete, post_save
from rest_framework.authtoken.models import Token

from . import cache
from .cache.keys import AUTH_NAMESPACE

User = get_user_model()


def _invalidate_auth(sender: Any, **kwargs: Any) -> None:
    if kwargs.get("action", "post_").startswith("pre_"):
        return  # m2m_changed fires before and after; the change is made after
    update_fields = kwargs.get("update_fields")
    if sender is User and update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login changes nothing a token grants
    cache.invalidate_on_commit(AUTH_NAMESPACE)


def connect() -> None:
    # A token's entry holds its user's permission set (``cache.tokens``): a permission deleted
    # or renamed changes it as surely as a membership does.
    for model in (User, Token, Group, Permission):
        post_save.connect(_invalidate_auth, sender=model, dispatch_uid=f"auth-save-{model}")
        post_delete.connect(_invalidate_auth, sender=model, dispatch_uid=f"auth-del-{model}")
    for through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(_invalidate_auth, sender=through, dispatch_uid=f"auth-m2m-{through}")
