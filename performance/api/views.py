"""Staff API of the performance console: the same actions as the admin page and the commands."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from performance import cache, services
from performance.system import system_metrics
from performance.throttling import ScopedRateThrottle, UserRateThrottle

from .permissions import CanManageCache
from .serializers import (
    CacheClearedSerializer,
    CacheStatsSerializer,
    ClearSerializer,
    InvalidateSerializer,
    NamespaceInvalidatedSerializer,
    PatternInvalidatedSerializer,
    SystemMetricsSerializer,
)


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
        summary="Cache statistics",
        description="The response cache's hit rate (responses answered from the cache per "
        "cacheable request), the other lookups apart, every namespace's counters and the totals; "
        "HTTP requests and responses per minute; the backend's own figures. Staff only.",
        responses=CacheStatsSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(cache.stats())


class SystemMetricsView(StaffView):
    """This process's memory, CPU, threads and uptime; versions; database and cache round trips."""

    @extend_schema(
        summary="System metrics",
        description="The answering server process: memory, CPU, threads, uptime, versions, and "
        "the round trips to the database and the cache. Staff only.",
        responses=SystemMetricsSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(system_metrics())


class CacheClearView(CacheActionView):
    """Remove this service's cache keys (never other applications' keys on a shared Redis)."""

    @extend_schema(
        summary="Clear the cache",
        description="Remove this service's keys (never another application's on a shared "
        "Redis); clients' request rates are kept. Needs the *manage cache* permission.",
        request=None,
        responses=CacheClearedSerializer,
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
        summary="Invalidate cached responses",
        description="By glob `pattern` over this service's keys (`dry_run` counts them only), or "
        "a whole `namespace` at once. Needs the *manage cache* permission.",
        request=InvalidateSerializer,
        responses={
            200: PolymorphicProxySerializer(
                component_name="CacheInvalidated",
                serializers=[NamespaceInvalidatedSerializer, PatternInvalidatedSerializer],
                resource_type_field_name=None,
            ),
        },
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
