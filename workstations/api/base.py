"""Building blocks shared by the workstation API's serializers and views."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.http import HttpRequest, QueryDict
from django.utils.cache import get_conditional_response
from django.utils.http import parse_etags
from rest_framework import exceptions, filters, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from performance.cache.responses import representation_etag

UNKNOWN_FIELD = "Unknown field."
EMPTY_FOR_NULL = "An empty string is not a value here: send null for none."


class StrictCharField(serializers.CharField):
    """A text field that takes text only, and no more of it than the schema says.

    DRF's turns a JSON number into a string (``"site": 42`` is stored as "42"), and checks the
    length after trimming surrounding whitespace; the schema (``type: string``, ``maxLength``)
    allows neither.
    """

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length, length=len(data))
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    """A model serializer that refuses fields it does not know, and numbers for text.

    DRF drops unknown keys silently, so a misspelt field (``hostnme``) or one the API does not
    expose (``is_staff``, ``workstations``) would answer 200 and change nothing — or less than the
    client believes. Every unknown key is named in a 400 instead, before any field is validated.
    Read-only fields (``id``, ``created_at``...) are known: they are accepted and ignored, so a
    body read from the API can be sent back as it is.
    """

    #: Read by ``project.api.InventoryAutoSchema``: the request schema forbids other keys.
    reject_unknown_fields = True
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }

    def get_fields(self) -> dict[str, serializers.Field]:
        """DRF's fields, built from the model and ``Meta`` once per class, then copied for each
        serializer as DRF copies its declared ones: a change built some twenty-five fields
        from the model on every request (a sixth of a PATCH's time)."""
        built = type(self).__dict__.get("_built_fields")
        if built is None:
            built = super().get_fields()
            type(self)._built_fields = built
        return copy.deepcopy(built)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: [UNKNOWN_FIELD] for name in unknown})
            if not hasattr(data, "getlist"):
                # In JSON, null means none, as the request schema says ("integer or null").
                # DRF reads "" as none for a relation and a decimal too (as HTML forms send a
                # field left empty, and as it still reads forms): refused here, like the "" it
                # already refuses for a date or an integer.
                empty = [
                    name
                    for name, field in self.fields.items()
                    if field.allow_null
                    and not field.read_only
                    and not isinstance(field, serializers.CharField)
                    and data.get(name) == ""
                ]
                if empty:
                    raise serializers.ValidationError({name: [EMPTY_FOR_NULL] for name in empty})
        # Anything else (a list, a number, a string) is refused by DRF: "Expected a dictionary".
        return super().to_internal_value(data)


class SearchFilter(filters.SearchFilter):
    """DRF's search, bounded: every term becomes an ``OR`` of ``LIKE``s over every search field,
    so an unbounded ``?search=`` makes a query the database refuses (SQLite: "expression tree is
    too large") or takes long to plan. Too long, too many terms or a NUL is a 400 naming
    ``search``."""

    max_length = 200
    max_terms = 10

    def get_search_terms(self, request: Request) -> list[str]:
        try:
            return self._terms(request.query_params.get(self.search_param, ""))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({self.search_param: exc.detail}) from exc

    def _terms(self, value: str) -> list[str]:
        field = serializers.CharField(
            trim_whitespace=False, allow_blank=True, max_length=self.max_length
        )
        terms = filters.search_smart_split(field.run_validation(value))
        if len(terms) > self.max_terms:
            raise serializers.ValidationError(
                [f"Ensure there are no more than {self.max_terms} terms."]
            )
        return terms

    # The query contract (``StrictQueryMixin``) ---------------------------------------------

    def query_parameters(self, view: Any) -> Iterable[str]:
        return (self.search_param,)

    def query_errors(self, params: QueryDict, view: Any) -> dict[str, list[str]]:
        for value in params.getlist(self.search_param):
            try:
                self._terms(value)
            except serializers.ValidationError as exc:
                return {self.search_param: exc.detail}
        return {}


class OrderingFilter(filters.OrderingFilter):
    """DRF's ordering, strict and repeatable.

    DRF drops a field it does not offer and orders by the default instead, so
    ``?ordering=-purchase_dat`` answers 200 in an order the client did not ask for. Here such a
    field is a 400 naming ``ordering`` and the fields on offer (``query_errors``). Several fields
    may be given comma-separated, as in DRF, or as repeated parameters (``ordering=a&ordering=-b``:
    how clients generated from the schema send a list).
    """

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> Any:
        terms = self._terms(request.query_params)
        ordering = None
        if terms:
            # ``query_errors`` refused unknown fields before the view ran; DRF's own filtering
            # still guards a caller that did not ask it.
            ordering = self.remove_invalid_fields(queryset, terms, view, request)
        ordering = list(ordering or self.get_default_ordering(view) or ())
        # Rows that tie (the same status) come in the order of their keys, whatever the
        # database did to them since: a page holds the same rows from one request to the next.
        # In the direction of the last field: a list in descending order is the ascending one
        # reversed, ties included, and the database reads it backwards along the field's
        # index (which ends with the key, as SQLite's do), with nothing left to sort.
        if ordering and not {"pk", "id", "-pk", "-id"} & set(ordering):
            ordering.append("-pk" if ordering[-1].startswith("-") else "pk")
        return ordering

    def ordered_by(self, params: QueryDict, view: Any) -> list[str]:
        """The fields a list is ordered by, for ``params`` (without direction)."""
        terms = self._terms(params) or list(self.get_default_ordering(view) or ())
        return [term.lstrip("-") for term in terms]

    def _terms(self, params: QueryDict) -> list[str]:
        return [
            term.strip()
            for value in params.getlist(self.ordering_param)
            for term in value.split(",")
            if term.strip()
        ]

    def ordering_values(self, view: Any) -> list[str]:
        """Every value ``ordering`` takes on ``view``: each field, then each field descending."""
        fields = [name for name, _ in self.get_valid_fields(view.get_queryset(), view, {})]
        return fields + [f"-{name}" for name in fields]

    # The query contract (``StrictQueryMixin``) ---------------------------------------------

    def query_parameters(self, view: Any) -> Iterable[str]:
        return (self.ordering_param,)

    def query_errors(self, params: QueryDict, view: Any) -> dict[str, list[str]]:
        allowed = self.ordering_values(view)
        if all(term in allowed for term in self._terms(params)):
            return {}
        fields = ", ".join(allowed[: len(allowed) // 2])
        return {
            self.ordering_param: [
                f"Order by one of: {fields}; prefix a field with '-' for descending order, and "
                "give several comma-separated or as repeated parameters."
            ]
        }


class QueryReader(Protocol):
    """A filter backend or paginator that takes part in the query contract: the parameters it
    reads, and what is wrong with their values (per parameter, as a 400 body says it)."""

    def query_parameters(self, view: Any) -> Iterable[str]: ...

    def query_errors(self, params: QueryDict, view: Any) -> dict[str, list[str]]: ...


#: Query strings already checked, per view class and action: clients choose them, so bounded.
_MAX_CHECKED = 4096
_checked: dict[tuple[Any, ...], dict[str, list[str]]] = {}
_known: dict[tuple[Any, ...], frozenset[str]] = {}


class StrictQueryMixin:
    """Reads refuse query parameters the endpoint does not read, and bad values of ``ordering``,
    ``page_size`` and ``search``: a 400 naming each parameter and what it takes.

    DRF and django-filter ignore a parameter they do not know, so ``?stauts=deployed`` answered
    every workstation, and a script acting on the result acted on all of them. The known
    parameters are ``format`` and, on collection routes, those the view's filter backends and
    paginator read (``QueryReader``): the same ones the schema documents.

    The check depends on nothing but the view and the raw query string, so its answer is
    remembered per query string; DRF's ``initial()`` asks it after the throttles, and the
    cache's early read asks it at the same point (``refuses_query``): a refused query is refused
    warm as cold, before any cache key is made for it (docs/design.md, "A cached GET").
    Writes are left alone: the browsable API posts its forms to the page's own URL, query
    string included.
    """

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method in ("GET", "HEAD"):
            errors = self.query_errors(request)
            if errors:
                raise serializers.ValidationError(errors)

    def refuses_query(self, request: HttpRequest) -> bool:
        """The early read's question (``CachedResponseMixin``): would ``initial`` refuse it?"""
        return bool(self.query_errors(request))

    def query_errors(self, request: HttpRequest | Request) -> dict[str, list[str]]:
        # ``_route()`` and the raw query string, spelt out: this runs on every warm hit.
        memo = (
            type(self),
            getattr(self, "action", None),
            getattr(self, "detail", None),
            self.pagination_class,
            request.META.get("QUERY_STRING", ""),
        )
        errors = _checked.get(memo)
        if errors is None:
            errors = self._query_errors(request.GET)
            if len(_checked) >= _MAX_CHECKED:
                _checked.clear()
            _checked[memo] = errors
        return errors

    def _query_errors(self, params: QueryDict) -> dict[str, list[str]]:
        known = self._known_parameters()
        errors: dict[str, list[str]] = {}
        unknown = sorted(set(params) - known)
        if unknown:
            message = f"Unknown parameter: this endpoint reads {', '.join(sorted(known))}."
            errors.update((name, [message]) for name in unknown)
        for reader in self._query_readers():
            check = getattr(reader, "query_errors", None)
            if check is not None:
                errors.update(check(params, self))
        return errors

    def _route(self) -> tuple[Any, ...]:
        """What decides the parameters a view reads: its class, and the action with what a
        route sets for it (a router's ``detail``, an action's ``pagination_class``)."""
        return (
            type(self),
            getattr(self, "action", None),
            getattr(self, "detail", None),
            self.pagination_class,
        )

    def _known_parameters(self) -> frozenset[str]:
        memo = self._route()
        known = _known.get(memo)
        if known is None:
            names = {api_settings.URL_FORMAT_OVERRIDE} - {None}
            for reader in self._query_readers():
                names.update(_parameters_of(reader, self))
            known = _known[memo] = frozenset(names)
        return known

    def _query_readers(self) -> list[Any]:
        """The filter backends and paginator of a collection route; a detail route reads no
        query parameter but ``format``."""
        if getattr(self, "detail", False):
            return []
        readers = [backend() for backend in self.filter_backends]
        if self.paginator is not None:
            readers.append(self.paginator)
        return readers


def _parameters_of(reader: QueryReader | Any, view: Any) -> Iterable[str]:
    """The parameters a backend or paginator reads: as it says (``QueryReader``), or as it
    documents them to DRF's schema generation."""
    read = getattr(reader, "query_parameters", None)
    if read is not None:
        return read(view)
    return [parameter["name"] for parameter in reader.get_schema_operation_parameters(view)]


# Conditional writes ---------------------------------------------------------------------------

#: The request headers that make a write conditional (RFC 9110, section 13.1).
_PRECONDITION_HEADERS = ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_UNMODIFIED_SINCE")
#: The actions whose answer is one object's representation, as its GET sends it.
_WRITES_OF_ONE = frozenset({"create", "update", "partial_update"})
CHANGED_SINCE_READ = (
    "The object has changed since the version you sent in If-Match: get it again (its ETag "
    "is in the ETag header and in `etag`), apply your change to it, and send that."
)


class PreconditionFailed(exceptions.APIException):
    """412: the object is no longer the version the client's ``If-Match`` names."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = CHANGED_SINCE_READ
    default_code = "precondition_failed"

    def __init__(self, etag: str) -> None:
        super().__init__({"detail": CHANGED_SINCE_READ, "etag": etag})
        self.etag = etag


class ConditionalWriteMixin:
    """Single objects carry an ``ETag``; ``PUT``, ``PATCH`` and ``DELETE`` honour ``If-Match``.

    The ETag is the one a ``GET`` of the object sends (``representation_etag`` of its default
    JSON body), so a client sends back what it read. The precondition is checked by the service,
    on the row locked for the write (``services.Precondition``): no other write can come between
    the check and the change. Django's ``get_conditional_response`` decides, as it does for
    reads: strong comparison for ``If-Match``, ``*`` and lists. A write without a precondition
    proceeds (and changes only the fields it sends).
    """

    def write_precondition(self) -> Callable[[models.Model], None] | None:
        """The check for the service to run on the locked row, ``None`` without a precondition
        header. An ``If-Match`` that holds no ETag (unquoted, say) is a 400 rather than ignored:
        the client believes its write is guarded."""
        meta = self.request.META
        if not any(header in meta for header in _PRECONDITION_HEADERS):
            return None
        if_match = meta.get("HTTP_IF_MATCH", "").strip()
        if if_match and not parse_etags(if_match):
            raise serializers.ValidationError(
                {"If-Match": ['Send an ETag as GET returns it, quotes included ("..."), or *.']}
            )

        def check(current: models.Model) -> None:
            etag = self.representation_etag(current)
            if get_conditional_response(self.request, etag=etag) is not None:
                raise PreconditionFailed(etag)

        return check

    def representation_etag(self, instance: models.Model) -> str:
        """The ETag of ``instance``'s default JSON representation, as a ``GET`` sends it."""
        return self._etag_of(self.get_serializer(instance).data)

    def _etag_of(self, data: Any) -> str:
        renderer = next(
            (kind() for kind in self.renderer_classes if issubclass(kind, JSONRenderer)),
            JSONRenderer(),
        )
        return representation_etag(renderer.render(data, renderer.media_type, {}))

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ObjectDoesNotExist):
            # Deleted by another client between loading it and locking it for the write.
            exc = exceptions.NotFound()
        response = super().handle_exception(exc)
        if isinstance(exc, PreconditionFailed):
            response["ETag"] = exc.etag  # the current version, to read again
        return response

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        # A created or changed object: the ETag its next GET sends, for the client's next write.
        if (
            getattr(self, "action", None) in _WRITES_OF_ONE
            and response.status_code in (200, 201)
            and isinstance(getattr(response, "data", None), Mapping)
            and "id" in response.data
        ):
            response["ETag"] = self._etag_of(response.data)
        return response
