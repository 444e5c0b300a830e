"""API-wide error handling: every error is JSON with a body that says what went wrong."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


#: Seconds a client is told to wait when the database is unreachable.
RETRY_AFTER = 5
DATABASE_DOWN = "The database is unavailable; try again shortly."


def database_unavailable(exc: BaseException) -> bool:
    """Connection-level failures, as opposed to errors in a query we wrote."""
    return isinstance(exc, OperationalError | InterfaceError)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the domain's errors raised by services below the serializer."""
    if isinstance(exc, DatabaseError) and database_unavailable(exc):
        logger.error("database unavailable: %s", type(exc).__name__)
        return Response(
            {"detail": DATABASE_DOWN},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER)},
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=as_serializer_error(exc))
    elif isinstance(exc, ProtectedError):
        names = sorted({str(obj) for obj in exc.protected_objects})[:10]
        return Response(
            {
                "detail": "This object is still referred to and cannot be deleted.",
                "referred_to_by": names,
            },
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's last resort (DEBUG off). An unreachable database, raised from anywhere (the
    session middleware, the admin), is a 503 with Retry-After rather than a 500."""
    exc = sys.exc_info()[1]
    if exc is not None and database_unavailable(exc):
        logger.error("database unavailable on %s: %s", request.path, type(exc).__name__)
        if _wants_json(request):
            response: HttpResponse = JsonResponse({"detail": DATABASE_DOWN}, status=503)
        else:
            response = HttpResponse(DATABASE_DOWN, status=503, content_type="text/plain")
        response["Retry-After"] = str(RETRY_AFTER)
        return response
    if _wants_json(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)
