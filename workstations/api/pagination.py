"""Page-number pagination whose counts are cached with the responses they belong to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.http import QueryDict
from rest_framework import filters, pagination
from rest_framework.request import Request

from performance import cache


class CachedCountPaginator(Paginator):
    """Django's paginator, with ``count`` remembered under the view's cache namespace.

    Every page of a list, and every cold request for it, needs the same ``COUNT(*)``; on a large
    table it is the most expensive query of the page. Keyed by the request that asked for the
    list but its page (``count_parts``) and invalidated like the responses, it is never stale.
    """

    def __init__(
        self,
        object_list: Any,
        per_page: int,
        *,
        namespace: str = "",
        parts: tuple | None = None,
        known: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(object_list, per_page)
        self.namespace = namespace
        self.parts = parts
        self.known = known

    @cached_property
    def count(self) -> int:
        if not self.namespace or self.parts is None:
            return super().count
        # How many rows a list holds depends on its layout only (``cache.ABOUT_LAYOUT``).
        return cache.remember(
            self.namespace,
            self.parts,
            self.object_list.count,
            internal=True,
            about=cache.ABOUT_LAYOUT,
            known=self.known,
        )


class PageNumberPagination(pagination.PageNumberPagination):
    """Page-number pagination; clients choose ``page_size`` up to a cap.

    DRF falls back to the default size for a ``page_size`` that is not a positive integer
    (``abc``, ``0``, ``-1``): a client that asked for 10 rows and misspelt it got 50. Such a
    value is a 400 naming ``page_size`` (``query_errors``, asked by ``StrictQueryMixin``); an
    empty one still means the default, and one above the cap still gives the cap, as in DRF.
    """

    page_size_query_param = "page_size"
    max_page_size = 500
    page_size_query_description = (
        f"Rows per page: a whole number from 1; at most {max_page_size} rows are given."
    )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """DRF's, with ``next`` and ``previous`` required: they are always there, null at the
        ends (the schema had clients check for their absence)."""
        paginated = super().get_paginated_response_schema(schema)
        paginated["required"] = sorted(paginated["properties"])
        return paginated

    def query_parameters(self, view: Any) -> Iterable[str]:
        return (self.page_query_param, self.page_size_query_param)

    def query_errors(self, params: QueryDict, view: Any) -> dict[str, list[str]]:
        for value in params.getlist(self.page_size_query_param):
            if value == "":
                continue
            try:
                size = int(value)  # as DRF reads it (``_positive_int``)
            except ValueError:
                size = 0
            if size <= 0:
                return {
                    self.page_size_query_param: [
                        f"A whole number of at least 1 is needed; at most {self.max_page_size} "
                        "rows are given per page."
                    ]
                }
        return {}

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        self._namespace = getattr(view, "cache_namespace", "") if view is not None else ""
        self._count_parts = self.count_parts(request, view) if self._namespace else None
        read = getattr(view, "cache_generations_read", None)
        self._known = read() if read is not None else None
        return super().paginate_queryset(queryset, request, view)

    def count_parts(self, request: Request, view: Any) -> tuple:
        """What a list's count is keyed by: the view, the path and the query — what decides
        the rows a list holds, as the response's key assumes (``keys.request_digest``) — but
        the parameters that only pick the page (this class's) or the order (an ordering
        filter's); and the user where the responses are the user's. Every page, page size and
        order of one list shares its count, and asking for it compiles no SQL."""
        own = {self.page_query_param, self.page_size_query_param}
        for backend in getattr(view, "filter_backends", ()):
            if issubclass(backend, filters.OrderingFilter):
                own.add(backend.ordering_param)
        query = sorted((name, values) for name, values in request.GET.lists() if name not in own)
        user = request.user.pk if getattr(view, "cache_per_user", False) else None
        return ("count", type(view).__module__, type(view).__qualname__, request.path, query, user)

    def django_paginator_class(self, object_list: Any, per_page: int) -> Paginator:
        return CachedCountPaginator(
            object_list,
            per_page,
            namespace=getattr(self, "_namespace", ""),
            parts=getattr(self, "_count_parts", None),
            known=getattr(self, "_known", None),
        )
