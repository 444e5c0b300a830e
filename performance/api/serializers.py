from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from performance import cache


class TextField(serializers.CharField):
    """Text only: DRF turns a JSON number into text (``"pattern": 42`` is read as "42"), which the
    schema (``type: string``) does not allow."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class JSONBooleanField(serializers.BooleanField):
    """``true`` or ``false`` only: DRF reads "yes", "on", 1 and more as booleans too, which the
    schema (``type: boolean``) does not allow."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not declare, each named with "Unknown field." (400), before any
    field is validated: the same contract as the inventory API's serializers."""

    unknown_field_message = "Unknown field."
    reject_unknown_fields = True  # read by the schema generator (additionalProperties: false)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [self.unknown_field_message] for name in unknown}
                )
        return super().to_internal_value(data)


class InvalidateSerializer(StrictSerializer):
    """Either ``pattern`` (with an optional ``dry_run``) or ``namespace``."""

    pattern = TextField(required=False, allow_blank=True, trim_whitespace=False, max_length=1000)
    dry_run = JSONBooleanField(required=False, default=False)
    namespace = TextField(required=False, allow_blank=True, max_length=100)

    def validate_pattern(self, value: str) -> str:
        try:
            return cache.validate_pattern(value)
        except cache.InvalidPattern as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate_namespace(self, value: str) -> str:
        try:
            return cache.validate_namespace(value)
        except cache.UnknownNamespace as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_pattern, has_namespace = "pattern" in attrs, "namespace" in attrs
        if has_pattern == has_namespace:
            raise serializers.ValidationError(
                "Give either 'pattern' (with optional 'dry_run') or 'namespace', not both."
                if has_pattern
                else "Give 'pattern' (with optional 'dry_run') or 'namespace'."
            )
        if has_namespace and self.initial_data.get("dry_run") not in (None, False):
            raise serializers.ValidationError(
                {"dry_run": "A namespace invalidation is O(1) and has no dry run."}
            )
        return attrs


class ClearSerializer(StrictSerializer):
    """No fields: every key of the body is unknown and named."""

    unknown_field_message = "Unknown field: cache-clear takes no parameters."
