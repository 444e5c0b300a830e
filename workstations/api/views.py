"""Workstation and location endpoints: declarations over the selectors and services."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from performance import cache
from performance.cache import ABOUT_LAYOUT, ABOUT_PAGE
from performance.cache.responses import CachedResponseMixin
from workstations import selectors, services

from . import rows
from .base import ConditionalWriteMixin, OrderingFilter, StrictQueryMixin
from .filters import WorkstationFilter
from .history import ChangeSerializer, CheckinSerializer, CheckoutSerializer
from .permissions import ChangePermissions
from .serializers import LocationSerializer, WorkstationSerializer, WorkstationSummarySerializer


@extend_schema_view(
    list=extend_schema(
        summary="List workstations",
        description="A page of workstations, filtered, searched and ordered as asked (by host "
        "name unless `ordering` says otherwise). A parameter this endpoint does not read is a "
        "400.",
    ),
    retrieve=extend_schema(summary="Get a workstation"),
    create=extend_schema(
        summary="Add a workstation",
        description="Host names are stored lower-case and MAC addresses as `aa:bb:cc:dd:ee:ff`. "
        "A deployed workstation needs an assignee. Needs the *add workstation* permission.",
    ),
    update=extend_schema(
        summary="Replace a workstation",
        description="The body of a new workstation: `asset_tag` and `hostname` required; an "
        "optional field left out keeps its value. Needs the *change workstation* permission.",
    ),
    partial_update=extend_schema(
        summary="Change a workstation",
        description="Only the fields sent change. Needs the *change workstation* permission.",
    ),
    destroy=extend_schema(
        summary="Delete a workstation",
        description="Needs the *delete workstation* permission.",
    ),
)
class WorkstationViewSet(
    ConditionalWriteMixin, StrictQueryMixin, CachedResponseMixin, viewsets.ModelViewSet
):
    """The organisation's workstations: list, filter, search, order, create, change, delete."""

    cache_namespace = "workstations"
    cache_fast_actions = frozenset({"list", "retrieve", "summary", "history"})
    queryset = selectors.workstation_list()
    serializer_class = WorkstationSerializer
    filterset_class = WorkstationFilter
    search_fields = ["hostname", "asset_tag", "serial_number", "ip_address"]
    ordering_fields = [
        "id",
        "hostname",
        "asset_tag",
        "status",
        "department",
        "manufacturer",
        "purchase_date",
        "warranty_expires",
        "last_audit_date",
        "created_at",
        "updated_at",
    ]
    ordering = ["hostname"]

    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        """A page of workstations, read as rows (see ``rows``), cached like every read."""
        return self.cached_response(request, lambda: self._list_from_rows())

    def _list_from_rows(self) -> Response:
        if not self._renders_rows():
            queryset = self.filter_queryset(self.get_queryset())
            page = self.paginate_queryset(rows.values_queryset(queryset))
            self.cache_shows = rows.ids(page)
            return self.get_paginated_response(rows.rows_to_representation(page))

        def ids_of_the_list() -> QuerySet:
            return self.filter_queryset(self.get_queryset()).values_list("pk", flat=True)

        # The page's ids, then each row as rendered before (``_rendered_rows``). The filters
        # are built, and their values checked, only when the list's ids are read: a page of a
        # list whose ids are remembered needs neither (they were read, with these filters and
        # values, under the lists' current layout: docs/design.md, "A cached GET").
        remembered = getattr(self.paginator, "remembered_ids", None)
        if remembered is not None:  # (``pagination.RememberedIds``: the query made if asked)
            ids_query = remembered(ids_of_the_list, self.request, self)
        else:
            ids_query = ids_of_the_list()
        ids = list(self.paginate_queryset(ids_query))
        self.cache_shows = ids
        rendered = self._rendered_rows(ids)
        envelope = self.get_paginated_response([]).data
        return rows.PageOfRenderedRows(envelope, [row for row in rendered if row is not None])

    def cache_read_ahead(self) -> list[str]:
        """A list page's miss reads its list's ids first (``remembered_ids``): read with the
        page's lookup."""
        if self.action != "list":
            return []
        ahead = getattr(self.paginator, "remembered_ids_keys", None)
        return ahead(self.request, self) if ahead is not None else []

    def retrieve(self, request: Request, *args: object, **kwargs: object) -> Response:
        """A workstation: its row as a list renders it (the serializer's representation, the
        same bytes), from the rows rendered before when it is there."""
        parent = super(CachedResponseMixin, self).retrieve
        return self.cached_response(request, lambda: self._detail_from_row(parent))

    def _detail_from_row(self, parent: Callable[..., Response]) -> Response:
        # DRF's get_object when it would decide more than whether the row is there: object
        # permissions asked of the object, or a query string its filter backends read. (This
        # view's backends filter by query parameters only: without one, every row is there.)
        object_id = self.cache_object_id()
        if (
            object_id is None
            or self._asks_object_permissions()
            or self.request.META.get("QUERY_STRING")
            or not self._renders_rows()
        ):
            return parent(self.request, *self.args, **self.kwargs)
        pk = self.get_queryset().model._meta.pk
        try:
            pk.run_validators(pk.to_python(object_id))  # (the database's range of keys)
        except ValidationError:
            return parent(self.request, *self.args, **self.kwargs)  # DRF's 404
        (rendered,) = self._rendered_rows([int(object_id)])
        if rendered is None:  # no such workstation: DRF's answer (its 404)
            return parent(self.request, *self.args, **self.kwargs)
        return rows.RenderedRow(rendered)

    def _renders_rows(self) -> bool:
        """Whether this request's renderer writes a list as its rows rendered one by one."""
        request = self.request
        return rows.renders_compactly(
            request.accepted_renderer, request.accepted_media_type, self.get_renderer_context()
        )

    def _rendered_rows(self, ids: list[int]) -> list[bytes | None]:
        """Each workstation of ``ids`` as this request's renderer renders it, ``None`` for one
        that is not there: kept while the workstation and the namespace stay as they were
        (``cache.remember_objects``), so that a change renders its row again, and no other."""
        renderer = self.request.accepted_renderer
        context = self.get_renderer_context()

        def render(missing: list[int]) -> dict[int, bytes]:
            found = self._rows_by_id(missing)
            # Compactly, as the media type asks (``_renders_rows``): the rows are the same for
            # every media type that does, and are kept for all of them; without it, the
            # renderer need not read the media type again for each row.
            return {
                object_id: renderer.render(item, None, context)
                for object_id, item in zip(
                    rows.ids(found), rows.rows_to_representation(found), strict=True
                )
            }

        return cache.remember_objects(
            self.cache_namespace,
            ids,
            (
                "row",
                type(renderer).__module__,
                type(renderer).__qualname__,
                timezone.get_current_timezone_name(),
                rows.SHAPE,
            ),
            render,
            known=self.cache_generations_read(),
        )

    def _rows_by_id(self, ids: list[int]) -> list[tuple]:
        """The rows (``rows.values_queryset``'s columns) of the workstations of ``ids`` this
        view reads: through a statement compiled once for the view's own queryset, as DRF's
        ``get_queryset`` gives it (``rows.RowsById``); made by the ORM for each request where
        the view gives another."""
        view = type(self)
        if view.get_queryset is GenericAPIView.get_queryset and self.queryset is view.queryset:
            return self._class_rows_by_id()(ids)
        return list(rows.values_queryset(self.get_queryset()).filter(pk__in=ids))

    @classmethod
    @functools.cache
    def _class_rows_by_id(cls) -> rows.RowsById:
        return rows.RowsById(rows.values_queryset(cls.queryset.all()))

    # What each cached response is about (docs/design.md, "One object's change") -------------

    def cache_about(self) -> str:
        """A list page is keyed by the lists' layout and its own generation — a change of a
        workstation on it, or one that may move a workstation in any list, invalidates it; a
        change of another workstation in place does not — unless it is ordered by a field
        every save changes (``updated_at``), which any change may reorder. The summary counts
        what the lists hold: keyed by the layout."""
        if self.action == "list":
            volatile = self.volatile_fields()
            query = self.request.META.get("QUERY_STRING", "")
            if "%" not in query and not any(name in query for name in volatile):
                return ABOUT_PAGE  # (what a warm hit asks: no need to parse the query)
            ordered = OrderingFilter().ordered_by(self.request.query_params, self)
            return super().cache_about() if volatile & set(ordered) else ABOUT_PAGE
        if self.action == "summary":
            return ABOUT_LAYOUT
        return super().cache_about()

    @classmethod
    @functools.cache
    def volatile_fields(cls) -> frozenset[str]:
        """Fields every save changes (``auto_now``): no list's layout can depend on them."""
        model = cls.queryset.model
        fields = model._meta.concrete_fields
        return frozenset(f.name for f in fields if getattr(f, "auto_now", False))

    @classmethod
    def cache_layout_fields(cls) -> list[str]:
        """The fields that decide which workstations a list or a summary holds, and in which
        order: every field the filters, the search and the orderings read, but the volatile
        ones. A change of one of them may move a workstation in a list (``ObjectChange.moved``);
        of any other field, it changes the rows that show it only."""
        filters = cls.filterset_class.base_filters.values()
        fields = {f.field_name.split("__")[0] for f in filters}
        fields |= {name.lstrip("^=@$").split("__")[0] for name in cls.search_fields}
        orderings = [*cls.ordering_fields, *cls.ordering]
        fields |= {name.lstrip("-").split("__")[0] for name in orderings}
        # The summary's counts by status and by location.
        fields |= {"status", "location"}
        return sorted(fields - cls.volatile_fields() - {"id", "pk"})

    def perform_create(self, serializer: WorkstationSerializer) -> None:
        serializer.instance = services.workstation_create(
            data=serializer.validated_data, actor=self.request.user
        )

    def perform_update(self, serializer: WorkstationSerializer) -> None:
        serializer.instance = services.workstation_update(
            workstation=serializer.instance,
            data=serializer.validated_data,
            precondition=self.write_precondition(),
            actor=self.request.user,
        )

    def perform_destroy(self, instance) -> None:
        services.workstation_delete(
            workstation=instance, precondition=self.write_precondition(), actor=self.request.user
        )

    @extend_schema(
        summary="Count workstations",
        description="How many workstations there are, by status and by location, among those "
        "the same filters and search as the list select.",
        responses=WorkstationSummarySerializer,
        filters=True,
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def summary(self, request: Request) -> Response:
        """Counts by status and by location, over the same filters as the list."""
        return self.cached_response(
            request,
            lambda: Response(
                selectors.workstation_summary(queryset=self.filter_queryset(self.get_queryset()))
            ),
        )

    # Change history, check-out and check-in -----------------------------------------------

    @extend_schema(
        summary="History of a workstation",
        description="Every recorded change of this workstation, newest first: who, when, each "
        "field before and after, the note of a check-out or check-in. Answers who had the "
        "machine, and when.",
        responses=ChangeSerializer(many=True),
        filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[], serializer_class=ChangeSerializer)
    def history(self, request: Request, pk: str | None = None) -> Response:
        """One workstation's changes, a page at a time, cached like every read."""
        return self.cached_response(request, self._history)

    def _history(self) -> Response:
        workstation = self.get_object()
        page = self.paginate_queryset(selectors.workstation_history(workstation_id=workstation.pk))
        return self.get_paginated_response(ChangeSerializer(page, many=True).data)

    def _query_readers(self) -> list:
        # The history is a detail route with pages: it reads the paginator's parameters.
        if self.action == "history" and self.paginator is not None:
            return [self.paginator]
        return super()._query_readers()

    @extend_schema(
        summary="Check out a workstation",
        description="Hand it to a user: `assigned_to` gets it, its status becomes deployed, "
        "and the history records it with the `note`. The user must be active. Needs the "
        "*change workstation* permission.",
        request=CheckoutSerializer,
        responses=WorkstationSerializer,
    )
    @action(detail=True, methods=["post"], permission_classes=[ChangePermissions])
    def checkout(self, request: Request, pk: str | None = None) -> Response:
        workstation = self.get_object()  # a 404 before the body is read, as DRF's update
        body = CheckoutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        workstation = services.workstation_checkout(
            workstation=workstation,
            assigned_to=body.validated_data["assigned_to"],
            note=body.validated_data["note"],
            actor=request.user,
        )
        return Response(
            WorkstationSerializer(workstation, context=self.get_serializer_context()).data
        )

    @extend_schema(
        summary="Check in a workstation",
        description="Take it back: no assignee, status in stock, recorded in the history with "
        "the `note`. Needs the *change workstation* permission.",
        request=CheckinSerializer,
        responses=WorkstationSerializer,
    )
    @action(detail=True, methods=["post"], permission_classes=[ChangePermissions])
    def checkin(self, request: Request, pk: str | None = None) -> Response:
        workstation = self.get_object()
        body = CheckinSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        workstation = services.workstation_checkin(
            workstation=workstation, note=body.validated_data["note"], actor=request.user
        )
        return Response(
            WorkstationSerializer(workstation, context=self.get_serializer_context()).data
        )


@extend_schema_view(
    list=extend_schema(
        summary="List locations",
        description="A page of locations, each with the number of workstations there.",
    ),
    retrieve=extend_schema(summary="Get a location"),
    create=extend_schema(
        summary="Add a location", description="Needs the *add location* permission."
    ),
    update=extend_schema(
        summary="Replace a location",
        description="The body of a new location: `name` required; an optional field left out "
        "keeps its value. Needs the *change location* permission.",
    ),
    partial_update=extend_schema(
        summary="Change a location",
        description="Only the fields sent change. Needs the *change location* permission.",
    ),
    destroy=extend_schema(
        summary="Delete a location",
        description="A location that still has workstations cannot be deleted (409). Needs the "
        "*delete location* permission.",
    ),
)
class LocationViewSet(
    ConditionalWriteMixin, StrictQueryMixin, CachedResponseMixin, viewsets.ModelViewSet
):
    """Places where workstations live, each with its workstation count."""

    cache_namespace = "locations"
    queryset = selectors.location_list()
    serializer_class = LocationSerializer
    filterset_fields = ["site", "building"]
    search_fields = ["name", "site", "building", "room"]
    ordering_fields = ["id", "name", "site", "building", "workstation_count"]
    ordering = ["name"]

    def perform_create(self, serializer: LocationSerializer) -> None:
        serializer.instance = services.location_create(
            data=serializer.validated_data, actor=self.request.user
        )

    def perform_update(self, serializer: LocationSerializer) -> None:
        serializer.instance = services.location_update(
            location=serializer.instance,
            data=serializer.validated_data,
            precondition=self.write_precondition(),
            actor=self.request.user,
        )

    def perform_destroy(self, instance) -> None:
        services.location_delete(
            location=instance, precondition=self.write_precondition(), actor=self.request.user
        )
