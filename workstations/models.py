"""The workstation inventory: where machines are, what they are, who has them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.deletion import Collector

from .choices import (
    STATUSES_FORBIDDING_ASSIGNEE,
    STATUSES_REQUIRING_ASSIGNEE,
    FormFactor,
    Status,
)
from .fields import HostnameField, MACAddressField

#: Sanity bounds: a typo of a few digits is refused rather than stored (16 TB of RAM, 1 PB).
MAX_RAM_GB = 16_384
MAX_STORAGE_GB = 1_000_000
#: Free text about a machine or a place: a few paragraphs (what was repaired, who to call).
#: Unbounded, one client stored megabytes per row, and every list page carried them.
MAX_NOTES_LENGTH = 2_000


def notes_field() -> models.TextField:
    """Notes, bounded everywhere: forms and the API read ``max_length``, ``full_clean`` (the
    services, the importer) the validator, which a ``TextField`` does not add by itself."""
    return models.TextField(
        blank=True,
        max_length=MAX_NOTES_LENGTH,
        validators=[MaxLengthValidator(MAX_NOTES_LENGTH)],
    )


def protect_deployed_else_set_null(
    collector: Collector, field: models.Field, sub_objs: Iterable[models.Model], using: str
) -> None:
    """``on_delete`` for the assignee: a deployed machine keeps its owner until reassigned.

    Plain ``SET_NULL`` broke the ``ws_deployed_has_assignee`` constraint, so deleting a user who
    held a deployed workstation was an ``IntegrityError`` (a 500 in the admin). Refusing with
    ``ProtectedError`` lets the admin list the machines to reassign; other rows lose the user.
    """
    deployed = Workstation.objects.using(using).filter(
        pk__in=[obj.pk for obj in sub_objs], status__in=sorted(STATUSES_REQUIRING_ASSIGNEE)
    )
    if deployed.exists():
        raise models.ProtectedError(
            "Reassign the deployed workstations of this user before deleting it.", set(deployed)
        )
    models.SET_NULL(collector, field, sub_objs, using)


class Location(models.Model):
    """A place workstations live: a room in a building on a site."""

    name = models.CharField(max_length=100, unique=True)
    site = models.CharField(max_length=100, blank=True)
    building = models.CharField(max_length=100, blank=True)
    room = models.CharField(max_length=50, blank=True)
    notes = notes_field()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Workstation(models.Model):
    """One physical machine of the organisation, from purchase to retirement."""

    asset_tag = models.CharField(max_length=50, unique=True)
    hostname = HostnameField(unique=True)
    serial_number = models.CharField(max_length=100, blank=True)
    manufacturer = models.CharField(max_length=100, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    form_factor = models.CharField(
        max_length=20, choices=FormFactor.choices, default=FormFactor.DESKTOP
    )
    os = models.CharField("operating system", max_length=100, blank=True)
    os_version = models.CharField("OS version", max_length=50, blank=True)
    cpu = models.CharField("CPU", max_length=100, blank=True)
    ram_gb = models.PositiveIntegerField(
        "RAM (GB)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_RAM_GB)],
    )
    storage_gb = models.PositiveIntegerField(
        "storage (GB)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_STORAGE_GB)],
    )
    mac_address = MACAddressField("MAC address", blank=True)
    ip_address = models.GenericIPAddressField("IP address", null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLANNED)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=protect_deployed_else_set_null,
        null=True,
        blank=True,
        related_name="workstations",
    )
    department = models.CharField(max_length=100, blank=True)
    location = models.ForeignKey(
        Location,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="workstations",
    )
    purchase_date = models.DateField(null=True, blank=True)
    purchase_cost = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
    )
    warranty_expires = models.DateField(null=True, blank=True)
    last_audit_date = models.DateField(null=True, blank=True)
    notes = notes_field()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["hostname"]
        indexes = [
            models.Index(fields=["status"], name="ws_status_idx"),
            models.Index(fields=["department"], name="ws_department_idx"),
            models.Index(fields=["manufacturer"], name="ws_manufacturer_idx"),
            models.Index(fields=["form_factor"], name="ws_form_factor_idx"),
            models.Index(fields=["os"], name="ws_os_idx"),
            models.Index(fields=["purchase_date"], name="ws_purchase_date_idx"),
            models.Index(fields=["warranty_expires"], name="ws_warranty_idx"),
            models.Index(fields=["updated_at"], name="ws_updated_at_idx"),
            models.Index(fields=["location", "status"], name="ws_location_status_idx"),
            # The machines changed last in a status, a place, a form factor: read along these
            # (either way), not sorted whole for every page.
            models.Index(fields=["status", "updated_at"], name="ws_status_updated_idx"),
            models.Index(fields=["location", "updated_at"], name="ws_location_updated_idx"),
            models.Index(fields=["form_factor", "updated_at"], name="ws_form_factor_updated_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["serial_number"],
                condition=~Q(serial_number=""),
                name="ws_serial_unique_when_set",
                violation_error_message="A workstation with this serial number already exists.",
                # Django files a one-field constraint's error under its field only when the code
                # is "unique"; otherwise a lost race answered {"__all__": [...]}.
                violation_error_code="unique",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=sorted(STATUSES_REQUIRING_ASSIGNEE))
                | Q(assigned_to__isnull=False),
                name="ws_deployed_has_assignee",
                violation_error_message="A deployed workstation must be assigned to someone.",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=sorted(STATUSES_FORBIDDING_ASSIGNEE))
                | Q(assigned_to__isnull=True),
                name="ws_unassigned_when_stocked_or_gone",
                violation_error_message=(
                    "A workstation that is in stock, retired or lost cannot be assigned."
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.hostname

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> Workstation:
        instance = super().from_db(db, field_names, values)
        # The assignment as stored, for the rules about changing it (``clean``).
        instance._stored_assignment = (
            instance.__dict__.get("status"),
            instance.__dict__.get("assigned_to_id"),
        )
        return instance

    def clean(self) -> None:
        """Enforce the status/assignee rules with a message on the field a user can fix."""
        super().clean()
        self._check_deployed_to_active_user()
        if self.status in STATUSES_REQUIRING_ASSIGNEE and self.assigned_to_id is None:
            raise ValidationError(
                {"assigned_to": f"A workstation with status '{self.status}' needs an assignee."}
            )
        if self.status in STATUSES_FORBIDDING_ASSIGNEE and self.assigned_to_id is not None:
            raise ValidationError(
                {
                    "assigned_to": (
                        f"A workstation with status '{self.status}' cannot be assigned; "
                        "clear the assignee first."
                    )
                }
            )
        if (
            self.purchase_date
            and self.warranty_expires
            and self.warranty_expires < self.purchase_date
        ):
            raise ValidationError(
                {"warranty_expires": "The warranty cannot expire before the purchase date."}
            )

    def _check_deployed_to_active_user(self) -> None:
        """Deploying to (or checking out to) a deactivated account hands a machine to nobody.

        Asked only when the deployment is new (a new assignee or a new status): a machine
        already deployed to someone deactivated since can still be edited, and then checked in.
        """
        if self.status not in STATUSES_REQUIRING_ASSIGNEE or self.assigned_to_id is None:
            return
        if getattr(self, "_stored_assignment", None) == (self.status, self.assigned_to_id):
            return
        if not self.assigned_to.is_active:
            raise ValidationError(
                {
                    "assigned_to": (
                        f"The user '{self.assigned_to.get_username()}' is deactivated: a "
                        "workstation can be deployed to an active user only."
                    )
                }
            )
