"""gunicorn settings that are right out of the box for both runtime shapes.

Embedded default (no REDIS_URL nor REDIS_SENTINELS): the cache lives in process memory, so
exactly one worker process with several threads. Production (Redis): several worker processes
sharing it.
"""

import multiprocessing
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

_redis = any(os.environ.get(name, "").strip() for name in ("REDIS_URL", "REDIS_SENTINELS"))
_default_workers = min(2 * multiprocessing.cpu_count() + 1, 8) if _redis else 1

# settings.BIND reads the same, for bootstrap's login notice: keep the defaults equal.
bind = os.environ.get("BIND", "127.0.0.1:8000").strip() or "127.0.0.1:8000"


def _control_socket() -> str | None:
    """This instance's control socket (``gunicornc -s PATH``), or ``None`` for none.

    gunicorn's default is one path per user (``$XDG_RUNTIME_DIR/gunicorn.ctl`` or
    ``~/.gunicorn/gunicorn.ctl``): a second instance replaces the first one's socket, and stopping
    either deletes it. Here each instance has its own, under ``VAR_DIR`` and named by the address
    it binds, which no two running instances share. ``GUNICORN_CONTROL_SOCKET`` names another
    path, or ``none``. A path longer than a Unix socket's limit (108 bytes) means none.
    """
    chosen = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
    if chosen.lower() == "none":
        return None
    if not chosen:
        var_dir = Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
        name = re.sub(r"[^A-Za-z0-9.]+", "-", bind.removeprefix("unix:")).strip("-")
        chosen = str(var_dir.resolve() / f"gunicorn-{name}.ctl")
    if len(os.fsencode(chosen)) > 100:
        print(f"gunicorn: no control socket, its path is too long: {chosen}", file=sys.stderr)
        return None
    return chosen


_control = _control_socket()
control_socket_disable = _control is None
if _control is not None:
    control_socket = _control
workers = int(os.environ.get("WEB_CONCURRENCY", _default_workers))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
#: Keep-alive connections a worker holds at most; when it has them all it stops accepting.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", 1000))
# Threads that read each request whole, without blocking, and serve it themselves: a client that
# trickles its headers or body holds a socket, not a thread (project/workers.py).
worker_class = "project.workers.ServingThreadWorker"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 0))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
wsgi_app = "project.wsgi:application"

if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Several processes: prometheus-client aggregates request metrics through files here.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="wsinv-metrics-")

if workers > 1 and not _redis:
    raise SystemExit(
        "gunicorn: WEB_CONCURRENCY > 1 needs Redis (REDIS_URL or REDIS_SENTINELS). The "
        "local-memory cache lives inside one process; several processes would each serve their "
        "own, stale, copy."
    )


def post_worker_init(worker):
    """Refuse a cache the service cannot run on; start the sweep that applies every committed
    change to the cache (every worker, both shapes); warm the cache in the background if asked.
    Freeze what the application loaded.

    Every DRF response is in a reference cycle with its view and request, so it is freed by
    the garbage collector, not when the request ends: with a page of 500 rows that is a few
    megabytes a request. Python collects the oldest generation only once the objects promoted
    since reach a quarter of those already there, and a loaded Django has over 100,000 of them:
    hundreds of requests' worth of garbage waited, and the worker's memory kept growing.
    ``gc.freeze()`` sets the application's own objects aside (they live as long as the worker),
    so the collector looks at, and frees, the requests' cycles soon after they end.
    """
    import gc

    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.urls import get_resolver

    from performance import metrics
    from performance.cache import sync
    from performance.checks import check_cache_backend

    # Before the worker serves anything: an error raised here stops gunicorn ("Worker failed
    # to boot"), instead of a request failing later (docs/design.md, "Redis deployments").
    errors = check_cache_backend()
    if errors:
        for error in errors:
            worker.log.error("%s: %s %s", error.id, error.msg, error.hint or "")
        raise ImproperlyConfigured(errors[0].msg)

    sync.start_sweeper(getattr(settings, "CACHE_SWEEP_INTERVAL", 0.5))
    # With several workers, each writes its own figures for /metrics (performance.metrics).
    metrics.start_exporter()

    if getattr(settings, "CACHE_WARM_ON_START", False):
        import threading

        from performance import cache

        threading.Thread(target=cache.warm, name="cache-warm", daemon=True).start()

    # Django imports the URLconf, and with it the views, serializers and filters, on the first
    # request: imported now, their objects are frozen with the rest of the application's.
    get_resolver().url_patterns  # noqa: B018
    gc.collect()
    gc.freeze()
    _large_blocks_back_to_the_system()


def _large_blocks_back_to_the_system():
    """With glibc, allocate blocks of 128 KiB and more (a response body, a rendered page) in
    pages of their own, given back when freed. glibc raises that threshold each time such a
    block is freed, up to 32 MiB, after which bodies come from the heap and the memory they
    leave behind stays with the worker. Setting it explicitly keeps it where it is."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or "musl" in name:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, 128 * 1024)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if path.startswith(os.path.join(tempfile.gettempdir(), "wsinv-metrics-")):
        shutil.rmtree(path, ignore_errors=True)
