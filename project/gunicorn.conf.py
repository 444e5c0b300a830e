"""gunicorn settings that are right out of the box for both runtime shapes.

Embedded default (no REDIS_URL nor REDIS_SENTINELS): the cache lives in process memory, so
exactly one worker process with several threads. Production (Redis): several worker processes
sharing it.
"""

import multiprocessing
import os
import shutil
import tempfile

_redis = any(os.environ.get(name, "").strip() for name in ("REDIS_URL", "REDIS_SENTINELS"))
_default_workers = min(2 * multiprocessing.cpu_count() + 1, 8) if _redis else 1

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", _default_workers))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
#: Keep-alive connections a worker holds at most; when it has them all it stops accepting.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", 1000))
worker_class = "gthread"
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
    change to the cache (every worker, both shapes); warm the cache in the background if asked."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

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


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if path.startswith(os.path.join(tempfile.gettempdir(), "wsinv-metrics-")):
        shutil.rmtree(path, ignore_errors=True)
