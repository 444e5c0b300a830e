"""One log line and one metrics sample per request, with a request id the client can quote."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from . import metrics

logger = logging.getLogger("performance.requests")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def _new_request_id() -> str:
    """32 hexadecimal digits, as a UUID's, from the interpreter's generator: a request id
    names a request in the logs and guards nothing (a client may choose its own), and
    ``uuid4`` asks the system for randomness, a system call in every request that lets another
    thread take the interpreter's lock. (Each worker process reseeds after the fork.)"""
    return f"{random.getrandbits(128):032x}"


class RequestMetricsMiddleware:
    """Times each request; logs it (request id, user id, method, path, status, duration,
    X-Cache) and counts it per endpoint (the URL pattern's name, never the raw path)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # (``META``'s entry for the header: ``request.headers`` would be built from all of
        # ``META`` for this one header, on every request.)
        request_id = request_id_of(request.META.get("HTTP_X_REQUEST_ID", ""))
        request.request_id = request_id
        start = time.perf_counter()
        response = self.get_response(request)
        duration = time.perf_counter() - start
        match = getattr(request, "resolver_match", None)
        endpoint = (match.view_name or match.route) if match else "unmatched"
        metrics.observe(endpoint, request.method, response, duration)
        response["X-Request-ID"] = request_id
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else None
        log_request(
            request.method,
            request.path,
            response.status_code,
            duration,
            request_id,
            user_id,
            response.get("X-Cache"),
        )
        if hasattr(response, "settled_hit"):  # (what its replay logs: ``performance.replay``)
            response.logged_as = (endpoint, user_id)
        return response


def request_id_of(supplied: str) -> str:
    """The id of a request: the client's ``X-Request-ID`` when it is one, else a new one."""
    # fullmatch: "$" would let a trailing newline through, and a header cannot carry one.
    return supplied if _REQUEST_ID.fullmatch(supplied) else _new_request_id()


def log_request(
    method: str,
    path: str,
    status: int,
    duration: float,
    request_id: str,
    user_id: object,
    cache: str | None,
) -> None:
    """The request's log line."""
    logger.info(
        "%s %s %s %.1fms",
        method,
        path,
        status,
        duration * 1000,
        extra={
            "request_id": request_id,
            "user_id": user_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration * 1000, 2),
            "cache": cache,
        },
    )
