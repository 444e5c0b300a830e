"""Every list of a workstation's fields is the one ``workstations.columns`` declares.

A field added to the model but not declared, or a consumer given a list of its own again, fails
here rather than in a client: the API, the list's rows, files and the admin show one list.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db.models import UniqueConstraint
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import columns, importing
from workstations.api import rows
from workstations.api.serializers import WorkstationSerializer
from workstations.choices import Status
from workstations.columns import COLUMNS
from workstations.models import Workstation

BY_NAME = {column.name: column for column in COLUMNS}


def api_names() -> list[str]:
    """What the API shows, spelt out here rather than taken from ``columns``."""
    names = []
    for column in COLUMNS:
        names.append(column.name)
        if column.natural_key:
            names.append(f"{column.name}_{column.natural_key}")
    return names


def writable() -> list[str]:
    return [column.name for column in COLUMNS if not column.read_only]


# The declaration ---------------------------------------------------------------------------


def test_every_model_field_is_declared_exactly_once_or_deliberately_left_out():
    model_fields = {f.name for f in Workstation._meta.concrete_fields}
    model_fields |= {f.name for f in Workstation._meta.many_to_many}
    declared = [column.name for column in COLUMNS]
    assert len(declared) == len(set(declared)), "a field is declared twice"
    assert not set(declared) & columns.NOT_DECLARED
    assert set(declared) | columns.NOT_DECLARED == model_fields


def test_read_only_means_the_database_sets_it():
    for column in COLUMNS:
        field = Workstation._meta.get_field(column.name)
        assert column.read_only == (field.primary_key or not field.editable), column.name


def test_a_natural_key_is_a_relation_and_names_one_object():
    related = [column for column in COLUMNS if column.natural_key]
    assert related, "location and assignee are written by name"
    for column in related:
        field = column.model_field
        assert field.many_to_one, column.name
        assert field.related_model._meta.get_field(column.natural_key).unique, column.name


def test_only_the_primary_key_is_left_off_the_admin_form():
    assert [c.name for c in COLUMNS if c.fieldset is None] == [Workstation._meta.pk.name]
    assert {c.fieldset for c in COLUMNS if c.fieldset is not None} == set(columns.FIELDSETS)


# The API -----------------------------------------------------------------------------------


def test_the_serializer_shows_the_declared_fields_in_order():
    assert list(WorkstationSerializer.Meta.fields) == api_names()
    assert list(WorkstationSerializer().fields) == api_names()


def test_the_serializer_reads_only_what_the_database_sets_and_the_natural_keys():
    read_only = [c.name for c in COLUMNS if c.read_only]
    assert list(WorkstationSerializer.Meta.read_only_fields) == read_only
    fields = WorkstationSerializer().fields
    natural_keys = [c.related_name for c in COLUMNS if c.natural_key]
    assert [name for name, field in fields.items() if field.read_only] == [
        name for name in api_names() if name in read_only or name in natural_keys
    ]
    for name in natural_keys:
        assert isinstance(fields[name], serializers.SerializerMethodField), name


def test_the_list_rows_are_the_serializers_fields():
    assert [name for name, _ in rows._COLUMNS] == api_names()
    paths = dict(rows._COLUMNS)
    for column in COLUMNS:
        if column.natural_key:
            assert paths[column.name] == f"{column.name}_id"
            assert paths[column.related_name] == f"{column.name}__{column.natural_key}"


# Files -------------------------------------------------------------------------------------


def test_a_file_has_a_column_for_every_field_a_user_may_write():
    assert list(importing.COLUMNS) == writable()
    assert list(importing._RELATED_COLUMNS) == [c.name for c in COLUMNS if c.natural_key]


def test_the_import_serializer_checks_the_file_columns_that_are_not_relations():
    expected = [name for name in writable() if not BY_NAME[name].natural_key]
    assert list(importing.WorkstationImportSerializer.Meta.fields) == expected
    fields = importing.WorkstationImportSerializer().fields
    assert list(fields) == expected
    # Uniqueness is checked once per file, not by a query per row.
    for name, field in fields.items():
        assert not any(isinstance(v, UniqueValidator) for v in field.validators), name


def test_the_importer_checks_every_column_the_model_says_is_unique():
    unique = {c.name for c in COLUMNS if c.model_field.unique}
    unique |= {
        constraint.fields[0]
        for constraint in Workstation._meta.constraints
        if isinstance(constraint, UniqueConstraint) and len(constraint.fields) == 1
    }
    assert list(importing._UNIQUE_COLUMNS) == [name for name in writable() if name in unique]


@pytest.mark.django_db
def test_an_export_row_has_every_file_column_and_relations_by_natural_key():
    workstation = WorkstationFactory(
        status=Status.DEPLOYED,
        assigned_to=UserFactory(username="jane"),
        location=LocationFactory(name="HQ"),
    )
    row = importing.export_row(Workstation.objects.get(pk=workstation.pk))
    assert list(row) == writable()
    for column in COLUMNS:
        if column.natural_key:
            related = getattr(workstation, column.name)
            assert row[column.name] == getattr(related, column.natural_key)


# The admin ---------------------------------------------------------------------------------


def admin_fieldsets() -> list[tuple[str | None, list[str]]]:
    model_admin = admin.site._registry[Workstation]
    return [(title, list(options["fields"])) for title, options in model_admin.fieldsets]


def test_the_admin_groups_each_shown_field_once_in_its_declared_fieldset():
    fieldsets = admin_fieldsets()
    assert [title for title, _ in fieldsets] == [f.title for f in columns.FIELDSETS]
    shown = [name for _, names in fieldsets for name in names]
    assert sorted(shown) == sorted(c.name for c in COLUMNS if c.fieldset is not None)
    for title, names in fieldsets:
        for name in names:
            assert BY_NAME[name].fieldset.title == title, name


def test_the_admin_orders_a_fieldset_as_declared_but_where_a_field_says_after():
    for _, names in admin_fieldsets():
        in_order = [name for name in names if BY_NAME[name].admin_after is None]
        assert in_order == [name for name in BY_NAME if name in in_order]
        for name in names:
            after = BY_NAME[name].admin_after
            if after is not None:
                assert names[names.index(name) - 1] == after, name


def test_the_admin_shows_what_the_database_sets_read_only():
    model_admin = admin.site._registry[Workstation]
    assert list(model_admin.readonly_fields) == [
        c.name for c in COLUMNS if c.fieldset is not None and c.read_only
    ]


@pytest.mark.django_db
def test_the_admin_form_edits_every_shown_field_a_user_may_write(rf, admin_user):
    request = rf.get("/")
    request.user = admin_user
    form = admin.site._registry[Workstation].get_form(request)
    shown = [name for _, names in admin_fieldsets() for name in names]
    # Besides them, the hidden version of the object the form was opened on (admin.py).
    assert list(form.base_fields) == [
        *(name for name in shown if not BY_NAME[name].read_only),
        "version",
    ]
    assert form.base_fields["version"].widget.is_hidden
