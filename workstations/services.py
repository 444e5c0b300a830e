"""Every write to the inventory goes through these functions.

The API, the admin, the management commands and the CSV import all call them, so the rules
(validation, the status/assignee constraints, cache invalidation after commit) hold on every path,
and every write leaves its change history (``history``): who (``actor``: the request's user, or
the command and OS user when none is passed), when, each field before and after.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet, UniqueConstraint
from django.utils import timezone

from performance import cache as perf_cache

from . import history, selectors
from .choices import STATUSES_FORBIDDING_ASSIGNEE, Status
from .history import ActorLike
from .models import Location, Workstation

#: Cache namespaces whose responses show workstation or location data.
WORKSTATION_NAMESPACES = ("workstations", "locations")
LOCATION_NAMESPACES = ("locations", "workstations")


#: Called with the row as it is now, locked, before a change is applied to it: raises to refuse
#: the change (the API's ``If-Match``, the admin's "changed since you opened it").
Precondition = Callable[[Any], None]

_Model = TypeVar("_Model", Workstation, Location)


def _invalidate(namespaces: Iterable[str]) -> None:
    perf_cache.invalidate_on_commit(*namespaces)


def _locked(instance: _Model, *, related: Collection[str] = ()) -> _Model:
    """``instance``'s row as committed now, locked until the transaction ends, so that what is
    checked and changed is what is stored (PostgreSQL: ``FOR UPDATE``; SQLite's transactions
    take the write lock when they begin: ``transaction_mode`` in the settings). ``related``:
    the relations read in the same query (the rows they join are not locked)."""
    manager = type(instance)._default_manager
    if not related:
        return manager.select_for_update().get(pk=instance.pk)
    return manager.select_related(*related).select_for_update(of=("self",)).get(pk=instance.pk)


def _save(
    instance: Workstation | Location,
    *,
    fields: Collection[str] | None = None,
    before: Workstation | Location | None = None,
) -> None:
    """Validate, then store ``instance``: every column of a new row, only ``fields`` (and the
    time of the change) of an existing one, so a concurrent change of other columns stays.

    ``before``: the row as it was when locked for this change (``_locked``), ``instance`` the
    same row changed. Its history is recorded from the two, without reading the row again, as
    django-auditlog's own receiver does; and unless the change sets a unique value, the save
    takes no savepoint: every rule on the fields it changes was checked against the locked row,
    so only a value another row takes meanwhile can make the database refuse it."""
    adding = fields is None or instance._state.adding
    if adding:
        instance.full_clean()
    else:
        instance.full_clean(exclude=_unasked(instance, fields))
    if before is not None and not adding and not set(fields) & _unique_fields(type(instance)):
        _store(instance, fields, before)
        return
    try:
        with transaction.atomic():
            _store(instance, None if adding else fields, before)
    except IntegrityError as exc:
        # A concurrent write took a unique value between full_clean and save. It has committed
        # by now, so validating again names the field, as full_clean would have.
        instance.validate_unique()
        instance.validate_constraints()
        # Not seen (yet) by this transaction: the database's own message names the column.
        field = _unique_field_in(instance, str(exc))
        if field is not None:
            raise ValidationError(
                {field: f"This {_verbose(instance, field)} was just taken by another record."}
            ) from exc
        raise ValidationError(
            "This change conflicts with another record (a unique value is already taken)."
        ) from exc


def _store(
    instance: Workstation | Location,
    fields: Collection[str] | None,
    before: Workstation | Location | None,
) -> None:
    if fields is None:
        instance.save()
        return
    if before is None:
        instance.save(update_fields=[*fields, "updated_at"])
        return
    history.save_changed(instance, before, update_fields=[*fields, "updated_at"])


@functools.cache
def _unique_fields(model: type[Workstation | Location]) -> frozenset[str]:
    """The fields a uniqueness rule of ``model`` names (a field's own, a unique constraint's,
    ``unique_together``)."""
    meta = model._meta
    names = {f.name for f in meta.concrete_fields if f.unique and not f.primary_key}
    for group in meta.unique_together:
        names.update(group)
    for constraint in meta.constraints:
        if isinstance(constraint, UniqueConstraint):
            names.update(meta.get_field(name).name for name in constraint.fields)
            if constraint.condition is not None:
                names.update(constraint.condition.referenced_base_fields)
            if constraint.expressions:  # (what an expression reads: every field, to be safe)
                return frozenset(f.name for f in meta.concrete_fields)
    return frozenset(names)


def _unasked(instance: Workstation | Location, fields: Collection[str]) -> set[str]:
    """The fields whose checks a change of ``fields`` need not run again: those it leaves as
    they are and that no constraint shares with a changed one (a stored row met them, and the
    database holds them too). Django runs a field's validators, its uniqueness and every
    constraint on it only for the fields not excluded, and skips a constraint that names an
    excluded field: a change of the notes runs no query to validate, one of the status still
    checks it against the assignee."""
    meta = instance._meta
    changed = set(fields)
    groups = [set(fields_) for fields_ in meta.unique_together]
    for constraint in meta.constraints:
        named = set(getattr(constraint, "fields", ()))
        condition = getattr(constraint, "condition", None)
        if condition is not None:
            named |= condition.referenced_base_fields
        groups.append({meta.get_field(name).name for name in named})
    grown = True
    while grown:  # (a constraint may join a field to another's through a third)
        grown = False
        for group in groups:
            if group & changed and not group <= changed:
                changed |= group
                grown = True
    return {field.name for field in meta.concrete_fields} - changed


def _unique_field_in(instance: Workstation | Location, message: str) -> str | None:
    """The unique field a database's refusal names: PostgreSQL says ``Key (column)=...`` or
    the constraint's name, SQLite ``UNIQUE constraint failed: table.column``."""
    meta = instance._meta
    names = {
        field.name: {f"({field.column})", f"{meta.db_table}.{field.column}"}
        for field in meta.concrete_fields
        if field.unique and not field.primary_key
    }
    for constraint in meta.constraints:
        fields = getattr(constraint, "fields", ())
        if len(fields) == 1:
            column = meta.get_field(fields[0]).column
            names.setdefault(fields[0], set()).update(
                {f'"{constraint.name}"', f"({column})", f"{meta.db_table}.{column}"}
            )
    for name, marks in names.items():
        if any(mark in message for mark in marks):
            return name
    return None


def _verbose(instance: Workstation | Location, field: str) -> str:
    return str(instance._meta.get_field(field).verbose_name)


def _apply(instance: Workstation | Location, data: Mapping[str, Any]) -> None:
    for field, value in data.items():
        setattr(instance, field, value)


def _snapshot(instance: _Model) -> _Model:
    """A copy of ``instance`` and its loaded relations, to change while it stays as it was (the
    "before" of a bulk write's history, which no signal records)."""
    copied = copy.copy(instance)
    copied._state = copy.copy(instance._state)
    copied._state.fields_cache = dict(instance._state.fields_cache)
    return copied


# Workstations ------------------------------------------------------------------------------


@transaction.atomic
def workstation_save(
    *, workstation: Workstation, fields: Collection[str] | None = None, actor: ActorLike = None
) -> Workstation:
    """Validate and store a prepared workstation (new or changed); of a changed one, only
    ``fields`` when given (every column otherwise)."""
    return _workstation_save(workstation, fields=fields, actor=actor)


def _workstation_save(
    workstation: Workstation,
    *,
    fields: Collection[str] | None,
    actor: ActorLike,
    before: Workstation | None = None,
) -> Workstation:
    """``workstation_save`` within a transaction the caller holds (no savepoint of its own);
    ``before``: the row as locked for this change (``_save``)."""
    with history.acting_as(actor):
        _save(workstation, fields=fields, before=before)
    _invalidate(WORKSTATION_NAMESPACES)
    return workstation


def workstation_create(*, data: Mapping[str, Any], actor: ActorLike = None) -> Workstation:
    """Create a workstation from validated field values."""
    workstation = Workstation()
    _apply(workstation, data)
    return workstation_save(workstation=workstation, actor=actor)


@transaction.atomic
def workstation_update(
    *,
    workstation: Workstation,
    data: Mapping[str, Any],
    precondition: Precondition | None = None,
    actor: ActorLike = None,
) -> Workstation:
    """Change the given fields of a workstation; returns it as stored now.

    The change is applied to the row as committed (locked), not to the copy the caller read, and
    only its fields are written: two clients changing different fields at once both keep their
    change, and the rules are checked against what is really there.
    ``Workstation.DoesNotExist`` when it was deleted meanwhile.
    """
    # With the relations a workstation is shown with (its location, its assignee): the row
    # returned is shown as it is, without a query for each.
    current = _locked(workstation, related=selectors.WORKSTATION_SHOWN_WITH)
    if precondition is not None:
        precondition(current)
    before = _snapshot(current)
    _apply(current, data)
    return _workstation_save(current, fields=list(data), before=before, actor=actor)


@transaction.atomic
def workstation_delete(
    *, workstation: Workstation, precondition: Precondition | None = None, actor: ActorLike = None
) -> None:
    """Delete a workstation (``precondition``: checked on the locked row first)."""
    if precondition is not None:
        precondition(_locked(workstation))
    with history.acting_as(actor):
        workstation.delete()
    _invalidate(WORKSTATION_NAMESPACES)


@transaction.atomic
def workstation_delete_many(*, queryset: QuerySet[Workstation], actor: ActorLike = None) -> int:
    """Delete every workstation of ``queryset``; returns how many went.

    The model has delete receivers (the history's), so Django loads the rows and sends a
    signal for each before deleting them: every workstation gets its entry."""
    with history.acting_as(actor):
        deleted, _ = queryset.filter(pk__in=list(queryset.values_list("pk", flat=True))).delete()
    _invalidate(WORKSTATION_NAMESPACES)
    return deleted


@transaction.atomic
def workstation_checkout(
    *, workstation: Workstation, assigned_to: Any, note: str = "", actor: ActorLike = None
) -> Workstation:
    """Hand a workstation to ``assigned_to``: assigned and deployed, recorded with ``note``.

    The rules of a deployment hold (an active assignee: ``Workstation.clean``). Checking it
    out again to whoever has it changes no field, and is recorded all the same."""
    return _hand_over(
        workstation, assigned_to, Status.DEPLOYED, event="checkout", note=note, actor=actor
    )


@transaction.atomic
def workstation_checkin(
    *, workstation: Workstation, note: str = "", actor: ActorLike = None
) -> Workstation:
    """Take a workstation back: unassigned and in stock, recorded with ``note`` (also when it
    was in stock already: the note may say what came back)."""
    return _hand_over(workstation, None, Status.IN_STOCK, event="checkin", note=note, actor=actor)


def _hand_over(
    workstation: Workstation,
    assigned_to: Any,
    status: Status,
    *,
    event: str,
    note: str,
    actor: ActorLike,
) -> Workstation:
    """Set the assignee and status of a check-out or check-in, recorded as ``event`` with
    ``note``; recorded all the same when neither changes (the event is worth keeping)."""
    target = (getattr(assigned_to, "pk", assigned_to), status)
    already = (workstation.assigned_to_id, workstation.status) == target
    with history.acting_as(actor, event=event, note=note):
        workstation = workstation_update(
            workstation=workstation, data={"assigned_to": assigned_to, "status": status}
        )
        if already:
            history.record_bulk(history.Action.UPDATE, [(workstation, workstation)], force=True)
    return workstation


@transaction.atomic
def workstation_bulk_set_status(
    *, queryset: QuerySet[Workstation], status: Status, actor: ActorLike = None
) -> int:
    """Move many workstations to ``status`` in one statement.

    Statuses that forbid an assignee (in stock, retired, lost) clear it, so the rules hold without
    a per-row check; a status that needs an assignee cannot be set in bulk.
    """
    if status not in Status.values:
        raise ValidationError(f"Unknown status {status!r}.")
    if status == Status.DEPLOYED:
        raise ValidationError("Deploy workstations one at a time: each needs an assignee.")
    # update() skips auto_now; set updated_at so lists ordered by it stay honest.
    changes: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if status in STATUSES_FORBIDDING_ASSIGNEE:
        changes["assigned_to"] = None
    # The rows as they were, for their history: update() sends no signal. Locked on PostgreSQL,
    # so that what is recorded as "before" is what the update changes.
    before = list(Workstation.objects.filter(pk__in=queryset.values("pk")).select_for_update())
    history.load_related(before, "assigned_to", "location")
    updated = Workstation.objects.filter(pk__in=[ws.pk for ws in before]).update(**changes)
    after = []
    for old in before:
        new = _snapshot(old)
        _apply(new, changes)
        after.append(new)
    history.record_bulk(history.Action.UPDATE, zip(before, after, strict=True), actor=actor)
    _invalidate(WORKSTATION_NAMESPACES)
    return updated


#: The fields the admin's bulk edit sets on many workstations at once.
BULK_EDIT_FIELDS = ("location", "department", "status", "assigned_to")
#: How many refused rows a bulk edit names before "and N more".
_MAX_NAMED = 10


@transaction.atomic
def workstation_bulk_update(
    *, queryset: QuerySet[Workstation], data: Mapping[str, Any], actor: ActorLike = None
) -> int:
    """Set the same ``data`` (among ``BULK_EDIT_FIELDS``) on every workstation of ``queryset``;
    returns how many changed. All or nothing: every row is validated as a single change would
    be (a deployed machine needs an assignee...) and one refused row refuses them all, named
    with what is wrong. A status that forbids an assignee clears it unless ``data`` sets one.
    """
    unknown = sorted(set(data) - set(BULK_EDIT_FIELDS))
    if unknown:
        raise ValidationError(f"Not editable in bulk: {', '.join(unknown)}.")
    changes = dict(data)
    if changes.get("status") in STATUSES_FORBIDDING_ASSIGNEE and "assigned_to" not in changes:
        changes["assigned_to"] = None
    rows = list(
        Workstation.objects.select_for_update()
        .filter(pk__in=list(queryset.values_list("pk", flat=True)))
        .order_by("hostname")
    )
    # The rows as they were, for their history: bulk_update() sends no signal.
    history.load_related(rows, "assigned_to", "location")
    before = [_snapshot(workstation) for workstation in rows]
    # The same values on every row: fields are checked once (a relation costs a query), the
    # rules between fields (``Workstation.clean``) on every row. Nothing unique is set here.
    others = [f.name for f in Workstation._meta.fields if f.name not in changes]
    refused: list[str] = []
    for index, workstation in enumerate(rows):
        _apply(workstation, changes)
        try:
            workstation.full_clean(
                exclude=others if index == 0 else [*others, *changes],
                validate_unique=False,
                validate_constraints=False,
            )
        except ValidationError as exc:
            refused.append(f"{workstation.hostname}: {' '.join(exc.messages)}")
    if refused:
        more = len(refused) - _MAX_NAMED
        named = refused[:_MAX_NAMED] + ([f"and {more} more"] if more > 0 else [])
        raise ValidationError([f"Nothing was changed. {named[0]}", *named[1:]])
    fields = [*changes, "updated_at"]
    for workstation in rows:
        workstation.updated_at = timezone.now()
    Workstation.objects.bulk_update(rows, fields, batch_size=500)
    history.record_bulk(history.Action.UPDATE, zip(before, rows, strict=True), actor=actor)
    _invalidate(WORKSTATION_NAMESPACES)
    return len(rows)


@transaction.atomic
def workstation_bulk_create(
    *,
    workstations: Iterable[Workstation],
    batch_size: int = 500,
    validate: bool = True,
    actor: ActorLike = None,
) -> list[Workstation]:
    """Validate every workstation, then insert them all in one transaction.

    Nothing is written unless every row is valid; the caller gets the ``ValidationError`` of the
    first bad one. Importers that want every error at once validate with ``full_clean`` first.
    """
    rows = list(workstations)
    if validate:
        for workstation in rows:
            workstation.full_clean()
    try:
        created = Workstation.objects.bulk_create(rows, batch_size=batch_size)
    except IntegrityError as exc:
        raise ValidationError(
            "Two rows, or a row and an existing workstation, share a unique value."
        ) from exc
    # bulk_create sends no signal: one entry per workstation here.
    history.load_related(created, "assigned_to", "location")
    history.record_bulk(history.Action.CREATE, ((None, ws) for ws in created), actor=actor)
    _invalidate(WORKSTATION_NAMESPACES)
    return created


@transaction.atomic
def workstation_bulk_import(
    *,
    create: Iterable[Workstation],
    update: Iterable[tuple[Workstation, Mapping[str, Any]]],
    actor: ActorLike = None,
) -> tuple[list[Workstation], list[Workstation]]:
    """Create new workstations and change existing ones, all in one transaction.

    The file import's write: every change goes through ``workstation_update`` and every
    creation through ``workstation_bulk_create``, so each rule of theirs applies; any failure
    (``ValidationError``) rolls back every row. Returns the created and the updated ones.
    Updates come first, so a row may take a value another row of the same file gives up.
    """
    updated = [
        workstation_update(workstation=workstation, data=data, actor=actor)
        for workstation, data in update
    ]
    rows = list(create)
    created = (
        workstation_bulk_create(workstations=rows, validate=False, actor=actor) if rows else []
    )
    return created, updated


# Locations ---------------------------------------------------------------------------------


@transaction.atomic
def location_save(
    *, location: Location, fields: Collection[str] | None = None, actor: ActorLike = None
) -> Location:
    """Validate and store a prepared location (of a changed one, only ``fields`` when given)."""
    return _location_save(location, fields=fields, actor=actor)


def _location_save(
    location: Location,
    *,
    fields: Collection[str] | None,
    actor: ActorLike,
    before: Location | None = None,
) -> Location:
    """``location_save`` within a transaction the caller holds, as ``_workstation_save``."""
    with history.acting_as(actor):
        _save(location, fields=fields, before=before)
    _invalidate(LOCATION_NAMESPACES)
    return location


def location_create(*, data: Mapping[str, Any], actor: ActorLike = None) -> Location:
    """Create a location from validated field values."""
    location = Location()
    _apply(location, data)
    return location_save(location=location, actor=actor)


@transaction.atomic
def location_update(
    *,
    location: Location,
    data: Mapping[str, Any],
    precondition: Precondition | None = None,
    actor: ActorLike = None,
) -> Location:
    """Change the given fields of a location, as ``workstation_update`` does."""
    current = _locked(location)
    if precondition is not None:
        precondition(current)
    before = _snapshot(current)
    _apply(current, data)
    return _location_save(current, fields=list(data), before=before, actor=actor)


@transaction.atomic
def location_delete(
    *, location: Location, precondition: Precondition | None = None, actor: ActorLike = None
) -> None:
    """Delete a location that no workstation refers to (``ProtectedError`` otherwise)."""
    if precondition is not None:
        precondition(_locked(location))
    with history.acting_as(actor):
        location.delete()
    _invalidate(LOCATION_NAMESPACES)


def user_changed(*, user: AbstractBaseUser) -> None:
    """A user's name or rights changed: responses that show assignees are stale."""
    _invalidate(WORKSTATION_NAMESPACES)
