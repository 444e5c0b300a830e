"""The audit trail of what staff and commands did to the cache, as a read-only changelist."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

#: Clear, invalidate, warm and reset the cache; declared on the audit model.
MANAGE_PERMISSION = "performance.manage_cache"


def has_manage_permission(request: HttpRequest) -> bool:
    """May clear, invalidate, warm and reset the cache (seeing its figures needs staff only)."""
    return request.user.has_perm(MANAGE_PERMISSION)


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin whose rows nobody adds, edits or deletes by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CacheActionAdmin(ReadOnlyAdmin):
    """Every action on the cache, searchable; written by the actions only, never by hand."""

    list_display = [
        "created_at",
        "user",
        "source",
        "kind",
        "target",
        "dry_run",
        "keys_affected",
        "remote_addr",
        "succeeded",
    ]
    list_filter = ["kind", "source", "succeeded", "dry_run"]
    list_select_related = ["user"]
    search_fields = ["target", "message", "user__username", "remote_addr"]
    date_hierarchy = "created_at"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Who may act on the cache may read what was done to it.
        return super().has_view_permission(request, obj) or has_manage_permission(request)
