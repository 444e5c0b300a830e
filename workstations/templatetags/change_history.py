"""The admin's History page: an entry's changes as people read them."""

from __future__ import annotations

from auditlog.models import LogEntry
from django import template

from workstations import history

register = template.Library()


@register.filter
def field_changes(entry: LogEntry) -> list[tuple[str, str, str]]:
    """(field label, before, after) for each field the entry changed."""
    return history.field_changes(entry)
