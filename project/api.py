"""API-wide error handling: every error is JSON with a body that says what went wrong."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.openapi import AutoSchema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
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


def suspicious_request(exc: SuspiciousOperation) -> tuple[int, str]:
    """Status and message for a request Django refuses to read (too large, too many fields, a
    host it does not serve). The message names the limit, never the offending input."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return 413, f"The request body is larger than the {limit} bytes this service accepts."
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return 400, f"Too many parameters: at most {limit} in the query string or body."
    if isinstance(exc, TooManyFilesSent):
        return 400, f"Too many files: at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES}."
    return 400, "Bad request."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus the domain's errors raised by services below the serializer, and
    Django's refusals to read a request (raised when a view first touches the body or query)."""
    if isinstance(exc, SuspiciousOperation):
        code, detail = suspicious_request(exc)
        logger.warning("refused request: %s", type(exc).__name__)
        return Response({"detail": detail}, status=code)
    if isinstance(exc, RecursionError):
        # Nothing of ours nests without bound; a client's JSON body does ({"a":{"a":...}}), and
        # DRF's JSONParser turns only ValueError into a ParseError.
        logger.warning("refused request: body nested too deeply")
        exc = exceptions.ParseError("JSON parse error - the body is nested too deeply.")
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
    """Django's answer to a ``SuspiciousOperation`` raised outside DRF (middleware, admin)."""
    if _wants_json(request):
        code, detail = (
            suspicious_request(exception)
            if isinstance(exception, SuspiciousOperation)
            else (400, "Bad request.")
        )
        return JsonResponse({"detail": detail}, status=code)
    return defaults.bad_request(request, exception)


# The schema of error responses ---------------------------------------------------------------

ERROR_BODY = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR_BODY = {
    "type": "object",
    "description": "Each field or query parameter in error, with its messages; "
    "``non_field_errors`` or ``detail`` for the request as a whole.",
    "additionalProperties": {},
}
CONFLICT_BODY = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "referred_to_by": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["detail"],
}


def _empty_allowed(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """django-filter and DRF treat ``?name=`` as no value (HTML forms send empty fields): the
    parameter is ignored, not refused. The schema says so."""
    return [
        {**parameter, "allowEmptyValue": True} if parameter.get("in") == "query" else parameter
        for parameter in parameters
    ]


def _empty_means_null(prop: dict[str, Any]) -> dict[str, Any]:
    value = {k: v for k, v in prop.items() if k != "nullable"}
    return {"anyOf": [value, {"type": "string", "maxLength": 0}], "nullable": True}


class InventoryAutoSchema(AutoSchema):
    """drf-spectacular's schema, plus the error responses every endpoint can give, and
    ``additionalProperties: false`` on request bodies whose serializer refuses unknown keys.

    Without them the schema promises only 2xx, and a client generated from it (or schemathesis)
    meets 400, 401, 403, 404, 413 and 429 answers it was never told about.
    """

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        # The hook below the public get_response_serializers, which also decides whether the
        # view is a list: the success responses stay exactly as drf-spectacular makes them.
        responses = super()._get_response_bodies(direction)
        for code, body in self._error_responses().items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(body, str(code))
        return responses

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and getattr(serializer, "reject_unknown_fields", False):
            schema["additionalProperties"] = False  # unknown keys are a 400, say so
            # An empty value of a nullable field means "none" (``StrictModelSerializer``).
            for name, prop in schema.get("properties", {}).items():
                if prop.get("nullable") and not prop.get("readOnly"):
                    schema["properties"][name] = _empty_means_null(prop)
        return schema

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        return _empty_allowed(super()._get_filter_parameters())

    def _get_pagination_parameters(self) -> list[dict[str, Any]]:
        return _empty_allowed(super()._get_pagination_parameters())

    def _error_responses(self) -> dict[int, Any]:
        method = self.method
        writes = method in ("POST", "PUT", "PATCH")
        errors: dict[int, Any] = {}
        # Filters apply to detail routes too (get_object filters the queryset): a bad filter
        # value is a 400 on any route of a view that has them.
        if writes or getattr(self.view, "filter_backends", None):
            errors[400] = VALIDATION_ERROR_BODY
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            errors[401] = ERROR_BODY
            errors[403] = ERROR_BODY
        if self._has_path_parameters() or self._get_pagination_parameters():
            errors[404] = ERROR_BODY  # no such object, or no such page
        if method == "DELETE":
            errors[409] = CONFLICT_BODY
        if writes:
            errors[413] = ERROR_BODY
            errors[415] = ERROR_BODY
        errors[429] = ERROR_BODY
        return errors

    def _has_path_parameters(self) -> bool:
        return "{" in self.path
