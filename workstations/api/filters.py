"""Query-string filters of the workstation list (django-filter)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django_filters.fields import ModelChoiceField, MultipleChoiceField
from django_filters.rest_framework import DjangoFilterBackend
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
    status = ChoicesFilter(
        choices=Status.choices, help_text="One or more statuses: ?status=deployed&status=staged"
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
    """django-filter's backend, skipped when the query names none of the view's filters.

    Building a FilterSet deep-copies every filter and builds a form class, on each request; a
    list without filter parameters (the most common request) has nothing for it to do.
    """

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        names = self.query_parameters(view)
        if not any(key in names for key in request.query_params):
            return queryset
        return super().filter_queryset(request, queryset, view)

    def query_parameters(self, view: Any) -> frozenset[str]:
        """Every query parameter the view's FilterSet reads (range filters read ``name_after``
        too), remembered per view class: a view with ``filterset_fields`` gets a new FilterSet
        class from django-filter on every call, so remembering per FilterSet class kept one
        entry per request."""
        try:
            return _PARAM_NAMES[type(view)]
        except KeyError:
            pass
        filterset_class = self.get_filterset_class(view, view.get_queryset())
        names = set()
        for name, filter_ in getattr(filterset_class, "base_filters", {}).items():
            names.add(name)
            widget = getattr(filter_.field_class, "widget", None)
            for suffix in getattr(widget, "suffixes", ()) or ():
                names.add(f"{name}_{suffix}" if suffix else name)
        _PARAM_NAMES[type(view)] = frozenset(names)
        return _PARAM_NAMES[type(view)]


_PARAM_NAMES: dict[type, frozenset[str]] = {}
