"""``/health/``: database and cache checks, with a cache outage reported as *degraded*.

The API keeps answering from the database when the cache is down, so a cache failure is a
warning (HTTP 200, status ``degraded``); a database failure is critical (HTTP 503).

The answer is JSON unless the client asks for another format first: a browser (``text/html``)
gets the page, ``text/plain`` the text; no ``Accept`` or ``*/*`` (load balancers, curl,
monitoring agents) gets JSON. Each failed check logs one line per probe: django-health-check's
own warning carries a traceback (``LOGGING`` keeps its logger to errors, the unexpected ones).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import uuid
from pathlib import Path
from typing import Any

import health_check
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import Context, Engine
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.exceptions import ServiceWarning
from health_check.views import HealthCheckView, MediaType

from . import cache

logger = logging.getLogger(__name__)

#: The media types django-health-check answers in, and the wildcard.
_SERVED = frozenset(
    {
        "*/*",
        "text/*",
        "text/plain",
        "text/html",
        "application/xhtml+xml",
        "application/*",
        "application/json",
        "application/atom+xml",
        "application/rss+xml",
        "application/openmetrics-text",
    }
)


def _first_served(accept: str | None) -> str | None:
    """The media range of ``accept`` the view answers in, in the client's order of preference
    (``*/*`` without an ``Accept``, or with one that cannot be read; ``None`` when it names
    nothing the view answers in: a 406)."""
    try:
        for media in MediaType.parse_header(accept or "*/*"):
            if media.weight > 0 and media.mime_type in _SERVED:
                return media.mime_type
    except ValueError:
        return "*/*"  # the library would fail on it (a 500): JSON, as for no Accept
    return None


@functools.cache
def _library_templates() -> Engine:
    return Engine(dirs=[str(Path(health_check.__file__).parent / "templates")])


@dataclasses.dataclass
class CacheCheck(HealthCheck):
    """Writes and reads a probe key; failure means slower answers, not wrong ones."""

    def run(self) -> None:
        backend = cache.backend()
        state = getattr(backend, "breaker_state", None)
        breaker = state() if callable(state) else None
        if breaker and breaker["state"] != "closed":
            raise ServiceWarning(f"circuit breaker {breaker['state']}: serving from the database")
        key = f"_health:{uuid.uuid4().hex}"
        value = uuid.uuid4().hex
        try:
            backend.set(key, value, 10)
            ok = backend.get(key) == value
            backend.delete(key)
        except Exception as exc:
            raise ServiceWarning("cache unreachable: serving from the database") from exc
        if not ok:
            raise ServiceWarning("cache unreachable: serving from the database")


class HealthView(HealthCheckView):
    checks = (Database, CacheCheck)

    def overall(self) -> tuple[str, int]:
        errors = [r.error for r in self.results if r.error]
        if any(not isinstance(error, ServiceWarning) for error in errors):
            return "critical", 503
        return ("degraded", 200) if errors else ("ok", 200)

    async def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if "format" not in request.GET and _first_served(request.headers.get("Accept")) == "*/*":
            # The library answers a wildcard with its HTML page: JSON is what probes read.
            with self.get_executor() as executor:
                self.results = await asyncio.gather(
                    *(check.get_result(executor) for check in self.get_checks())
                )
            response = self.render_to_response_json(200)
        else:
            response = await super().get(request, *args, **kwargs)
            # The library answers 500 for any failed check; tell a degraded cache from a down
            # database. Its other answers (406, feeds, OpenMetrics always 200) stay as they are.
            if response.status_code == 500:
                response.status_code = self.overall()[1]
        self.log_failures()
        return response

    def log_failures(self) -> None:
        """One line per failed check: what the check says, no traceback (probes come every few
        seconds, and the message already says what is wrong)."""
        overall, _ = self.overall()
        for result in getattr(self, "results", ()):
            if result.error:
                level = (
                    logging.WARNING if isinstance(result.error, ServiceWarning) else logging.ERROR
                )
                message = getattr(result.error, "message", result.error)
                logger.log(
                    level, "health %s: %s: %s", overall, type(result.check).__name__, message
                )

    def render_to_response(self, context: dict[str, Any], **response_kwargs: Any) -> HttpResponse:
        # health_check is not an installed app, so the template loaders cannot find its page.
        template = _library_templates().get_template(self.template_name)
        return HttpResponse(
            template.render(Context(context)), status=response_kwargs.get("status", 200)
        )

    def render_to_response_json(self, status: int) -> JsonResponse:
        overall, code = self.overall()
        return JsonResponse(
            {
                "status": overall,
                "checks": {
                    type(r.check).__name__: "OK" if not r.error else str(r.error)
                    for r in self.results
                },
            },
            status=code,
        )
