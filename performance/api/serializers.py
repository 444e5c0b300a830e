from __future__ import annotations

from typing import Any

from rest_framework import serializers

from performance import cache


class InvalidateSerializer(serializers.Serializer):
    """Either ``pattern`` (with an optional ``dry_run``) or ``namespace``."""

    pattern = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=1000
    )
    dry_run = serializers.BooleanField(required=False, default=False)
    namespace = serializers.CharField(required=False, allow_blank=True, max_length=100)

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
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({name: "Unknown field." for name in sorted(unknown)})
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


class ClearSerializer(serializers.Serializer):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.initial_data, dict) and self.initial_data:
            raise serializers.ValidationError("cache-clear takes no parameters.")
        return attrs
