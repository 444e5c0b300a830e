"""Admin for workstations and locations; every save and action goes through the services."""

from __future__ import annotations

import datetime
import hashlib
import json
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
from django.db import connections, models, router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.text import capfirst

from . import columns, selectors, services
from .admin_files import WorkstationFilesMixin
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


# Refusing to save over a change made since the form was opened -------------------------------

STALE_FORM = (
    "Someone else changed this {model} since you opened this page: {fields}. Nothing was "
    "saved. Reload the page to see the current values, then make your change again."
)


def _versioned_fields(model: type[models.Model]) -> list[models.Field]:
    """The stored values a change form shows or depends on (the timestamps excepted)."""
    return [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key and not getattr(field, "auto_now", False)
    ]


def form_version(instance: models.Model) -> str:
    """A fingerprint of each stored value of ``instance``: small, and it says which changed."""
    return json.dumps(
        {
            field.name: hashlib.blake2b(
                field.value_to_string(instance).encode(), digest_size=6
            ).hexdigest()
            for field in _versioned_fields(type(instance))
        },
        separators=(",", ":"),
    )


class VersionedAdminForm(forms.ModelForm):
    """A change form that carries the version of the object it was opened on, and refuses to
    save when the stored object is another one by then, naming the fields that changed.

    The admin's change view runs in one transaction: the row read here is locked
    (``select_for_update``) until the change is saved, so no write comes in between.
    """

    version = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["version"].initial = form_version(self.instance)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        sent = cleaned.get("version")
        if self.instance.pk is None or not sent:
            return cleaned  # a new object, or a form posted by a script without a version
        model = type(self.instance)
        try:
            opened = json.loads(sent)
        except ValueError:
            opened = None
        if not isinstance(opened, dict):
            raise forms.ValidationError("This form is damaged: reload the page.", code="version")
        rows = model._default_manager.all()
        if transaction.get_connection(router.db_for_write(model)).in_atomic_block:
            rows = rows.select_for_update()  # the admin's change view: held until it saves
        current = rows.filter(pk=self.instance.pk).first()
        if current is None:
            raise forms.ValidationError(
                f"Someone else deleted this {model._meta.verbose_name} since you opened this page.",
                code="deleted",
            )
        now = json.loads(form_version(current))
        changed = [
            str(capfirst(field.verbose_name))
            for field in _versioned_fields(model)
            if opened.get(field.name) != now[field.name]
        ]
        if changed:
            raise forms.ValidationError(
                STALE_FORM.format(model=model._meta.verbose_name, fields=", ".join(changed)),
                code="stale",
            )
        return cleaned


class VersionedAdmin(admin.ModelAdmin):
    """Change forms carry their object's version (``VersionedAdminForm``) and save only the
    fields the user changed, through the model's service."""

    form = VersionedAdminForm

    def get_fieldsets(self, request: HttpRequest, obj: models.Model | None = None) -> Any:
        # The hidden field is rendered only if a fieldset names it.
        return [*super().get_fieldsets(request, obj), (None, {"fields": ["version"]})]

    @staticmethod
    def changed_fields(obj: models.Model, form: forms.ModelForm) -> list[str]:
        stored = {field.name for field in _versioned_fields(type(obj))}
        return [name for name in form.changed_data if name in stored]


# The changelist's filters and bulk edit -------------------------------------------------------


class WarrantyFilter(admin.SimpleListFilter):
    """Machines whose warranty has run out, or runs out soon (and those without a date)."""

    title = "warranty"
    parameter_name = "warranty"
    #: The day "expired" and "within N days" count from; tests set it.
    today = staticmethod(timezone.localdate)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [
            ("expired", "Expired"),
            ("30", "Expires within 30 days"),
            ("90", "Expires within 90 days"),
            ("none", "No expiry date"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        today = self.today()
        value = self.value()
        if value == "expired":
            return queryset.filter(warranty_expires__lt=today)
        if value in ("30", "90"):
            return queryset.filter(
                warranty_expires__gte=today,
                warranty_expires__lte=today + datetime.timedelta(days=int(value)),
            )
        if value == "none":
            return queryset.filter(warranty_expires__isnull=True)
        return None


UNCHANGED = "— unchanged —"


class BulkEditForm(forms.Form):
    """What the bulk edit sets on every selected workstation; a field left empty is unchanged."""

    location = forms.ModelChoiceField(
        queryset=Location.objects.order_by("name"), required=False, empty_label=UNCHANGED
    )
    department = forms.CharField(
        required=False,
        max_length=Workstation._meta.get_field("department").max_length,
        help_text="Left empty: unchanged.",
    )
    status = forms.ChoiceField(choices=[("", UNCHANGED), *Status.choices], required=False)
    assigned_to = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        empty_label=UNCHANGED,
        label="Assignee",
    )
    clear_assignee = forms.BooleanField(
        required=False,
        label="Clear the assignee",
        help_text="In stock, retired and lost machines lose their assignee anyway.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("clear_assignee") and cleaned.get("assigned_to"):
            raise forms.ValidationError("Choose an assignee or clear it, not both.")
        if not self.changes():
            raise forms.ValidationError("Choose at least one change.")
        return cleaned

    def changes(self) -> dict[str, Any]:
        """The service's ``data``: only what the form sets."""
        cleaned = getattr(self, "cleaned_data", {})
        changes = {
            name: cleaned[name]
            for name in ("location", "department", "status", "assigned_to")
            if cleaned.get(name) not in (None, "")
        }
        if cleaned.get("clear_assignee"):
            changes["assigned_to"] = None
        return changes


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
class LocationAdmin(ChangeHistoryAdmin, VersionedAdmin, SelectionCheckedAdmin):
    list_display = ["name", "site", "building", "room", "workstation_count"]
    list_filter = ["site", "building"]
    search_fields = ["name", "site", "building", "room"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Location]:
        return selectors.location_list()

    @admin.display(description="Workstations", ordering="workstation_count")
    def workstation_count(self, obj: Location) -> int:
        return obj.workstation_count

    def save_model(self, request: HttpRequest, obj: Location, form: Any, change: bool) -> None:
        services.location_save(
            location=obj,
            fields=self.changed_fields(obj, form) if change else None,
            actor=request.user,
        )

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
class WorkstationAdmin(
    WorkstationFilesMixin, ChangeHistoryAdmin, VersionedAdmin, SelectionCheckedAdmin
):
    # Import (preview, confirm) and export of inventory files: ``admin_files``.
    # Seven columns, make and model in one, the department left to its filter: Location and
    # Warranty fit at 1366 pixels beside the filters (tests/workstations/test_admin_browser.py).
    list_display = [
        "hostname",
        "asset_tag",
        "status",
        "hardware",
        "assigned_to",
        "location",
        "warranty_expires",
    ]
    list_filter = [
        "status",
        WarrantyFilter,
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
    actions = ["checkout", "checkin", "bulk_edit", "mark_in_repair", "retire"]
    # The form's groups and the fields the database sets, declared once in ``columns``.
    fieldsets = columns.ADMIN_FIELDSETS
    readonly_fields = columns.ADMIN_READONLY_FIELDS

    def save_model(self, request: HttpRequest, obj: Workstation, form: Any, change: bool) -> None:
        services.workstation_save(
            workstation=obj,
            fields=self.changed_fields(obj, form) if change else None,
            actor=request.user,
        )

    def delete_model(self, request: HttpRequest, obj: Workstation) -> None:
        services.workstation_delete(workstation=obj, actor=request.user)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The list needs the width: at 1366 pixels the navigation sidebar (the same links as
        # the breadcrumbs and the index) took the room of the Location and Warranty columns.
        context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, extra_context=context)

    @admin.display(description="Hardware", ordering="manufacturer")
    def hardware(self, obj: Workstation) -> str:
        return " ".join(part for part in (obj.manufacturer, obj.model_name) if part)

    @admin.action(
        description="Edit location, department, status or assignee of selected workstations",
        permissions=["change"],
    )
    def bulk_edit(
        self, request: HttpRequest, queryset: QuerySet[Workstation]
    ) -> TemplateResponse | None:
        """An intermediate page: what to set, then one service call that checks every row."""
        if "apply" in request.POST:
            form = BulkEditForm(request.POST)
            if form.is_valid():
                try:
                    count = services.workstation_bulk_update(
                        queryset=queryset, data=form.changes(), actor=request.user
                    )
                except ValidationError as exc:
                    form.add_error(None, exc)
                else:
                    self.message_user(request, f"{count} workstation(s) changed.", messages.SUCCESS)
                    return None  # back to the changelist
        else:
            form = BulkEditForm()
        context = {
            **self.admin_site.each_context(request),
            "title": "Edit the selected workstations",
            "opts": self.model._meta,
            "form": form,
            "queryset": queryset,
            "count": queryset.count(),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/workstations/workstation/bulk_edit.html", context)

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
