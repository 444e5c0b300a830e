"""Every write to the inventory goes through these functions.

The API, the admin, the management commands and the CSV import all call them, so the rules
(validation, the status/assignee constraints, cache invalidation after commit) hold on every path,
and every write leaves its change history (``history``): who (``actor``: the request's user, or
the command and OS user when none is passed), when, each field before and after.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from performance import cache as perf_cache

from . import history
from .choices import STATUSES_FORBIDDING_ASSIGNEE, Status
from .history import ActorLike
from .models import Location, Workstation

#: Cache namespaces whose responses show workstation or location data.
WORKSTATION_NAMESPACES = ("workstations", "locations")
LOCATION_NAMESPACES = ("locations", "workstations")


def _invalidate(namespaces: Iterable[str]) -> None:
    perf_cache.invalidate_on_commit(*namespaces)


def _save(instance: Workstation | Location) -> None:
    instance.full_clean()
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:
        # A concurrent write took a unique value between full_clean and save. It has committed
        # by now, so validating again names the field, as full_clean would have.
        instance.validate_unique()
        instance.validate_constraints()
        raise ValidationError(
            "This change conflicts with another record (a unique value is already taken)."
        ) from exc


def _apply(instance: Workstation | Location, data: Mapping[str, Any]) -> None:
    for field, value in data.items():
        setattr(instance, field, value)


# Workstations ------------------------------------------------------------------------------


@transaction.atomic
def workstation_save(*, workstation: Workstation, actor: ActorLike = None) -> Workstation:
    """Validate and store a prepared workstation (new or changed)."""
    with history.acting_as(actor):
        _save(workstation)
    _invalidate(WORKSTATION_NAMESPACES)
    return workstation


def workstation_create(*, data: Mapping[str, Any], actor: ActorLike = None) -> Workstation:
    """Create a workstation from validated field values."""
    workstation = Workstation()
    _apply(workstation, data)
    return workstation_save(workstation=workstation, actor=actor)


def workstation_update(
    *, workstation: Workstation, data: Mapping[str, Any], actor: ActorLike = None
) -> Workstation:
    """Change the given fields of a workstation."""
    _apply(workstation, data)
    return workstation_save(workstation=workstation, actor=actor)


@transaction.atomic
def workstation_delete(*, workstation: Workstation, actor: ActorLike = None) -> None:
    """Delete a workstation."""
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
    target = (getattr(assigned_to, "pk", assigned_to), Status.DEPLOYED)
    already = (workstation.assigned_to_id, workstation.status) == target
    with history.acting_as(actor, event="checkout", note=note):
        workstation = workstation_update(
            workstation=workstation, data={"assigned_to": assigned_to, "status": Status.DEPLOYED}
        )
        if already:
            history.record_bulk(history.Action.UPDATE, [(workstation, workstation)], force=True)
    return workstation


@transaction.atomic
def workstation_checkin(
    *, workstation: Workstation, note: str = "", actor: ActorLike = None
) -> Workstation:
    """Take a workstation back: unassigned and in stock, recorded with ``note`` (also when it
    was in stock already: the note may say what came back)."""
    already = (workstation.assigned_to_id, workstation.status) == (None, Status.IN_STOCK)
    with history.acting_as(actor, event="checkin", note=note):
        workstation = workstation_update(
            workstation=workstation, data={"assigned_to": None, "status": Status.IN_STOCK}
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
        new = copy.copy(old)
        new._state = copy.copy(old._state)
        new._state.fields_cache = dict(old._state.fields_cache)
        _apply(new, changes)
        after.append(new)
    history.record_bulk(history.Action.UPDATE, zip(before, after, strict=True), actor=actor)
    _invalidate(WORKSTATION_NAMESPACES)
    return updated


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


# Locations ---------------------------------------------------------------------------------


@transaction.atomic
def location_save(*, location: Location, actor: ActorLike = None) -> Location:
    """Validate and store a prepared location."""
    with history.acting_as(actor):
        _save(location)
    _invalidate(LOCATION_NAMESPACES)
    return location


def location_create(*, data: Mapping[str, Any], actor: ActorLike = None) -> Location:
    """Create a location from validated field values."""
    location = Location()
    _apply(location, data)
    return location_save(location=location, actor=actor)


def location_update(
    *, location: Location, data: Mapping[str, Any], actor: ActorLike = None
) -> Location:
    """Change the given fields of a location."""
    _apply(location, data)
    return location_save(location=location, actor=actor)


@transaction.atomic
def location_delete(*, location: Location, actor: ActorLike = None) -> None:
    """Delete a location that no workstation refers to (``ProtectedError`` otherwise)."""
    with history.acting_as(actor):
        location.delete()
    _invalidate(LOCATION_NAMESPACES)


def user_changed(*, user: AbstractBaseUser) -> None:
    """A user's name or rights changed: responses that show assignees are stale."""
    _invalidate(WORKSTATION_NAMESPACES)
