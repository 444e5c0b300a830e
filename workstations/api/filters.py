"""Query-string filters of the workstation list (django-filter)."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import EMPTY_VALUES
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from django_filters.fields import ModelChoiceField, MultipleChoiceField
from django_filters.rest_framework import DjangoFilterBackend, FilterSet
from django_filters.utils import translate_validation
from rest_framework.request import Request

from workstations.choices import FormFactor, Status
from workstations.models import Location, Workstation


class IdChoiceField(ModelChoiceField):
    """A related object chosen by its id, with messages that say so.

    Django's ``ModelChoiceField`` answers "Select a valid choice. That choice is not one of the
    available choices." to ``abc`` and to an id that does not exist alike: words for a form's
    drop-down, not for a query parameter that takes an integer.
    """

    def to_python(self, value: Any) -> Any:
        name = self.queryset.model._meta.verbose_name
        if value not in self.empty_values:
            try:
                int(value)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"Enter a {name} id: a whole number.", code="invalid"
                ) from None
        try:
            return super().to_python(value)
        except ValidationError:
            raise ValidationError(
                f"There is no {name} with this id.", code="invalid_choice"
            ) from None


class IdChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = IdChoiceField


class ChoicesField(MultipleChoiceField):
    """Several choices, an empty value ignored (``?status=`` means no filter), as every other
    filter reads ``?name=``: the schema says so of every filter (``allowEmptyValue``)."""

    def to_python(self, value: Any) -> list[str]:
        return [choice for choice in super().to_python(value) if choice != ""]


class ChoicesFilter(django_filters.MultipleChoiceFilter):
    field_class = ChoicesField


class WorkstationFilter(django_filters.FilterSet):
    # Without DISTINCT, which django-filter adds to a multiple choice for a relation that could
    # repeat a row: a column of the row itself cannot, and DISTINCT costs the ordered page a sort.
    status = ChoicesFilter(
        choices=Status.choices,
        distinct=False,
        help_text="One or more statuses: ?status=deployed&status=staged",
    )
    location = IdChoiceFilter(queryset=Location.objects.all(), help_text="A location's id.")
    assigned_to = IdChoiceFilter(
        queryset=get_user_model().objects.all(), help_text="The id of the user who has it."
    )
    department = django_filters.CharFilter(lookup_expr="iexact")
    manufacturer = django_filters.CharFilter(lookup_expr="iexact")
    os = django_filters.CharFilter(lookup_expr="iexact")
    form_factor = django_filters.ChoiceFilter(choices=FormFactor.choices)
    warranty_expires_before = django_filters.DateFilter(
        field_name="warranty_expires", lookup_expr="lte"
    )
    warranty_expires_after = django_filters.DateFilter(
        field_name="warranty_expires", lookup_expr="gte"
    )
    # Two filters rather than one DateFromToRangeFilter: a bad date is then reported under the
    # parameter the client sent (purchase_date_after), not under a name it never used.
    purchase_date_after = django_filters.DateFilter(
        field_name="purchase_date", lookup_expr="gte", help_text="On or after YYYY-MM-DD"
    )
    purchase_date_before = django_filters.DateFilter(
        field_name="purchase_date", lookup_expr="lte", help_text="On or before YYYY-MM-DD"
    )

    class Meta:
        model = Workstation
        fields = [
            "status",
            "location",
            "assigned_to",
            "department",
            "manufacturer",
            "os",
            "form_factor",
        ]


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, with only the filters the query names.

    Building a FilterSet deep-copies every filter and builds a form class with a field for each,
    on each request; a query names one or two of them. A filter the query does not name filters
    nothing — its field cleans an absent parameter to an empty value — unless it is required or
    its field gives a value of its own (a checkbox: ``False``): the request's FilterSet has the
    filters it names and those (``narrowed``), the same answer, errors included, for less. A
    list without filter parameters (the most common request) gets none. The browsable API's
    form (``to_html``) still shows every filter.
    """

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        found = self._filters(view, queryset)
        if found is None:
            return queryset
        source, filterset_class, params = found
        asked = frozenset(
            name
            for name, (names, always) in params.items()
            if always or any(key in names for key in request.query_params)
        )
        if not asked:
            return queryset
        filterset_class = filterset_class or self.get_filterset_class(view, queryset)
        filterset = narrowed(filterset_class, source, asked)(
            **self.get_filterset_kwargs(request, queryset, view)
        )
        if not filterset.is_valid() and self.raise_exception:
            raise translate_validation(filterset.errors)
        return filterset.qs

    def query_parameters(self, view: Any) -> frozenset[str]:
        """Every query parameter the view's FilterSet reads (range filters read ``name_after``
        too)."""
        found = self._filters(view, None)
        if found is None:
            return frozenset()
        return frozenset(name for names, _ in found[2].values() for name in names)

    def _filters(
        self, view: Any, queryset: QuerySet | None
    ) -> tuple[Hashable, type[FilterSet] | None, dict[str, tuple[frozenset[str], bool]]] | None:
        """Where the view's filters come from (``_source``), its FilterSet class if it had to
        be looked up, and each filter's parameters (``filter_parameters``); ``None``: no
        FilterSet. Remembered per source: a view with ``filterset_fields`` gets a new FilterSet
        class from django-filter on every call, which remembering per class would not survive."""
        source = _source(view)
        params = _PARAMS.get(source)
        if params is not None:
            return source, None, params
        filterset_class = self.get_filterset_class(
            view, view.get_queryset() if queryset is None else queryset
        )
        if filterset_class is None:
            return None
        _PARAMS[source] = params = filter_parameters(filterset_class)
        return source, filterset_class, params


def _source(view: Any) -> Hashable:
    """What decides a view's FilterSet: its class, and the FilterSet or fields it declares
    (an action may declare others than the view's)."""
    fields = getattr(view, "filterset_fields", None)
    declared = tuple(fields) if isinstance(fields, list | tuple) else fields
    return (type(view), getattr(view, "filterset_class", None), declared)


def filter_parameters(filterset_class: type[FilterSet]) -> dict[str, tuple[frozenset[str], bool]]:
    """Each filter of ``filterset_class``: the query parameters it reads, and whether it takes
    part when none of them is given (``_filters_when_absent``)."""
    params = {}
    for name, filter_ in filterset_class.base_filters.items():
        try:
            field = copy.deepcopy(filter_).field  # (the class's own filter is left unbuilt)
        except Exception:  # a field that cannot be built without a request: every time
            field = None
        widget = field.widget if field is not None else getattr(filter_.field_class, "widget", None)
        suffixes = getattr(widget, "suffixes", ()) or ()
        names = {name, *(f"{name}_{suffix}" if suffix else name for suffix in suffixes)}
        always = field is None or _filters_when_absent(field, name)
        params[name] = (frozenset(names), always)
    return params


def _filters_when_absent(field: Any, name: str) -> bool:
    """Whether a filter's ``field`` gives something to filter by, or an error, when the query
    does not name it: a required field, a checkbox (``False``), a widget with a default."""
    try:
        value = field.clean(field.widget.value_from_datadict(QueryDict(), MultiValueDict(), name))
    except Exception:  # an error (required), or not ours to judge: the whole FilterSet's way
        return True
    return value not in EMPTY_VALUES


def narrowed(
    filterset_class: type[FilterSet], source: Hashable, names: frozenset[str]
) -> type[FilterSet]:
    """``filterset_class`` with the filters ``names`` only, in their order: made once per
    source (``_source``) and set of names. A query names few of the filters, in few
    combinations; clients choose their queries all the same, so the classes kept are bounded,
    the least recently used going first."""
    key = (source, names)
    with _NARROWED_LOCK:
        made = _NARROWED.get(key)
        if made is not None:
            _NARROWED.move_to_end(key)
            return made
    made = type(filterset_class.__name__, (filterset_class,), {"__module__": __name__})
    made.base_filters = OrderedDict(
        (name, filter_) for name, filter_ in filterset_class.base_filters.items() if name in names
    )
    with _NARROWED_LOCK:
        _NARROWED[key] = made
        while len(_NARROWED) > _MAX_NARROWED:
            _NARROWED.popitem(last=False)
    return made


_PARAMS: dict[Hashable, dict[str, tuple[frozenset[str], bool]]] = {}
_NARROWED: OrderedDict[tuple[Hashable, frozenset[str]], type[FilterSet]] = OrderedDict()
_NARROWED_LOCK = threading.Lock()
_MAX_NARROWED = 256
