"""Staff API of the performance console: the same actions as the admin page and the commands."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from performance import cache, services
from performance.system import system_metrics
from performance.throttling import ScopedRateThrottle, UserRateThrottle

from .permissions import CanManageCache
from .serializers import ClearSerializer, InvalidateSerializer


def _actor(request: Request) -> services.Actor:
    return services.Actor(
        source="api", user=request.user, remote_addr=request.META.get("REMOTE_ADDR")
    )


class StaffView(APIView):
    permission_classes = [IsAdminUser]
    throttle_classes = [UserRateThrottle]


class CacheActionView(StaffView):
    permission_classes = [IsAdminUser, CanManageCache]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "cache_actions"


class CacheStatsView(StaffView):
    """The console's figures: ``responses`` (the response cache's hits, misses and hit rate:
    responses answered from the cache per cacheable request), ``bookkeeping`` (token lookups,
    generations, locks, rates: lookups, apart), per-namespace counters with their ``kind``,
    totals, per-minute history (HTTP requests and responses), backend figures."""

    @extend_schema(
        responses=inline_serializer(
            "CacheStats",
            {
                "responses": inline_serializer(
                    "CacheResponses",
                    {
                        "hits": serializers.IntegerField(),
                        "misses": serializers.IntegerField(),
                        "hit_rate": serializers.FloatField(allow_null=True),
                        "namespaces": serializers.ListField(child=serializers.CharField()),
                    },
                ),
                "bookkeeping": serializers.DictField(),
                "namespaces": serializers.DictField(),
                "totals": serializers.DictField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        return Response(cache.stats())


class SystemMetricsView(StaffView):
    """This process's memory, CPU, threads and uptime; versions; database and cache round trips."""

    @extend_schema(
        responses=inline_serializer("SystemMetrics", {"pid": serializers.IntegerField()})
    )
    def get(self, request: Request) -> Response:
        return Response(system_metrics())


class CacheClearView(CacheActionView):
    """Remove this service's cache keys (never other applications' keys on a shared Redis)."""

    @extend_schema(
        request=None,
        responses=inline_serializer("CacheCleared", {"keys_removed": serializers.IntegerField()}),
    )
    def post(self, request: Request) -> Response:
        ClearSerializer(data=request.data).is_valid(raise_exception=True)
        # Clearing keeps the clients' request rates: it does not reset its own rate limit.
        keys = services.cache_clear(actor=_actor(request))
        return Response({"cleared": True, "keys_removed": keys})


class CacheInvalidateView(CacheActionView):
    """Invalidate by glob ``pattern`` over this service's keys (``dry_run`` counts only), or a
    whole ``namespace`` (a generation bump)."""

    @extend_schema(
        request=InvalidateSerializer,
        responses=inline_serializer("CacheInvalidated", {"keys": serializers.IntegerField()}),
    )
    def post(self, request: Request) -> Response:
        serializer = InvalidateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "namespace" in data:
            generation = services.cache_invalidate_namespace(
                actor=_actor(request), namespace=data["namespace"]
            )
            if generation is None:
                return Response(
                    {"detail": "The cache is unreachable; nothing was invalidated."},
                    status=status.HTTP_503_SERVICE_UNAVAILABLE,
                )
            return Response({"namespace": data["namespace"], "generation": generation})
        count = services.cache_invalidate_pattern(
            actor=_actor(request), pattern=data["pattern"], dry_run=data["dry_run"]
        )
        return Response({"pattern": data["pattern"], "dry_run": data["dry_run"], "keys": count})
