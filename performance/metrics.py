"""``/metrics`` in the Prometheus text format (prometheus-client), with counters that add up.

Every counter here is this process's own and only ever goes up (docs/design.md, "Invariants",
7): ``sum()`` over the workers of an instance and over instances is the fleet's figure, and a
Redis outage or a reset of the console's statistics is not a counter reset. The cache's
counters are this process's ``StatsRecorder.lifetime()``, copied into prometheus-client
counters by ``export()`` — at each scrape in the process that answers it, and every second in
every gunicorn worker (``start_exporter``, from ``post_worker_init``): with several workers,
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) adds up what each worker
wrote to its files, and a collector of our own would only ever see the worker that answers the
scrape. For the same reason the process figures (``process_*``) are written by every worker in
multiprocess mode, where prometheus-client's own ``ProcessCollector`` would see one worker.

Figures read from the shared Redis or the database are the same from every instance: they are
named ``wsinv_cache_shared_*`` (or say so in their help) and are aggregated with ``max()``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import psutil
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rest_framework.throttling import BaseThrottle

from . import cache
from .cache.backends import InstrumentedCacheMixin
from .cache.namespaces import kind_of

logger = logging.getLogger(__name__)

# A "_created" sample per series doubles what Prometheus stores and says nothing a dashboard
# uses (counters start at 0 when a process starts).
disable_created_metrics()

#: The methods a request is counted under; any other (clients make them up) is ``other``, so
#: the number of series stays bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: From 100 µs: a warm hit takes about 150 µs.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
#: ``X-Cache`` as the ``cache`` label: answered from the cache, computed, or not cacheable.
CACHE_OUTCOMES = {"HIT": "hit", "MISS": "miss"}
BREAKER_STATES = ("closed", "open", "half-open")
#: Seconds between two exports of a worker's figures.
EXPORT_INTERVAL = 1.0

# Requests ------------------------------------------------------------------------------------

REQUESTS = Counter(
    "wsinv_http_requests",
    "HTTP requests by endpoint (the URL pattern's name), method, status and cache outcome "
    "(hit: answered from the cache, miss: computed and stored, bypass: not cacheable).",
    ["endpoint", "method", "status", "cache"],
    registry=None,
)
LATENCY = Histogram(
    "wsinv_http_request_duration_seconds",
    "HTTP request latency by endpoint, method and cache outcome.",
    ["endpoint", "method", "cache"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)

# The cache: this process's counters ----------------------------------------------------------

_CACHE_LABELS = ["namespace", "kind"]
CACHE_COUNTERS = {
    "hits": Counter(
        "wsinv_cache_hits",
        "Cache hits by namespace. kind=responses: responses answered from the cache (one per "
        "request); bookkeeping and internal: lookups that found their key.",
        _CACHE_LABELS,
        registry=None,
    ),
    "misses": Counter(
        "wsinv_cache_misses",
        "Cache misses by namespace. kind=responses: responses computed (one per request); "
        "bookkeeping and internal: lookups that did not find their key.",
        _CACHE_LABELS,
        registry=None,
    ),
    "sets": Counter("wsinv_cache_sets", "Cache writes by namespace.", _CACHE_LABELS, registry=None),
    "deletes": Counter(
        "wsinv_cache_deletes", "Cache keys deleted by namespace.", _CACHE_LABELS, registry=None
    ),
    "errors": Counter(
        "wsinv_cache_errors",
        "Cache calls that failed open by namespace: the cache did not answer or refused, or the "
        "circuit breaker was open (a read is a miss, a write is skipped, a rate lets through).",
        _CACHE_LABELS,
        registry=None,
    ),
    "calls": Counter(
        "wsinv_cache_calls",
        "Round trips to the cache backend by namespace (a batch counts once).",
        _CACHE_LABELS,
        registry=None,
    ),
    "time_us": Counter(
        "wsinv_cache_backend_seconds",
        "Time spent in cache calls by namespace.",
        _CACHE_LABELS,
        registry=None,
    ),
}
EVICTIONS = Counter(
    "wsinv_cache_evictions",
    "Entries the local-memory cache evicted to stay within its size.",
    registry=None,
)
BREAKER_OPENED = Counter(
    "wsinv_cache_breaker_opened", "Times this process's circuit breaker opened.", registry=None
)
BREAKER = Gauge(
    "wsinv_cache_breaker_state",
    "Processes whose circuit breaker is in each state (1 per process).",
    ["state"],
    multiprocess_mode="livesum",
    registry=None,
)
COPIES = Gauge(
    "wsinv_cache_copies",
    "Copies of entries this process keeps for warm hits (Redis).",
    multiprocess_mode="livesum",
    registry=None,
)
COPIES_BYTES = Gauge(
    "wsinv_cache_copies_bytes",
    "Bytes of the copies of entries this process keeps for warm hits (Redis).",
    multiprocess_mode="livesum",
    registry=None,
)
LOCAL_ENTRIES = Gauge(
    "wsinv_cache_local_entries",
    "Entries of the local-memory cache of this process (the embedded shape).",
    multiprocess_mode="livesum",
    registry=None,
)
LOCAL_BYTES = Gauge(
    "wsinv_cache_local_bytes",
    "Bytes of the values in the local-memory cache of this process (the embedded shape).",
    multiprocess_mode="livesum",
    registry=None,
)

# The process, written by each worker in multiprocess mode --------------------------------------

_PROCESS_CPU = Counter(
    "process_cpu_seconds", "Total user and system CPU time spent in seconds.", registry=None
)
_PROCESS_RSS = Gauge(
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
    multiprocess_mode="livesum",
    registry=None,
)
_PROCESS_VMS = Gauge(
    "process_virtual_memory_bytes",
    "Virtual memory size in bytes.",
    multiprocess_mode="livesum",
    registry=None,
)
_PROCESS_FDS = Gauge(
    "process_open_fds",
    "Number of open file descriptors.",
    multiprocess_mode="livesum",
    registry=None,
)
_PROCESS_START = Gauge(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds (the oldest live worker).",
    multiprocess_mode="livemin",
    registry=None,
)
_PROCESS_THREADS = Gauge(
    "process_threads",
    "Number of OS threads in the process.",
    multiprocess_mode="livesum",
    registry=None,
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def method_label(method: str | None) -> str:
    """The request's method, or ``other`` for a method that is not a standard one."""
    return method if method in METHODS else "other"


def cache_label(response: HttpResponse) -> str:
    """``hit``, ``miss`` or ``bypass``, from the response's ``X-Cache``."""
    return CACHE_OUTCOMES.get(response.get("X-Cache", ""), "bypass")


def observe(endpoint: str, method: str, response: HttpResponse, duration: float) -> None:
    """Count one request (for the request middleware): its counter, its latency and the
    console's requests per minute."""
    count(endpoint, method, str(response.status_code), cache_label(response), duration)


def count(endpoint: str, method: str, status: str, outcome: str, duration: float) -> None:
    """``observe`` for a request answered without a response object (a replay): ``status``
    the code as text, ``outcome`` its ``cache_label``."""
    method = method_label(method)
    REQUESTS.labels(endpoint, method, status, outcome).inc()
    LATENCY.labels(endpoint, method, outcome).observe(duration)
    cache.count_request()


# Exporting this process's figures --------------------------------------------------------------


class _Exported:
    """What ``export`` has already added to the counters, for the recorder it read it from."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.recorder: weakref.ReferenceType | None = None
        self.values: dict[tuple[str, str], int] = {}
        self.evictions = 0
        self.opened = 0
        self.cpu = 0.0
        self.guard: weakref.ReferenceType | None = None


_exported = _Exported()
_process: psutil.Process | None = None


def export() -> None:
    """Add what this process counted since the last export to the counters, and set its
    gauges. Counters only go up: a recorder made anew (a new cache configuration) starts
    from where the counters are."""
    backend = cache.backend()
    if not isinstance(backend, InstrumentedCacheMixin):
        return
    recorder = backend.recorder
    with _exported.lock:
        if _exported.recorder is None or _exported.recorder() is not recorder:
            _exported.recorder = weakref.ref(recorder)
            _exported.values, _exported.evictions = {}, 0
        for namespace, row in recorder.lifetime().items():
            kind = kind_of(namespace)
            for field, counter in CACHE_COUNTERS.items():
                value = row.get(field, 0)
                delta = value - _exported.values.get((namespace, field), 0)
                if delta > 0:
                    counter.labels(namespace, kind).inc(
                        delta / 1_000_000 if field == "time_us" else delta
                    )
                    _exported.values[(namespace, field)] = value
        evictions = recorder.evictions + recorder.evictions_before_reset
        if evictions > _exported.evictions:
            EVICTIONS.inc(evictions - _exported.evictions)
            _exported.evictions = evictions
        _export_breaker(backend)
    figures = backend.gauges()
    COPIES.set(figures["copies"]["entries"])
    COPIES_BYTES.set(figures["copies"]["bytes"])
    if figures["entries"] is not None:
        LOCAL_ENTRIES.set(figures["entries"])
        LOCAL_BYTES.set(figures["bytes"])


def _export_breaker(backend: Any) -> None:
    breaker = backend.breaker_state() or {"state": "closed", "opened": 0}
    for state in BREAKER_STATES:
        BREAKER.labels(state).set(1 if state == breaker["state"] else 0)
    guard = getattr(backend, "guard", None)
    if guard is not None and (_exported.guard is None or _exported.guard() is not guard):
        _exported.guard, _exported.opened = weakref.ref(guard), 0
    if breaker.get("opened", 0) > _exported.opened:
        BREAKER_OPENED.inc(breaker["opened"] - _exported.opened)
        _exported.opened = breaker["opened"]


def export_process() -> None:
    """This worker's memory, CPU, threads and descriptors, into its multiprocess files."""
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = psutil.Process(os.getpid())
        _exported.cpu = 0.0
    with _process.oneshot():
        memory = _process.memory_info()
        times = _process.cpu_times()
        _PROCESS_RSS.set(memory.rss)
        _PROCESS_VMS.set(memory.vms)
        _PROCESS_FDS.set(_process.num_fds())
        _PROCESS_THREADS.set(_process.num_threads())
        _PROCESS_START.set(_process.create_time())
    cpu = times.user + times.system
    with _exported.lock:
        if cpu > _exported.cpu:
            _PROCESS_CPU.inc(cpu - _exported.cpu)
            _exported.cpu = cpu


class Exporter(threading.Thread):
    """Exports this worker's figures every ``interval`` seconds (multiprocess mode)."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="metrics-exporter", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                export()
                export_process()
            except Exception:
                logger.exception("exporting this process's metrics failed")

    def stop(self) -> None:
        self.stopped.set()


_exporter: Exporter | None = None
_exporter_lock = threading.Lock()


def start_exporter(interval: float = EXPORT_INTERVAL) -> Exporter | None:
    """Start this worker's exporter once, where several workers share the metrics (gunicorn's
    ``post_worker_init``); with one process, each scrape exports what it shows."""
    global _exporter
    if not multiprocess_mode():
        return None
    with _exporter_lock:
        if _exporter is None or not _exporter.is_alive():
            _exporter = Exporter(interval)
            _exporter.start()
        return _exporter


# What is the same from every instance ---------------------------------------------------------


class SharedCollector(Collector):
    """Read at scrape time, the same whichever process answers: the service's info, the shared
    cache's size, the namespaces the cache has not caught up with the database on."""

    def collect(self) -> Iterator[object]:
        backend = cache.backend()
        server = backend.server_info() if hasattr(backend, "server_info") else {}
        info = GaugeMetricFamily(
            "wsinv_build_info",
            "The service: its version, cache backend and database vendor (always 1).",
            labels=["version", "cache_backend", "database_vendor"],
        )
        info.add_metric([_version(), str(server.get("backend") or "other"), connection.vendor], 1.0)
        yield info
        if server.get("backend") == "redis" and not server.get("unavailable"):
            keys = cache.api.key_counts()
            if keys is not None:
                entries = GaugeMetricFamily(
                    "wsinv_cache_shared_entries",
                    "This service's keys in the shared Redis, the same from every instance: "
                    "aggregate with max().",
                )
                entries.add_metric([], float(sum(keys.values())))
                yield entries
            used = server.get("used_memory")
            if used is not None:
                memory = GaugeMetricFamily(
                    "wsinv_cache_shared_bytes",
                    "Memory the shared Redis uses (every application's keys), the same from "
                    "every instance: aggregate with max().",
                )
                memory.add_metric([], float(used))
                yield memory
        try:
            behind = len(cache.sync.behind())
        except Exception:  # the database or the cache is away: the gauge is missing, not 0
            logger.warning("could not tell which namespaces are behind", exc_info=True)
            return
        gauge = GaugeMetricFamily(
            "wsinv_cache_namespaces_behind",
            "Namespaces whose cache generation has not taken in the database's latest change "
            "yet (pending invalidations; the sweep applies them within a second). The same "
            "from every instance: aggregate with max().",
        )
        gauge.add_metric([], float(behind))
        yield gauge


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("workstation-inventory")
    except PackageNotFoundError:
        return "unknown"


def registry() -> CollectorRegistry:
    """What one scrape shows: in multiprocess mode, every worker's files added up."""
    registry = CollectorRegistry(auto_describe=True)
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)
        registry.register(PLATFORM_COLLECTOR)
    else:
        for collector in (
            REQUESTS,
            LATENCY,
            *CACHE_COUNTERS.values(),
            EVICTIONS,
            BREAKER_OPENED,
            BREAKER,
            COPIES,
            COPIES_BYTES,
            LOCAL_ENTRIES,
            LOCAL_BYTES,
            PROCESS_COLLECTOR,
            PLATFORM_COLLECTOR,
            GC_COLLECTOR,
        ):
            registry.register(collector)
    registry.register(SharedCollector())
    return registry


# Who may scrape -------------------------------------------------------------------------------

#: Headers a proxy adds to say who its client is.
_FORWARDING = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def client_address(request: HttpRequest) -> str | None:
    """The client's address as ``REST_FRAMEWORK["NUM_PROXIES"]`` defines it (DRF's
    ``get_ident``, which the throttles use too); ``None`` when it cannot be told: no proxy is
    declared, yet the request says it was forwarded. Then the peer is a proxy (on this host, it
    is 127.0.0.1 for every client) and the client behind it is unknown."""
    num_proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES")
    if not num_proxies and any(request.META.get(name) for name in _FORWARDING):
        return None
    return BaseThrottle().get_ident(request)


def _allowed(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip(), token)
    try:
        address = ipaddress.ip_address(client_address(request) or "")
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
    started = time.perf_counter()
    export()
    if multiprocess_mode():
        export_process()
    body = generate_latest(registry())
    logger.debug("metrics exported in %.1f ms", (time.perf_counter() - started) * 1000)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
