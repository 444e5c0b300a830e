"""Every read of the inventory: querysets shaped so lists run a constant number of queries."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from .choices import Status
from .models import Location, Workstation


def workstation_list() -> QuerySet[Workstation]:
    """Workstations with their location and assignee joined in (no N+1 on lists)."""
    return Workstation.objects.select_related("location", "assigned_to")


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
