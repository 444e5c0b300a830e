"""Admin for workstations and locations; every save and action goes through the services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from . import columns, selectors, services
from .choices import Status
from .models import Location, Workstation


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ["name", "site", "building", "room", "workstation_count"]
    list_filter = ["site", "building"]
    search_fields = ["name", "site", "building", "room"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Location]:
        return selectors.location_list()

    @admin.display(description="Workstations", ordering="workstation_count")
    def workstation_count(self, obj: Location) -> int:
        return obj.workstation_count

    def save_model(self, request: HttpRequest, obj: Location, form: Any, change: bool) -> None:
        services.location_save(location=obj)

    def delete_model(self, request: HttpRequest, obj: Location) -> None:
        services.location_delete(location=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Location]) -> None:
        for location in queryset:
            services.location_delete(location=location)


@admin.register(Workstation)
class WorkstationAdmin(admin.ModelAdmin):
    list_display = [
        "hostname",
        "asset_tag",
        "status",
        "form_factor",
        "manufacturer",
        "model_name",
        "assigned_to",
        "department",
        "location",
        "warranty_expires",
    ]
    list_filter = ["status", "form_factor", "location", "manufacturer", "os", "department"]
    list_select_related = ["location", "assigned_to"]
    search_fields = ["hostname", "asset_tag", "serial_number", "ip_address", "mac_address"]
    date_hierarchy = "purchase_date"
    autocomplete_fields = ["location", "assigned_to"]
    actions = ["mark_in_repair", "retire"]
    # The form's groups and the fields the database sets, declared once in ``columns``.
    fieldsets = columns.ADMIN_FIELDSETS
    readonly_fields = columns.ADMIN_READONLY_FIELDS

    def save_model(self, request: HttpRequest, obj: Workstation, form: Any, change: bool) -> None:
        services.workstation_save(workstation=obj)

    def delete_model(self, request: HttpRequest, obj: Workstation) -> None:
        services.workstation_delete(workstation=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Workstation]) -> None:
        services.workstation_delete_many(queryset=queryset)

    def _set_status(self, request: HttpRequest, queryset: QuerySet, status: Status) -> None:
        try:
            count = services.workstation_bulk_set_status(queryset=queryset, status=status)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return
        self.message_user(
            request, f"{count} workstation(s) marked {status.label.lower()}.", messages.SUCCESS
        )

    @admin.action(description="Mark selected workstations in repair", permissions=["change"])
    def mark_in_repair(self, request: HttpRequest, queryset: QuerySet[Workstation]) -> None:
        self._set_status(request, queryset, Status.IN_REPAIR)

    @admin.action(description="Retire selected workstations", permissions=["change"])
    def retire(self, request: HttpRequest, queryset: QuerySet[Workstation]) -> None:
        self._set_status(request, queryset, Status.RETIRED)
