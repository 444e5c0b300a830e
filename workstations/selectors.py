"""Every read of the inventory: querysets shaped so lists run a constant number of queries."""

from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from django.db.models import Count, QuerySet

from . import history
from .choices import Status
from .models import Location, Workstation

#: The relations a workstation is shown with, joined in wherever one is read to be shown.
WORKSTATION_SHOWN_WITH = ("location", "assigned_to")


def workstation_list() -> QuerySet[Workstation]:
    """Workstations with their location and assignee joined in (no N+1 on lists)."""
    return Workstation.objects.select_related(*WORKSTATION_SHOWN_WITH)


def location_list() -> QuerySet[Location]:
    """Locations annotated with how many workstations each holds, by name.

    The explicit ``order_by``: Django drops ``Meta.ordering`` from a GROUP BY query, which left
    the admin's autocomplete unordered (and its pagination unstable).
    """
    return Location.objects.annotate(workstation_count=Count("workstations")).order_by("name")


def workstation_summary(*, queryset: QuerySet[Workstation] | None = None) -> dict[str, Any]:
    """Counts of workstations by status and by location, in two grouped queries."""
    queryset = Workstation.objects.all() if queryset is None else queryset
    by_status = dict.fromkeys(Status.values, 0)
    for row in queryset.order_by().values("status").annotate(n=Count("id")):
        by_status[row["status"]] = row["n"]
    by_location = [
        {
            "location_id": row["location_id"],
            "location": row["location__name"],
            "count": row["n"],
        }
        for row in queryset.order_by()
        .values("location_id", "location__name")
        .annotate(n=Count("id"))
        .order_by("location__name")
    ]
    return {"total": sum(by_status.values()), "by_status": by_status, "by_location": by_location}


# The change history (``history``) ------------------------------------------------------------


def change_list() -> QuerySet[LogEntry]:
    """Every recorded change of a workstation or a location, newest first."""
    return (
        LogEntry.objects.filter(
            content_type__app_label=Workstation._meta.app_label,
            content_type__model__in=history.OBJECT_TYPES,
        )
        .select_related("content_type", "actor")
        .order_by("-timestamp", "-id")
    )


def workstation_history(*, workstation_id: int) -> QuerySet[LogEntry]:
    """The changes of one workstation, newest first (those made before it was deleted too)."""
    return change_list().filter(
        content_type__model=Workstation._meta.model_name, object_id=workstation_id
    )
