"""Admin for workstations and locations; every save and action goes through the services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import BadRequest, ValidationError
from django.db import connections, router
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from . import columns, selectors, services
from .admin_files import WorkstationFilesMixin
from .choices import Status
from .models import Location, Workstation


class SelectionCheckedAdmin(admin.ModelAdmin):
    """A changelist whose actions refuse, with a 400, a selection no row can have.

    Django filters the queryset with ``pk__in`` and the ids as posted: an id that is not a
    number raises ``ValueError``, and one beyond the database's integers ``OverflowError``
    (SQLite), both a 500. An id of the right type and range that matches no row is left to
    Django, which acts on the rows that exist.
    """

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if request.POST.get("action") and request.POST.get("select_across", "0") == "0":
            self._check_selection(request.POST.getlist(ACTION_CHECKBOX_NAME))
        return super().response_action(request, queryset)

    def _check_selection(self, selected: list[str]) -> None:
        pk = self.model._meta.pk
        connection = connections[router.db_for_read(self.model)]
        low, high = connection.ops.integer_field_range(pk.get_internal_type())
        for value in selected:
            try:
                python = pk.to_python(value)
            except ValidationError as exc:
                raise BadRequest("An action's selection holds an id that is not one.") from exc
            if isinstance(python, int) and not (
                (low is None or python >= low) and (high is None or python <= high)
            ):
                raise BadRequest("An action's selection holds an id out of range.")


@admin.register(Location)
class LocationAdmin(SelectionCheckedAdmin):
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
class WorkstationAdmin(WorkstationFilesMixin, SelectionCheckedAdmin):
    # Import (preview, confirm) and export of inventory files: ``admin_files``.
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


# Users and groups are Django's own admins, with the same check: staff assign workstations to
# the users they manage here, and the same selection would be a 500 there.
admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class UserAdmin(SelectionCheckedAdmin, auth_admin.UserAdmin):
    """Django's user admin, refusing an impossible selection (``SelectionCheckedAdmin``)."""


@admin.register(Group)
class GroupAdmin(SelectionCheckedAdmin, auth_admin.GroupAdmin):
    """Django's group admin, refusing an impossible selection (``SelectionCheckedAdmin``)."""
