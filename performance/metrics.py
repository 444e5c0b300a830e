"""``/metrics`` in the Prometheus text format (prometheus-client).

Request counts and latency histograms come from ``RequestMetricsMiddleware``; with several
gunicorn workers they are aggregated through prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by ``project/gunicorn.conf.py``). Cache figures are read from
``performance.cache.stats()`` at scrape time, so on Redis they are already the fleet's.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from . import cache

REQUESTS = Counter(
    "wsinv_http_requests_total",
    "HTTP requests by endpoint, method and status.",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "wsinv_http_request_duration_seconds",
    "HTTP request latency by endpoint.",
    ["endpoint", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BREAKER_STATES = ("closed", "open", "half-open")


class CacheCollector(Collector):
    """Per-namespace cache counters and the breaker state, read at scrape time."""

    def collect(self) -> Iterator[object]:
        stats = cache.stats(include_keys=False)
        if not stats.get("instrumented"):
            return
        families = {
            field: CounterMetricFamily(
                f"wsinv_cache_{field}", f"Cache {field} by namespace.", labels=["namespace"]
            )
            for field in ("hits", "misses", "sets", "deletes", "errors")
        }
        seconds = CounterMetricFamily(
            "wsinv_cache_backend_seconds", "Time spent in the cache backend.", labels=["namespace"]
        )
        for namespace, row in stats["namespaces"].items():
            for field, family in families.items():
                family.add_metric([namespace], row[field])
            seconds.add_metric([namespace], row["time_us"] / 1_000_000)
        yield from families.values()
        yield seconds
        bumps = CounterMetricFamily(
            "wsinv_cache_generation_bumps", "Generation bumps (namespace invalidations)."
        )
        bumps.add_metric([], stats["namespaces"].get("_gen", {}).get("sets", 0))
        yield bumps
        state = getattr(cache.backend(), "breaker_state", None)
        breaker = state() if callable(state) else None
        gauge = GaugeMetricFamily(
            "wsinv_cache_breaker_state",
            "Circuit breaker state of this process (1 for the current state).",
            labels=["state"],
        )
        current = breaker["state"] if breaker else "closed"
        for name in BREAKER_STATES:
            gauge.add_metric([name], 1.0 if name == current else 0.0)
        yield gauge
        if breaker:
            opened = CounterMetricFamily(
                "wsinv_cache_breaker_opened", "Times this process's breaker opened."
            )
            opened.add_metric([], breaker.get("opened", 0))
            yield opened


def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    registry.register(CacheCollector())
    return registry


def _allowed(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip(), token)
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
    address = getattr(address, "ipv4_mapped", None) or address
    # strict=False: "10.1.2.3/8" means 10.0.0.0/8 rather than an error on every scrape.
    return any(
        address in ipaddress.ip_network(net, strict=False)
        for net in settings.METRICS_ALLOWED_NETWORKS
    )


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse(
            "Forbidden: /metrics needs staff, the metrics token or an allowed address.\n",
            status=403,
            content_type="text/plain",
        )
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
