"""Query-string filters of the workstation list (django-filter)."""

from __future__ import annotations

import django_filters
from django.contrib.auth import get_user_model

from workstations.choices import FormFactor, Status
from workstations.models import Location, Workstation


class WorkstationFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=Status.choices, help_text="One or more statuses: ?status=deployed&status=staged"
    )
    location = django_filters.ModelChoiceFilter(queryset=Location.objects.all())
    assigned_to = django_filters.ModelChoiceFilter(queryset=get_user_model().objects.all())
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
