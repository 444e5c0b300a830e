"""Shapes of the workstation API's request and response bodies.

Serializers check types and formats only; the rules of the domain (status and assignee, unique
values after normalisation) are enforced once, by the services, through ``Model.full_clean``.
Write bodies with a key the serializer does not know are refused (``StrictModelSerializer``).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from workstations import columns
from workstations.models import Location, Workstation

from .base import StrictModelSerializer


@extend_schema_serializer(
    description="A place workstations live: a room in a building on a site. Names are unique."
)
class LocationSerializer(StrictModelSerializer):
    workstation_count = serializers.SerializerMethodField(
        help_text="How many workstations are at this location."
    )

    class Meta:
        model = Location
        fields = [
            "id",
            "name",
            "site",
            "building",
            "room",
            "notes",
            "workstation_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_workstation_count(self, obj: Location) -> int:
        count = getattr(obj, "workstation_count", None)
        return obj.workstations.count() if count is None else count


@extend_schema_serializer(
    description="One machine of the organisation, from purchase to retirement. Keys the API "
    "does not know are refused (400), so a misspelt field never goes unnoticed; read-only "
    "fields may be sent back as they were read, and are ignored."
)
class WorkstationSerializer(StrictModelSerializer):
    # Method fields rather than CharField(source="location.name", default=None): DRF skips a
    # field whose source is missing on a partial serializer, so a PATCH answered without them.
    location_name = serializers.SerializerMethodField(
        help_text="The name of the workstation's location (`location` is its id)."
    )
    assigned_to_username = serializers.SerializerMethodField(
        help_text="The username of the user who has it (`assigned_to` is their id)."
    )

    class Meta:
        model = Workstation
        # Declared once, with the importer's columns and the admin's form (``columns``).
        fields = columns.API_FIELDS
        read_only_fields = columns.API_READ_ONLY_FIELDS

    def get_location_name(self, obj: Workstation) -> str | None:
        return obj.location.name if obj.location is not None else None

    def get_assigned_to_username(self, obj: Workstation) -> str | None:
        return obj.assigned_to.username if obj.assigned_to is not None else None


@extend_schema_serializer(description="How many workstations are at one location.")
class SummaryLocationSerializer(serializers.Serializer):
    location_id = serializers.IntegerField(allow_null=True, help_text="Null: no location.")
    location = serializers.CharField(allow_null=True, help_text="The location's name.")
    count = serializers.IntegerField()


@extend_schema_serializer(description="Counts of workstations, by status and by location.")
class WorkstationSummarySerializer(serializers.Serializer):
    """Documentation only: ``selectors.workstation_summary`` makes the body."""

    total = serializers.IntegerField()
    by_status = serializers.DictField(
        child=serializers.IntegerField(), help_text="Workstations per status value."
    )
    by_location = SummaryLocationSerializer(many=True)
