"""Admin for workstations and locations; every save and action goes through the services."""

from __future__ import annotations

from typing import Any

from auditlog.mixins import AuditlogHistoryAdminMixin
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import BadRequest, ValidationError
from django.db import connections, router
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from . import columns, selectors, services
from .choices import Status
from .models import MAX_NOTES_LENGTH, Location, Workstation


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


class ChangeHistoryAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    """The object's *History* page shows its recorded changes (``history``): who, when, each
    field before and after, a check-out's note. Django's own page lists only what was done in
    the admin, so writes through the API, an import or a command left it empty."""

    auditlog_history_template = "admin/workstations/change_history.html"
    auditlog_history_per_page = 25

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        context = {"title": f"Change history: {obj}", **(extra_context or {})}
        return self.auditlog_history_view(request, object_id, context)


@admin.register(Location)
class LocationAdmin(ChangeHistoryAdmin, SelectionCheckedAdmin):
    list_display = ["name", "site", "building", "room", "workstation_count"]
    list_filter = ["site", "building"]
    search_fields = ["name", "site", "building", "room"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Location]:
        return selectors.location_list()

    @admin.display(description="Workstations", ordering="workstation_count")
    def workstation_count(self, obj: Location) -> int:
        return obj.workstation_count

    def save_model(self, request: HttpRequest, obj: Location, form: Any, change: bool) -> None:
        services.location_save(location=obj, actor=request.user)

    def delete_model(self, request: HttpRequest, obj: Location) -> None:
        services.location_delete(location=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Location]) -> None:
        for location in queryset:
            services.location_delete(location=location, actor=request.user)


class CheckoutForm(forms.Form):
    """Who gets the workstation, and why: the intermediate page of the check-out action."""

    assigned_to = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        label="Check out to",
        help_text="Active users only.",
    )
    note = forms.CharField(
        required=False,
        max_length=MAX_NOTES_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept in the workstation's history.",
    )


@admin.register(Workstation)
class WorkstationAdmin(ChangeHistoryAdmin, SelectionCheckedAdmin):
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
    list_filter = [
        "status",
        "form_factor",
        "location",
        # Only the users who have a workstation: the full user list would be a long menu.
        ("assigned_to", admin.RelatedOnlyFieldListFilter),
        "manufacturer",
        "os",
        "department",
    ]
    list_select_related = ["location", "assigned_to"]
    search_fields = [
        "hostname",
        "asset_tag",
        "serial_number",
        "ip_address",
        "mac_address",
        # Staff look a machine up by who has it and where it is ("zoe", "Amsterdam").
        "assigned_to__username",
        "location__name",
    ]
    date_hierarchy = "purchase_date"
    autocomplete_fields = ["location", "assigned_to"]
    actions = ["checkout", "checkin", "mark_in_repair", "retire"]
    # The form's groups and the fields the database sets, declared once in ``columns``.
    fieldsets = columns.ADMIN_FIELDSETS
    readonly_fields = columns.ADMIN_READONLY_FIELDS

    def save_model(self, request: HttpRequest, obj: Workstation, form: Any, change: bool) -> None:
        services.workstation_save(workstation=obj, actor=request.user)

    def delete_model(self, request: HttpRequest, obj: Workstation) -> None:
        services.workstation_delete(workstation=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Workstation]) -> None:
        services.workstation_delete_many(queryset=queryset, actor=request.user)

    @admin.action(
        description="Check out the selected workstation to a user", permissions=["change"]
    )
    def checkout(
        self, request: HttpRequest, queryset: QuerySet[Workstation]
    ) -> TemplateResponse | None:
        """An intermediate page (as Django's delete confirmation): who gets it, and a note."""
        workstations = list(queryset[:2])
        if len(workstations) != 1:
            self.message_user(
                request, "Check out one workstation at a time: select one.", messages.ERROR
            )
            return None
        workstation = workstations[0]
        form = CheckoutForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                services.workstation_checkout(
                    workstation=workstation,
                    assigned_to=form.cleaned_data["assigned_to"],
                    note=form.cleaned_data["note"],
                    actor=request.user,
                )
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            else:
                self.message_user(
                    request,
                    f"{workstation} checked out to {form.cleaned_data['assigned_to']}.",
                    messages.SUCCESS,
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Check out {workstation}",
            "opts": self.opts,
            "workstation": workstation,
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/workstations/workstation/checkout.html", context)

    @admin.action(description="Check in the selected workstations", permissions=["change"])
    def checkin(self, request: HttpRequest, queryset: QuerySet[Workstation]) -> None:
        count = 0
        for workstation in queryset:
            try:
                services.workstation_checkin(workstation=workstation, actor=request.user)
            except ValidationError as exc:
                self.message_user(
                    request, f"{workstation}: {'; '.join(exc.messages)}", messages.ERROR
                )
                continue
            count += 1
        self.message_user(
            request, f"{count} workstation(s) checked in: unassigned, in stock.", messages.SUCCESS
        )

    def _set_status(self, request: HttpRequest, queryset: QuerySet, status: Status) -> None:
        try:
            count = services.workstation_bulk_set_status(
                queryset=queryset, status=status, actor=request.user
            )
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
