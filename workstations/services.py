"""Every write to the inventory goes through these functions.

The API, the admin, the management commands and the CSV import all call them, so the rules
(validation, the status/assignee constraints, cache invalidation after commit) hold on every path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from performance import cache as perf_cache

from .choices import STATUSES_FORBIDDING_ASSIGNEE, Status
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
def workstation_save(*, workstation: Workstation) -> Workstation:
    """Validate and store a prepared workstation (new or changed)."""
    _save(workstation)
    _invalidate(WORKSTATION_NAMESPACES)
    return workstation


def workstation_create(*, data: Mapping[str, Any]) -> Workstation:
    """Create a workstation from validated field values."""
    workstation = Workstation()
    _apply(workstation, data)
    return workstation_save(workstation=workstation)


def workstation_update(*, workstation: Workstation, data: Mapping[str, Any]) -> Workstation:
    """Change the given fields of a workstation."""
    _apply(workstation, data)
    return workstation_save(workstation=workstation)


@transaction.atomic
def workstation_delete(*, workstation: Workstation) -> None:
    """Delete a workstation."""
    workstation.delete()
    _invalidate(WORKSTATION_NAMESPACES)


@transaction.atomic
def workstation_delete_many(*, queryset: QuerySet[Workstation]) -> int:
    """Delete every workstation of ``queryset``; returns how many went."""
    deleted, _ = queryset.filter(pk__in=list(queryset.values_list("pk", flat=True))).delete()
    _invalidate(WORKSTATION_NAMESPACES)
    return deleted


@transaction.atomic
def workstation_bulk_set_status(*, queryset: QuerySet[Workstation], status: Status) -> int:
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
    pks = list(queryset.values_list("pk", flat=True))
    updated = Workstation.objects.filter(pk__in=pks).update(**changes)
    _invalidate(WORKSTATION_NAMESPACES)
    return updated


@transaction.atomic
def workstation_bulk_create(
    *, workstations: Iterable[Workstation], batch_size: int = 500, validate: bool = True
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
    _invalidate(WORKSTATION_NAMESPACES)
    return created


@transaction.atomic
def workstation_bulk_import(
    *,
    create: Iterable[Workstation],
    update: Iterable[tuple[Workstation, Mapping[str, Any]]],
) -> tuple[list[Workstation], list[Workstation]]:
    """Create new workstations and change existing ones, all in one transaction.

    The file import's write: every change goes through ``workstation_update`` and every
    creation through ``workstation_bulk_create``, so each rule of theirs applies; any failure
    (``ValidationError``) rolls back every row. Returns the created and the updated ones.
    Updates come first, so a row may take a value another row of the same file gives up.
    """
    updated = [
        workstation_update(workstation=workstation, data=data) for workstation, data in update
    ]
    rows = list(create)
    created = workstation_bulk_create(workstations=rows, validate=False) if rows else []
    return created, updated


# Locations ---------------------------------------------------------------------------------


@transaction.atomic
def location_save(*, location: Location) -> Location:
    """Validate and store a prepared location."""
    _save(location)
    _invalidate(LOCATION_NAMESPACES)
    return location


def location_create(*, data: Mapping[str, Any]) -> Location:
    """Create a location from validated field values."""
    location = Location()
    _apply(location, data)
    return location_save(location=location)


def location_update(*, location: Location, data: Mapping[str, Any]) -> Location:
    """Change the given fields of a location."""
    _apply(location, data)
    return location_save(location=location)


@transaction.atomic
def location_delete(*, location: Location) -> None:
    """Delete a location that no workstation refers to (``ProtectedError`` otherwise)."""
    location.delete()
    _invalidate(LOCATION_NAMESPACES)


def user_changed(*, user: AbstractBaseUser) -> None:
    """A user's name or rights changed: responses that show assignees are stale."""
    _invalidate(WORKSTATION_NAMESPACES)
