"""A workstation's fields, declared once for the API, the list's rows, files and the admin.

Each field is named once, in the order the API and inventory files show it, with only what sets it
apart where it is shown: the admin group it is edited in, and for a relation the related field
that names it in a file. What the model already says is read from ``Workstation._meta`` instead of
being repeated: a field the database sets (the primary key, ``auto_now`` timestamps) is read-only
in the API and the admin and absent from files.

The serializer, the row renderer, the importer and its serializer, the exporter and the admin
derive their lists from here, because six copies kept equal by hand drift. A new model field
means one line here; ``tests/workstations/test_columns.py`` fails when the model has a field this
declaration does not place, or when a consumer's list is no longer the one derived here.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from .models import Workstation


@dataclass(frozen=True)
class Fieldset:
    """A group of the admin's change form; the first group has no title (``None``)."""

    title: str | None


MAIN = Fieldset(None)
HARDWARE = Fieldset("Hardware")
SOFTWARE = Fieldset("Software and network")
LIFECYCLE = Fieldset("Lifecycle")
#: The admin's groups, in the order the change form shows them.
FIELDSETS: tuple[Fieldset, ...] = (MAIN, HARDWARE, SOFTWARE, LIFECYCLE)


@dataclass(frozen=True)
class Column:
    """One field of a workstation and what distinguishes it where it is shown.

    ``fieldset``: the admin group it is shown in; ``None`` keeps it off the admin's form.
    ``admin_after``: the field it follows in its admin group, when that is not the field before
    it here (the admin groups hardware by what identifies it: make, model, form factor, serial).
    ``natural_key``: for a relation, the related object's field that names it, so a file
    travels between databases whose primary keys differ (a location by ``name``, a user by
    ``username``); the API shows it beside the key as ``<name>_<natural_key>``.
    """

    name: str
    fieldset: Fieldset | None = None
    admin_after: str | None = None
    natural_key: str | None = None

    @property
    def model_field(self) -> models.Field:
        return Workstation._meta.get_field(self.name)

    @property
    def read_only(self) -> bool:
        """Set by the database, never by a user: the same rule DRF's ``ModelSerializer`` applies."""
        field = self.model_field
        return field.primary_key or not field.editable

    @property
    def related_name(self) -> str | None:
        """The API field holding the related object's natural key (``location_name``)."""
        return f"{self.name}_{self.natural_key}" if self.natural_key else None

    @property
    def api_names(self) -> tuple[str, ...]:
        """The API fields this column gives: its own, then its natural key's if it has one."""
        return (self.name, self.related_name) if self.related_name else (self.name,)


#: Every field of a workstation, in the order of the API's objects and of a file's columns.
COLUMNS: tuple[Column, ...] = (
    Column("id"),
    Column("asset_tag", MAIN),
    Column("hostname", MAIN),
    Column("serial_number", HARDWARE, admin_after="form_factor"),
    Column("manufacturer", HARDWARE),
    Column("model_name", HARDWARE),
    Column("form_factor", HARDWARE),
    Column("os", SOFTWARE),
    Column("os_version", SOFTWARE),
    Column("cpu", HARDWARE),
    Column("ram_gb", HARDWARE),
    Column("storage_gb", HARDWARE),
    Column("mac_address", SOFTWARE),
    Column("ip_address", SOFTWARE),
    Column("status", MAIN),
    Column("assigned_to", MAIN, natural_key="username"),
    Column("department", MAIN),
    Column("location", LIFECYCLE, natural_key="name"),
    Column("purchase_date", LIFECYCLE),
    Column("purchase_cost", LIFECYCLE),
    Column("warranty_expires", LIFECYCLE),
    Column("last_audit_date", LIFECYCLE),
    Column("notes", LIFECYCLE),
    Column("created_at", LIFECYCLE),
    Column("updated_at", LIFECYCLE),
)
#: Model fields deliberately not declared above (none yet): the API, files and admin omit them.
NOT_DECLARED: frozenset[str] = frozenset()


# What each consumer reads -------------------------------------------------------------------

#: ``WorkstationSerializer.Meta.fields`` and ``read_only_fields``.
API_FIELDS: tuple[str, ...] = tuple(name for column in COLUMNS for name in column.api_names)
API_READ_ONLY_FIELDS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.read_only)

#: An inventory file's columns, in the order an export writes them: what a user may write.
FILE_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if not c.read_only)
#: File columns holding a related object's natural key, by column name.
NATURAL_KEYS: dict[str, str] = {
    c.name: c.natural_key for c in COLUMNS if c.natural_key and not c.read_only
}


def _admin_fieldsets() -> tuple[tuple[str | None, dict[str, list[str]]], ...]:
    groups: dict[Fieldset, list[str]] = {fieldset: [] for fieldset in FIELDSETS}
    shown = [column for column in COLUMNS if column.fieldset is not None]
    for column in shown:
        if column.admin_after is None:
            groups[column.fieldset].append(column.name)
    # The field a column follows may be declared after it: place those once the rest are in.
    for column in shown:
        if column.admin_after is not None:
            names = groups[column.fieldset]
            names.insert(names.index(column.admin_after) + 1, column.name)
    return tuple((fieldset.title, {"fields": names}) for fieldset, names in groups.items())


#: ``WorkstationAdmin.fieldsets`` and ``readonly_fields``.
ADMIN_FIELDSETS: tuple[tuple[str | None, dict[str, list[str]]], ...] = _admin_fieldsets()
ADMIN_READONLY_FIELDS: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.fieldset is not None and c.read_only
)
