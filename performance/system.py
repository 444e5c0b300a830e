"""System figures for the console: this process, the machine, and round trips to the services."""

from __future__ import annotations

import os
import platform
import threading
import time
from typing import Any

import django
import psutil
from django.db import connection

from . import cache

#: One Process object for the life of the process: psutil's cpu_percent measures the CPU used
#: since the previous call on the same object (a fresh object always reports 0.0).
_PROCESS = psutil.Process(os.getpid())
_PROCESS.cpu_percent(interval=None)


def _round_trip_ms(fn: Any) -> float | None:
    start = time.perf_counter()
    try:
        fn()
    except Exception:
        return None
    return round((time.perf_counter() - start) * 1000, 3)


def _ping_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _ping_cache() -> None:
    # has_key is timed but counts no hit or miss, so the figures stay the clients'.
    cache.backend().has_key("_ping:rtt")


def system_metrics() -> dict[str, Any]:
    """Process memory, CPU, threads, uptime, load, versions, and measured round trips."""
    process = _PROCESS if _PROCESS.pid == os.getpid() else psutil.Process(os.getpid())
    with process.oneshot():
        memory = process.memory_info()
        cpu_times = process.cpu_times()
        threads = process.num_threads()
        created = process.create_time()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        load = None
    return {
        "pid": os.getpid(),
        "rss_bytes": memory.rss,
        "cpu_percent": process.cpu_percent(interval=None),
        "cpu_user_seconds": round(cpu_times.user, 2),
        "cpu_system_seconds": round(cpu_times.system, 2),
        "threads": threads,
        "python_threads": threading.active_count(),
        "uptime_seconds": round(time.time() - created, 1),
        "load_average": load,
        "cpu_count": psutil.cpu_count(),
        "memory_total_bytes": psutil.virtual_memory().total,
        "python_version": platform.python_version(),
        "django_version": django.get_version(),
        "database_vendor": connection.vendor,
        "database_rtt_ms": _round_trip_ms(_ping_database),
        "cache_rtt_ms": _round_trip_ms(_ping_cache),
    }
