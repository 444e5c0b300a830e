"""Page-number pagination whose counts are cached with the responses they belong to."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from django.core import paginator
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils.functional import cached_property
from rest_framework import filters, pagination
from rest_framework.request import Request

from performance import cache
from performance.cache.keys import origin


class Page(paginator.Page):
    """Django's page, iterated as its list: DRF reads a page with ``list(page)``, which through
    ``Sequence`` asks ``__getitem__`` once per row, with its checks each time."""

    def __iter__(self) -> Iterator[Any]:
        if not isinstance(self.object_list, list):
            self.object_list = list(self.object_list)  # (as ``__getitem__`` does)
        return iter(self.object_list)


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

    def _get_page(self, *args: Any, **kwargs: Any) -> Page:
        return Page(*args, **kwargs)

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, RememberedIds):
            return self.object_list.count()  # (remembered with the ids, from this count)
        if not self.namespace or self.parts is None:
            return super().count
        return remembered_count(self.namespace, self.parts, self.object_list, self.known)


def remembered_count(
    namespace: str, parts: tuple, queryset: Any, known: Mapping[str, Any] | None
) -> int:
    """``queryset.count()``, remembered under ``namespace`` keyed by ``parts`` (``count_parts``):
    how many rows a list holds depends on its layout only (``cache.ABOUT_LAYOUT``)."""
    return cache.remember(
        namespace, parts, queryset.count, internal=True, about=cache.ABOUT_LAYOUT, known=known
    )


#: How many primary keys of a list are remembered together (``RememberedIds``): the first
#: window, twenty pages of fifty or forty of twenty-five, holds the pages readers ask for most;
#: a page further on is a slice of its own window, read when a page of it is first asked for.
#: A few kilobytes each.
ID_WINDOW = 1000


class RememberedIds:
    """A list's primary keys, in its order: ``queryset()`` (a flat ``values_list`` of them,
    made when first asked: a page sliced from a window needs none), read ``ID_WINDOW`` at a
    time and remembered (``remember(compute, start)``, given how to compute the window that
    starts at ``start``; ``count``, how to count the list, for one longer than a window). The
    first window is remembered with the list's count, which every page needs.

    A page within a window, of any size, is a slice of it rather than a query, and the first
    window's count comes with it: a cold page of a list whose window was read costs no SQL,
    and reads the cache once for both (twice beyond the first window, unless the page's window
    was read ahead: ``PageNumberPagination.remembered_ids_keys``). A page across two windows is
    the query's own slice, as before, and so is every page while the cache does not take calls
    (``cache.reachable``): nothing read would be remembered, and the database carries every
    request meanwhile. Django's ``Paginator`` asks only ``count()``, a slice and whether the
    list is ordered.
    """

    ordered = True

    def __init__(
        self,
        queryset: Callable[[], QuerySet],
        remember: Callable[[Callable[[], list], int], list],
        count: Callable[[], int],
    ) -> None:
        self._queryset = queryset
        self._remember = remember
        self._count = count
        self._window: list | None = None

    @cached_property
    def queryset(self) -> QuerySet:
        return self._queryset()

    def _compute(self) -> list:
        ids = list(self.queryset[:ID_WINDOW])
        return [len(ids) if len(ids) < ID_WINDOW else self._count(), ids]

    def window(self) -> list:
        """The list's count and its first ``ID_WINDOW`` primary keys (computed here when what
        the cache holds under their key is not that)."""
        if self._window is None:
            window = self._remember(self._compute, 0)
            if not _is_window(window):
                window = self._compute()
            self._window = window
        return self._window

    def _further(self, start: int) -> list:
        """The ``ID_WINDOW`` primary keys from ``start`` (fewer at the list's end)."""

        def compute() -> list:
            return list(self.queryset[start : start + ID_WINDOW])

        ids = self._remember(compute, start)
        return ids if isinstance(ids, list) else compute()

    def count(self) -> int:
        if self._window is None and not cache.reachable():
            return self._count()  # (remembered when it can be: not the window's work)
        return self.window()[0]

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice | int) -> Any:
        if (
            isinstance(index, slice)
            and index.step is None
            and (index.start or 0) >= 0
            and index.stop is not None
            and (self._window is not None or cache.reachable())
        ):
            count, ids = self.window()
            if index.stop <= len(ids) or len(ids) >= count:  # within them, or they are all
                return ids[index]
            start = _further_window(index.start or 0, index.stop)
            if start:
                return self._further(start)[index.start - start : index.stop - start]
        return self.queryset[index]


def _further_window(start: int, stop: int) -> int:
    """Where the window of ids beyond the first that holds the slice ``[start:stop]`` whole
    begins; ``0`` when none does (it is in the first window, or across two)."""
    window = start // ID_WINDOW * ID_WINDOW
    return window if window and stop <= window + ID_WINDOW else 0


def _window_parts(parts: tuple, start: int) -> tuple:
    """What the window of ids from ``start`` is keyed by: the first one as it always was."""
    return parts if not start else (*parts, "from", start)


def _is_window(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and isinstance(value[1], list)
    )


#: Links remembered (``PageNumberPagination._link``): clients choose their query strings.
_MAX_LINKS = 4096
_links: dict[tuple, str | None] = {}
_UNKNOWN = object()


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

    def get_next_link(self) -> str | None:
        return self._link("next", super().get_next_link)

    def get_previous_link(self) -> str | None:
        return self._link("previous", super().get_previous_link)

    def _link(self, which: str, link: Callable[[], str | None]) -> str | None:
        """DRF's link, remembered for the request as it came (its origin, path and raw query)
        and the page: DRF works it out from the request's absolute URL, parsed, its query
        sorted and encoded again, for every page computed — every miss of a page asked
        before, once a change in one of its rows ended it."""
        request = self.request
        memo = (
            which,
            *origin(request),
            request.path,
            request.META.get("QUERY_STRING", ""),
            self.page_query_param,
            self.page.number,
            self.page.paginator.num_pages,
        )
        known = _links.get(memo, _UNKNOWN)
        if known is _UNKNOWN:
            known = link()
            if len(_links) >= _MAX_LINKS:
                _links.clear()
            _links[memo] = known
        return known

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
        ordering = {
            backend.ordering_param
            for backend in getattr(view, "filter_backends", ())
            if issubclass(backend, filters.OrderingFilter)
        }
        return ("count", *self._list_parts(request, view, without=ordering))

    def remembered_ids(self, queryset: Callable[[], QuerySet], request: Request, view: Any) -> Any:
        """``queryset()`` — a list's primary keys, in its order (a flat ``values_list``) — with
        the first ``ID_WINDOW`` of them remembered, for a view whose responses are cached
        (``RememberedIds``: made only if they are read); ``queryset()`` itself for another.
        Keyed like the count, order
        included, for a list whose pages are invalidated by their own objects and the lists'
        layout (``ABOUT_PAGE``): its ids only the layout moves.
        While the cache does not take calls, each page reads its own slice and the count."""
        parts = self._ids_parts(request, view)
        if parts is None:
            return queryset()
        namespace = view.cache_namespace
        read = getattr(view, "cache_generations_read", None)
        known = read() if read is not None else None

        def remember(compute: Callable[[], list], start: int) -> list:
            return cache.remember(
                namespace,
                _window_parts(parts, start),
                compute,
                internal=True,
                about=cache.ABOUT_LAYOUT,
                known=known,
            )

        def count() -> int:
            return remembered_count(namespace, self.count_parts(request, view), ids.queryset, known)

        ids = RememberedIds(queryset, remember, count)
        return ids

    def remembered_ids_keys(self, request: Request, view: Any) -> list[str]:
        """Where ``remembered_ids`` keeps the ids this page is sliced from (the first window,
        which has the count, and the page's own when it is further on), from the generations
        the view read already (``cache_generations_read``); none when it keeps none, or one of
        those generations was not read: for the view to read them ahead (``cache_read_ahead``).
        """
        parts = self._ids_parts(request, view)
        read = getattr(view, "cache_generations_read", None)
        if parts is None or read is None:
            return []
        starts = [0]
        size = self.get_page_size(request)
        try:  # (a page DRF refuses, or "last": the first window only)
            first = (int(request.query_params.get(self.page_query_param) or 1) - 1) * size
        except (TypeError, ValueError):
            first = 0
        further = _further_window(max(first, 0), first + size)
        if further:
            starts.append(further)
        known = read()
        keys = [
            cache.remembered_key(
                view.cache_namespace,
                _window_parts(parts, start),
                internal=True,
                about=cache.ABOUT_LAYOUT,
                known=known,
            )
            for start in starts
        ]
        return [key for key in keys if key is not None]

    def _ids_parts(self, request: Request, view: Any) -> tuple | None:
        """What ``remembered_ids`` keys a list's ids by; ``None`` for a list whose ids it
        does not remember. Worked out once per request (the one ``HttpRequest`` both DRF
        requests of a miss wrap): a miss asks for it when its early read reads the ids ahead
        (``remembered_ids_keys``) and again when DRF's path reads them."""
        asked = getattr(request, "_request", request)  # (the early read's DRF request or DRF's)
        memo = self.__dict__.get("_ids_parts_of")
        if memo is not None and memo[0] is asked and memo[1] is view:
            return memo[2]
        parts = self._ids_parts_now(request, view)
        self._ids_parts_of = (asked, view, parts)
        return parts

    def _ids_parts_now(self, request: Request, view: Any) -> tuple | None:
        namespace = getattr(view, "cache_namespace", "")
        about = getattr(view, "cache_about", None)
        if not namespace or about is None:
            return None
        # As the page's own scope (``CachedResponseMixin._scopes``): a page of a user's own
        # list, or of a list ordered by a field every save changes, is about every change —
        # which would end its ids as often as pages are asked for: they are not remembered.
        if about() != cache.ABOUT_PAGE or getattr(view, "cache_per_user", False):
            return None
        # The window's size, and how ties are ordered (in the order's direction), in the key:
        # two versions of the service never share windows.
        return ("ids", ID_WINDOW, "ties", *self._list_parts(request, view, without=()))

    def _list_parts(self, request: Request, view: Any, *, without: Iterable[str]) -> tuple:
        own = {self.page_query_param, self.page_size_query_param, *without}
        query = sorted((name, values) for name, values in request.GET.lists() if name not in own)
        user = request.user.pk if getattr(view, "cache_per_user", False) else None
        return (type(view).__module__, type(view).__qualname__, request.path, query, user)

    def django_paginator_class(self, object_list: Any, per_page: int) -> Paginator:
        return CachedCountPaginator(
            object_list,
            per_page,
            namespace=getattr(self, "_namespace", ""),
            parts=getattr(self, "_count_parts", None),
            known=getattr(self, "_known", None),
        )
