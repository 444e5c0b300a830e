"""gunicorn settings that are right out of the box for both runtime shapes.

Embedded default (no REDIS_URL): the cache lives in process memory, so exactly one worker
process with several threads. Production (REDIS_URL set): several worker processes sharing Redis.
"""

import multiprocessing
import os
import shutil
import tempfile

_redis = bool(os.environ.get("REDIS_URL", "").strip())
_default_workers = min(2 * multiprocessing.cpu_count() + 1, 8) if _redis else 1

# settings.BIND reads the same, for bootstrap's login notice: keep the defaults equal.
bind = os.environ.get("BIND", "127.0.0.1:8000").strip() or "127.0.0.1:8000"
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
        "gunicorn: WEB_CONCURRENCY > 1 needs REDIS_URL. The local-memory cache lives inside one "
        "process; several processes would each serve their own, stale, copy."
    )


def post_worker_init(worker):
    """Start the sweep that applies every committed change to the cache (every worker, both
    shapes); warm the cache in the background if asked."""
    from django.conf import settings

    from performance.cache import sync

    sync.start_sweeper(getattr(settings, "CACHE_SWEEP_INTERVAL", 0.5))

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
