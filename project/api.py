"""API-wide error handling (every error is JSON with a body that says what went wrong), and the
OpenAPI schema that tells clients so."""

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
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiFilterExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import (
    ResolvedComponent,
    build_array_type,
    build_parameter_type,
    get_view_model,
)
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from performance.throttling import LoginAddressThrottle, LoginLockoutThrottle

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


# The OpenAPI schema ---------------------------------------------------------------------------
#
# What clients generated from /api/schema/ read: one media type per body (JSON), named
# components for every error and enum, ``required`` as the responses really are, the responses
# each operation can give (304 and 412 of conditional reads, 429, 503), descriptions written
# for API users (SPECTACULAR_SETTINGS disables docstrings: they are written for developers).
# tests/project/test_schema.py pins each of these; tests/project/test_generated_client.py
# generates a client from the served schema and uses it against a live server.

STRING_OR_STRINGS = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

#: Error bodies, published once each as a named component.
ERROR_COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "description": "What went wrong, in words.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ValidationError": {
        "type": "object",
        "description": "Each field or query parameter in error, with its messages; "
        "`non_field_errors` for the body as a whole, `detail` for a body that cannot be read.",
        "additionalProperties": STRING_OR_STRINGS,
    },
    "PreconditionFailed": {
        "type": "object",
        "description": "The object changed since the version `If-Match` names: `etag` is the "
        "current one (also in the `ETag` header). Get the object again and apply the change to "
        "it.",
        "properties": {"detail": {"type": "string"}, "etag": {"type": "string"}},
        "required": ["detail", "etag"],
    },
    "Conflict": {
        "type": "object",
        "description": "The object is still referred to, by the objects named (at most ten).",
        "properties": {
            "detail": {"type": "string"},
            "referred_to_by": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["detail", "referred_to_by"],
    },
}

#: The responses besides success, by status code: (body component or None, description).
OTHER_RESPONSES: dict[int, tuple[str | None, str]] = {
    304: (None, "Not modified: the ETag sent in `If-None-Match` is still current."),
    400: ("ValidationError", "The request is not valid; each parameter or field is named."),
    401: (
        "Error",
        "No credentials, or credentials this service does not accept: send "
        "`Authorization: Bearer <token>` (a token from `POST /api/auth/token/`).",
    ),
    403: ("Error", "Authenticated, without the permission this operation needs."),
    404: ("Error", "No such object, or no such page."),
    409: ("Conflict", "The object is still referred to and cannot be deleted."),
    412: (None, "Precondition failed: the ETag sent in `If-Match` is no longer current."),
    413: ("Error", "The request body is larger than this service accepts."),
    415: ("Error", "The body's media type is not accepted: send `Content-Type: application/json`."),
    429: ("Error", "Too many requests: wait the seconds `Retry-After` says."),
    503: (
        "Error",
        "A service the request needs is unavailable (the database; for a cache action, the "
        "cache): try again shortly, after `Retry-After` seconds when it is given.",
    ),
}

RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[429, 503],
    description="Seconds to wait before trying again.",
)
#: Writes of one object honour If-Match, answer 412 with the current ETag, and a success
#: carries the new ETag (``workstations.api.base.ConditionalWriteMixin``).
CONDITIONAL_WRITE_412 = (
    "PreconditionFailed",
    "Precondition failed: the object changed since the version `If-Match` names; `ETag` is "
    "the current one.",
)
CONDITIONAL_WRITE = [
    OpenApiParameter(
        "If-Match",
        str,
        OpenApiParameter.HEADER,
        description="The ETag of the version this change was made to, as a GET of the object "
        "sent it (quotes included), or `*`: 412 when the object has changed since. Without it, "
        "the write proceeds and changes only the fields sent.",
    ),
    OpenApiParameter(
        "ETag",
        str,
        OpenApiParameter.HEADER,
        response=[200, 412],
        description="The object's current tag, for the next If-Match.",
    ),
]

CREATED_ETAG = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    response=[201],
    description="The new object's tag, for If-Match on its next change.",
)

#: Reads answered through the cache carry an ETag, and honour conditional requests (RFC 9110).
CONDITIONAL_READ = [
    OpenApiParameter(
        "If-None-Match",
        str,
        OpenApiParameter.HEADER,
        description="ETags of representations the client holds: 304 while one is current.",
    ),
    OpenApiParameter(
        "If-Match",
        str,
        OpenApiParameter.HEADER,
        description="ETags the representation must still have: 412 when none is current.",
    ),
    OpenApiParameter(
        "ETag",
        str,
        OpenApiParameter.HEADER,
        response=[200, 304],
        description="The representation's tag, for If-None-Match and If-Match.",
    ),
]


class InventoryAutoSchema(AutoSchema):
    """drf-spectacular's schema, plus the responses every endpoint can give, and
    ``additionalProperties: false`` on request bodies whose serializer refuses unknown keys.

    Without them the schema promises only 2xx, and a client generated from it (or schemathesis)
    meets 304, 400, 401, 403, 404, 413 and 429 answers it was never told about.
    """

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        # The hook below the public get_response_serializers, which also decides whether the
        # view is a list: the success responses stay exactly as drf-spectacular makes them.
        responses = super()._get_response_bodies(direction)
        for code in self._other_codes():
            if str(code) not in responses:
                component, description = OTHER_RESPONSES[code]
                if code == 412 and self._conditional_write():
                    component, description = CONDITIONAL_WRITE_412
                body = None if component is None else self._component(component)
                responses[str(code)] = self._get_response_for_code(
                    OpenApiResponse(response=body, description=description), str(code)
                )
        return responses

    def _component(self, name: str) -> dict[str, str]:
        component = ResolvedComponent(
            name=name,
            type=ResolvedComponent.SCHEMA,
            object=name,
            schema=ERROR_COMPONENTS[name],
        )
        self.registry.register_on_missing(component)
        return component.ref

    def get_override_parameters(self) -> list[Any]:
        parameters = [*super().get_override_parameters(), RETRY_AFTER_HEADER]
        if self._conditional():
            parameters += CONDITIONAL_READ
        if self._conditional_write():
            parameters += CONDITIONAL_WRITE
        elif self._creates_versioned():
            parameters.append(CREATED_ETAG)
        return parameters

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and getattr(serializer, "reject_unknown_fields", False):
            schema["additionalProperties"] = False  # unknown keys are a 400, say so
        if direction == "response" and isinstance(serializer, serializers.ModelSerializer):
            # A model serializer writes every field of every object, null where there is no
            # value: none is optional. (``required`` on its fields speaks of input only.)
            schema["required"] = sorted(schema.get("properties", {}))
        return schema

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        return _empty_allowed(super()._get_filter_parameters())

    def _get_pagination_parameters(self) -> list[dict[str, Any]]:
        return _empty_allowed(super()._get_pagination_parameters())

    def _conditional(self) -> bool:
        """A read answered through the cache: ETag, 304 and 412 (``CachedResponseMixin``)."""
        view = self.view
        return (
            self.method == "GET"
            and bool(getattr(view, "cache_namespace", ""))
            and getattr(view, "action", None)
            in {"list", "retrieve", *getattr(view, "cache_fast_actions", ())}
        )

    def _conditional_write(self) -> bool:
        """A change of one object that honours If-Match (``ConditionalWriteMixin``)."""
        return (
            self.method in ("PUT", "PATCH", "DELETE")
            and self._has_path_parameters()
            and callable(getattr(self.view, "write_precondition", None))
        )

    def _creates_versioned(self) -> bool:
        """A create whose answer carries the new object's ETag (``ConditionalWriteMixin``)."""
        return (
            self.method == "POST"
            and not self._has_path_parameters()
            and getattr(self.view, "action", None) == "create"
            and callable(getattr(self.view, "write_precondition", None))
        )

    def _other_codes(self) -> list[int]:
        method = self.method
        writes = method in ("POST", "PUT", "PATCH")
        codes = []
        if self._conditional():
            codes.append(304)
        # A body, or a query string: reads refuse parameters they do not read (StrictQueryMixin),
        # and bad page sizes (a workstation's history: pages, no filters).
        if (
            writes
            or getattr(self.view, "filter_backends", None)
            or self._get_pagination_parameters()
        ):
            codes.append(400)
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += [401, 403]
        if self._has_path_parameters() or self._get_pagination_parameters():
            codes.append(404)  # no such object, or no such page
        if method == "DELETE":
            codes.append(409)
        if self._conditional() or self._conditional_write():
            codes.append(412)
        if writes:
            codes += [413, 415]
        codes += [429, 503]
        return codes

    def _has_path_parameters(self) -> bool:
        return "{" in self.path


def _empty_allowed(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """django-filter and DRF treat ``?name=`` as no value (HTML forms send empty fields): the
    parameter is ignored, not refused. The schema says so."""
    return [
        {**parameter, "allowEmptyValue": True} if parameter.get("in") == "query" else parameter
        for parameter in parameters
    ]


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The token scheme as clients should send it: ``Authorization: Bearer <token>``
    (``CachedTokenAuthentication`` reads DRF's ``Token`` keyword too). drf-spectacular's own
    extension publishes an API key header with a ``Token`` prefix, which generated clients
    cannot fill in."""

    target_class = "performance.auth.CachedTokenAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer <token>`, the token from "
            "`POST /api/auth/token/` (`Authorization: Token <token>` is accepted too).",
        }


class OrderingFilterScheme(OpenApiFilterExtension):
    """``ordering`` as a named enum of the values it takes (``OrderingFilter``), repeatable:
    DRF's own publishes a free string, so a typo only showed at run time."""

    target_class = "workstations.api.base.OrderingFilter"

    def get_schema_operation_parameters(
        self, auto_schema: AutoSchema, *args: Any, **kwargs: Any
    ) -> list[dict[str, Any]]:
        view = auto_schema.view
        name = f"{get_view_model(view).__name__}OrderingEnum"
        component = ResolvedComponent(
            name=name,
            type=ResolvedComponent.SCHEMA,
            object=name,
            schema={"type": "string", "enum": self.target.ordering_values(view)},
        )
        auto_schema.registry.register_on_missing(component)
        return [
            build_parameter_type(
                name=self.target.ordering_param,
                schema=build_array_type(component.ref),
                location=OpenApiParameter.QUERY,
                description="Fields to order by, in turn; `-` before a field orders it "
                "descending. Repeat the parameter, or separate fields with commas.",
                explode=True,
                style="form",
            )
        ]


def name_parameter_enums(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook, after drf-spectacular's ``postprocess_schema_enums``: an enum of a
    query parameter (``status``, ``form_factor``) refers to the component of the same choices
    (``StatusEnum``) instead of repeating them inline, where clients generated from the schema
    make one more class per operation (``WorkstationsListStatusItem``)."""
    components = result.get("components", {}).get("schemas", {})
    by_values = {
        frozenset(schema["enum"]): name
        for name, schema in components.items()
        if isinstance(schema.get("enum"), list)
    }
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                holder = schema.get("items", schema) if schema.get("type") == "array" else schema
                name = by_values.get(frozenset(holder.get("enum", ())) - {"", None})
                if "enum" in holder and name is not None:
                    for key in ("type", "enum", "x-spec-enum-id"):
                        holder.pop(key, None)
                    holder["$ref"] = f"#/components/schemas/{name}"
    return result


# The token endpoint ---------------------------------------------------------------------------


@extend_schema(
    summary="Get a token",
    description="Exchange a username and password for the user's token (the same token every "
    "time, until it is deleted). Send it as `Authorization: Bearer <token>`. Attempts are "
    "limited per username and per client address, failed ones included (429).",
)
class ObtainTokenView(ObtainAuthToken):
    """DRF's token endpoint, throttled, and authenticated by its body only.

    With the API's authenticators, a client that still sent an old token in its
    ``Authorization`` header got 401 "Invalid token" here, where it came for a new one; and the
    schema listed the endpoint as needing a token to get one.
    """

    authentication_classes = ()
    # Every attempt counts against its address, failed or not (it needs no body); then the
    # lockout by username and address decides (performance/throttling.py). The outcome is
    # counted by ``record_login`` around the view (project/urls.py).
    throttle_classes = (LoginAddressThrottle, LoginLockoutThrottle)
    schema = InventoryAutoSchema()
