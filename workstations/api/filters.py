"""Query-string filters of the workstation list (django-filter)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
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
    nothing (its field cleans to an empty value), unless it is required (then its absence is an
    error): those two kinds are the FilterSet the request gets (``narrowed``), the same answer,
    errors included, for less. A list without filter parameters (the most common request) gets
    none. The browsable API's form (``to_html``) still shows every filter.
    """

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        params = filter_parameters(filterset_class, type(view))
        asked = frozenset(
            name
            for name, (names, required) in params.items()
            if required or any(key in names for key in request.query_params)
        )
        if not asked:
            return queryset
        filterset = narrowed(filterset_class, type(view), asked)(
            **self.get_filterset_kwargs(request, queryset, view)
        )
        if not filterset.is_valid() and self.raise_exception:
            raise translate_validation(filterset.errors)
        return filterset.qs

    def query_parameters(self, view: Any) -> frozenset[str]:
        """Every query parameter the view's FilterSet reads (range filters read ``name_after``
        too)."""
        filterset_class = self.get_filterset_class(view, view.get_queryset())
        if filterset_class is None:
            return frozenset()
        params = filter_parameters(filterset_class, type(view)).values()
        return frozenset(name for names, _ in params for name in names)


def filter_parameters(
    filterset_class: type[FilterSet], view_class: type
) -> dict[str, tuple[frozenset[str], bool]]:
    """Each filter of ``filterset_class``: the query parameters it reads and whether it is
    required. Remembered per view class: a view with ``filterset_fields`` gets a new FilterSet
    class from django-filter on every call, so remembering per FilterSet class kept one entry
    per request."""
    try:
        return _PARAMS[view_class]
    except KeyError:
        pass
    params = {}
    for name, filter_ in filterset_class.base_filters.items():
        widget = getattr(filter_.field_class, "widget", None)
        suffixes = getattr(widget, "suffixes", ()) or ()
        names = {name, *(f"{name}_{suffix}" if suffix else name for suffix in suffixes)}
        params[name] = (frozenset(names), bool(filter_.extra.get("required")))
    _PARAMS[view_class] = params
    return params


def narrowed(
    filterset_class: type[FilterSet], view_class: type, names: frozenset[str]
) -> type[FilterSet]:
    """``filterset_class`` with the filters ``names`` only, in their order: made once per view
    class and set of names (as ``filter_parameters``; a query names few of the filters, in few
    combinations, and the number kept is bounded all the same: clients choose their queries)."""
    key = (view_class, names)
    made = _NARROWED.get(key)
    if made is None:
        if len(_NARROWED) >= _MAX_NARROWED:
            _NARROWED.clear()
        made = type(filterset_class.__name__, (filterset_class,), {"__module__": __name__})
        made.base_filters = OrderedDict(
            (name, filter_)
            for name, filter_ in filterset_class.base_filters.items()
            if name in names
        )
        _NARROWED[key] = made
    return made


_PARAMS: dict[type, dict[str, tuple[frozenset[str], bool]]] = {}
_NARROWED: dict[tuple[type, frozenset[str]], type[FilterSet]] = {}
_MAX_NARROWED = 256
