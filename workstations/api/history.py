"""The change history through the API: entries, their filters, check-out and check-in bodies."""

from __future__ import annotations

import datetime
from typing import Any

import django_filters
from auditlog.models import LogEntry
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.viewsets import GenericViewSet

from performance.cache.responses import CachedResponseMixin
from workstations import history, selectors
from workstations.choices import ObjectType
from workstations.models import MAX_NOTES_LENGTH

from .base import UNKNOWN_FIELD, StrictCharField, StrictQueryMixin
from .filters import FilterBackend

# Entries ------------------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {"before": {}, "after": {}},
            "required": ["before", "after"],
        },
        "description": "Each changed field, its value before and after (a related object by "
        "its name, as it was then).",
    }
)
class ChangesField(serializers.Field):
    def to_representation(self, value: Any) -> dict[str, dict[str, Any]]:
        return {
            name: {"before": before, "after": after}
            for name, (before, after) in history.meaningful_changes(value).items()
        }


class ChangeSerializer(serializers.ModelSerializer):
    """One recorded change: who, when, which object, each field before and after."""

    action = serializers.SerializerMethodField(help_text="create, update or delete.")
    object_type = serializers.ChoiceField(
        choices=ObjectType.choices, source="content_type.model", help_text="What changed."
    )
    object_repr = serializers.CharField(help_text="The object's name when it changed.")
    actor = serializers.SerializerMethodField(
        help_text="Who made the change: a username, or the command and OS user that ran it."
    )
    actor_id = serializers.IntegerField(
        allow_null=True, help_text="The user's id; null for a command."
    )
    event = serializers.SerializerMethodField(help_text="checkout, checkin, or null.")
    note = serializers.SerializerMethodField(help_text="The note given with the change.")
    changes = ChangesField(source="changes_dict")

    class Meta:
        model = LogEntry
        fields = [
            "id",
            "timestamp",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "actor",
            "actor_id",
            "event",
            "note",
            "changes",
        ]

    def get_action(self, entry: LogEntry) -> str:
        return history.ACTION_NAMES.get(entry.action, str(entry.action))

    def get_actor(self, entry: LogEntry) -> str:
        return history.entry_actor(entry)

    def get_event(self, entry: LogEntry) -> str | None:
        return (entry.additional_data or {}).get("event") or None

    def get_note(self, entry: LogEntry) -> str:
        return str((entry.additional_data or {}).get("note") or "")


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, given to the database in UTC: Python takes offsets up to ±23:59,
    PostgreSQL only up to ±15:59, and ``2026-01-31T09:00-23:33`` was a 500 there."""

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        if value is None or timezone.is_naive(value):
            return value
        try:
            return value.astimezone(datetime.UTC)
        except OverflowError as exc:
            raise forms.ValidationError("Enter a time between the years 1 and 9999.") from exc


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class WholeNumberFilter(django_filters.NumberFilter):
    """django-filter's number filter, for a whole number: its own reads a decimal, so an id of
    ``1.5`` or ``1e-308`` (a number, not the integer the schema says) answered 200 and nothing."""

    field_class = forms.IntegerField


class ChangeFilter(django_filters.FilterSet):
    since = UtcIsoDateTimeFilter(
        field_name="timestamp",
        lookup_expr="gte",
        help_text="Changes made at or after this time (ISO 8601, e.g. 2026-01-31T09:00:00Z).",
    )
    actor = django_filters.CharFilter(
        method="filter_actor",
        help_text="Who made them: a username, or a command's label as the history shows it.",
    )
    object_type = django_filters.ChoiceFilter(
        field_name="content_type__model", choices=ObjectType.choices, help_text="What changed."
    )
    object_id = WholeNumberFilter(
        field_name="object_id", help_text="The id of the object (with object_type)."
    )

    class Meta:
        model = LogEntry
        fields = ["since", "actor", "object_type", "object_id"]

    def filter_actor(self, queryset: QuerySet[LogEntry], name: str, value: str) -> QuerySet:
        # The label recorded with the entry: the username when the change was made.
        return queryset.filter(Q(additional_data__actor=value) | Q(actor__username=value))


@extend_schema_view(
    list=extend_schema(
        summary="List changes",
        description="Every recorded change of a workstation or a location, newest first: who, "
        "when, each field before and after. Filter by `since`, `actor`, `object_type` and "
        "`object_id`; a bad value is a 400 naming the parameter.",
    )
)
class ChangeViewSet(StrictQueryMixin, CachedResponseMixin, mixins.ListModelMixin, GenericViewSet):
    """The inventory's change log. Cached with the workstation responses: every write that
    records a change invalidates that namespace (and the history table is among its tables)."""

    cache_namespace = "workstations"
    cache_fast_actions = frozenset({"list"})
    queryset = selectors.change_list()
    serializer_class = ChangeSerializer
    filterset_class = ChangeFilter
    filter_backends = [FilterBackend]


# Check-out and check-in ---------------------------------------------------------------------


class StrictSerializer(serializers.Serializer):
    """A request body whose unknown keys are a 400 (as ``StrictModelSerializer``'s)."""

    reject_unknown_fields = True

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: [UNKNOWN_FIELD] for name in unknown})
        return super().to_internal_value(data)


class CheckinSerializer(StrictSerializer):
    note = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=MAX_NOTES_LENGTH,
        default="",
        help_text="Why, or in what state it came back; kept in the history.",
    )


class CheckoutSerializer(CheckinSerializer):
    assigned_to = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(),
        help_text="The id of the active user who gets the workstation.",
    )
