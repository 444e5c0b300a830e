from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
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


@extend_schema_serializer(
    description="Either `pattern` (with `dry_run` to count the keys only) or `namespace`."
)
class InvalidateSerializer(StrictSerializer):
    """Either ``pattern`` (with an optional ``dry_run``) or ``namespace``."""

    pattern = TextField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=1000,
        help_text="A glob over this service's keys, such as `workstations:*`.",
    )
    dry_run = JSONBooleanField(
        required=False, default=False, help_text="Count the keys the pattern matches only."
    )
    namespace = TextField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="A namespace to invalidate at once, such as `workstations`.",
    )

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


# Response bodies (documentation: the views answer the dicts that cache.stats() and
# system_metrics() make; tests/project/test_generated_client.py reads them through these) -------


class CacheTotalsSerializer(serializers.Serializer):
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    sets = serializers.IntegerField()
    deletes = serializers.IntegerField()
    time_us = serializers.IntegerField(help_text="Microseconds spent in the cache.")
    errors = serializers.IntegerField()
    calls = serializers.IntegerField(help_text="Round trips to the cache.")


class CacheCountersSerializer(CacheTotalsSerializer):
    hit_rate = serializers.FloatField(allow_null=True, help_text="Null before any lookup.")


class NamespaceStatsSerializer(CacheCountersSerializer):
    keys = serializers.IntegerField(allow_null=True, help_text="Null when not counted.")
    description = serializers.CharField()
    internal = serializers.BooleanField(help_text="The cache layer's own bookkeeping.")
    kind = serializers.CharField(
        help_text="`responses` (cached API responses), `bookkeeping` (token lookups, request "
        "rates) or `internal` (generations, locks, memos)."
    )


class HitRateSerializer(serializers.Serializer):
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    hit_rate = serializers.FloatField(allow_null=True, help_text="Null before any lookup.")


class ResponsesSerializer(HitRateSerializer):
    namespaces = serializers.ListField(
        child=serializers.CharField(), help_text="The namespaces that hold responses."
    )


class BreakerSerializer(serializers.Serializer):
    state = serializers.CharField(help_text="`closed`, `open` or `half-open`.")
    failures = serializers.IntegerField()
    opened = serializers.IntegerField(help_text="Times it opened since the process started.")
    last_change = serializers.FloatField(allow_null=True, help_text="Seconds since the epoch.")
    fail_max = serializers.IntegerField()
    reset_timeout = serializers.FloatField()
    needs_replay = serializers.BooleanField()


class HistoryMinuteSerializer(serializers.Serializer):
    minute = serializers.DateTimeField()
    requests = serializers.IntegerField(help_text="HTTP requests this minute.")
    hits = serializers.IntegerField(help_text="Responses answered from the cache.")
    misses = serializers.IntegerField(help_text="Cacheable responses computed.")


class HotCopiesSerializer(serializers.Serializer):
    entries = serializers.IntegerField()
    bytes = serializers.IntegerField()
    max_bytes = serializers.IntegerField()


@extend_schema_serializer(
    description="The cache's figures: per namespace and in total, per minute for the last hour, "
    "and the backend's own."
)
class CacheStatsSerializer(serializers.Serializer):
    """The figures of the service's instrumented cache, which every shape configures
    (``project/settings.py``); a cache of Django's own (``"instrumented": false``) has nothing
    but ``instrumented`` and ``backend`` to say, and is no shape the service runs in."""

    instrumented = serializers.BooleanField()
    backend = serializers.CharField(allow_null=True, help_text="`locmem` or `redis`.")
    breaker = BreakerSerializer(allow_null=True, help_text="The circuit breaker; null on locmem.")
    scope = serializers.CharField(help_text="`process` (locmem) or `fleet` (Redis).")
    key_prefix = serializers.CharField()
    default_ttl = serializers.IntegerField(allow_null=True, help_text="Seconds.")
    reset_at = serializers.DateTimeField()
    evictions = serializers.IntegerField()
    responses = ResponsesSerializer(
        help_text="The response cache: responses answered from it per cacheable request."
    )
    bookkeeping = HitRateSerializer(help_text="Every other lookup (tokens, generations, rates).")
    namespaces = serializers.DictField(child=NamespaceStatsSerializer())
    totals = CacheTotalsSerializer()
    history = HistoryMinuteSerializer(many=True)
    server = serializers.DictField(help_text="What the backend reports of itself.")
    hot_copies = HotCopiesSerializer(help_text="This process's copies of entries (Redis).")
    unavailable = serializers.BooleanField()


@extend_schema_serializer(
    description="This server process and its machine: memory, CPU, threads, uptime, versions, "
    "and round trips to the database and the cache."
)
class SystemMetricsSerializer(serializers.Serializer):
    pid = serializers.IntegerField()
    rss_bytes = serializers.IntegerField()
    cpu_percent = serializers.FloatField()
    cpu_user_seconds = serializers.FloatField()
    cpu_system_seconds = serializers.FloatField()
    threads = serializers.IntegerField()
    python_threads = serializers.IntegerField()
    uptime_seconds = serializers.FloatField()
    load_average = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    cpu_count = serializers.IntegerField(allow_null=True)
    memory_total_bytes = serializers.IntegerField()
    python_version = serializers.CharField()
    django_version = serializers.CharField()
    database_vendor = serializers.CharField()
    database_rtt_ms = serializers.FloatField(allow_null=True, help_text="Null: unreachable.")
    cache_rtt_ms = serializers.FloatField(allow_null=True, help_text="Null: unreachable.")


@extend_schema_serializer(description="What clearing the cache removed.")
class CacheClearedSerializer(serializers.Serializer):
    cleared = serializers.BooleanField()
    keys_removed = serializers.IntegerField(allow_null=True, help_text="Null: not counted.")


@extend_schema_serializer(description="A namespace invalidated: its new generation.")
class NamespaceInvalidatedSerializer(serializers.Serializer):
    namespace = serializers.CharField()
    generation = serializers.IntegerField()


@extend_schema_serializer(description="Keys matched by a pattern: removed, or counted only.")
class PatternInvalidatedSerializer(serializers.Serializer):
    pattern = serializers.CharField()
    dry_run = serializers.BooleanField()
    keys = serializers.IntegerField()
