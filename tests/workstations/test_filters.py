"""Every query-string filter of the workstation list, search, ordering, and bad values."""

from __future__ import annotations

import datetime

import django_filters
import pytest
from django import forms
from rest_framework import generics
from rest_framework.test import APIRequestFactory

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations.api.filters import FilterBackend
from workstations.api.serializers import LocationSerializer
from workstations.choices import FormFactor, Status
from workstations.models import Location

pytestmark = pytest.mark.django_db

LIST = "/api/workstations/"


@pytest.fixture
def fleet(db) -> dict:
    """Four machines that differ in every filtered field."""
    lab, office = LocationFactory(name="Lab"), LocationFactory(name="Office")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    return {
        "lab": lab,
        "office": office,
        "alice": alice,
        "bob": bob,
        "a": WorkstationFactory(
            hostname="alpha",
            asset_tag="AT-100",
            serial_number="SER-ALPHA",
            ip_address="10.0.0.1",
            status=Status.DEPLOYED,
            assigned_to=alice,
            department="Engineering",
            location=lab,
            manufacturer="Dell",
            form_factor=FormFactor.DESKTOP,
            os="Windows",
            purchase_date=datetime.date(2022, 1, 1),
            warranty_expires=datetime.date(2025, 1, 1),
        ),
        "b": WorkstationFactory(
            hostname="bravo",
            asset_tag="AT-200",
            serial_number="SER-BRAVO",
            ip_address="10.0.0.2",
            status=Status.STAGED,
            department="Finance",
            location=lab,
            manufacturer="Lenovo",
            form_factor=FormFactor.LAPTOP,
            os="Ubuntu",
            purchase_date=datetime.date(2023, 1, 1),
            warranty_expires=datetime.date(2026, 1, 1),
        ),
        "c": WorkstationFactory(
            hostname="charlie",
            asset_tag="AT-300",
            serial_number="SER-CHARLIE",
            ip_address="192.168.1.3",
            status=Status.DEPLOYED,
            assigned_to=bob,
            department="engineering",
            location=office,
            manufacturer="HP",
            form_factor=FormFactor.LAPTOP,
            os="macOS",
            purchase_date=datetime.date(2024, 1, 1),
            warranty_expires=datetime.date(2027, 1, 1),
        ),
        "d": WorkstationFactory(
            hostname="delta",
            asset_tag="AT-400",
            serial_number="",
            ip_address=None,
            status=Status.RETIRED,
            department="Finance",
            location=None,
            manufacturer="Dell",
            form_factor=FormFactor.THIN_CLIENT,
            os="Windows",
            purchase_date=datetime.date(2021, 1, 1),
            warranty_expires=datetime.date(2024, 1, 1),
        ),
    }


def hostnames(client, params) -> list[str]:
    response = client.get(LIST, params)
    assert response.status_code == 200, response.json()
    return [row["hostname"] for row in response.json()["results"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "deployed"}, ["alpha", "charlie"]),
        ({"status": ["deployed", "staged"]}, ["alpha", "bravo", "charlie"]),
        ({"status": ["retired"]}, ["delta"]),
        ({"status": ""}, ["alpha", "bravo", "charlie", "delta"]),  # empty: no filter, as all
        ({"status": ["", "retired"]}, ["delta"]),
        ({"department": "ENGINEERING"}, ["alpha", "charlie"]),
        ({"department": "finance"}, ["bravo", "delta"]),
        ({"manufacturer": "dell"}, ["alpha", "delta"]),
        ({"form_factor": "laptop"}, ["bravo", "charlie"]),
        ({"os": "windows"}, ["alpha", "delta"]),
        ({"warranty_expires_before": "2025-01-01"}, ["alpha", "delta"]),
        ({"warranty_expires_after": "2026-01-01"}, ["bravo", "charlie"]),
        ({"purchase_date_after": "2023-01-01"}, ["bravo", "charlie"]),
        ({"purchase_date_before": "2022-06-30"}, ["alpha", "delta"]),
        (
            {"purchase_date_after": "2022-01-01", "purchase_date_before": "2023-01-01"},
            ["alpha", "bravo"],
        ),
        ({"status": "deployed", "department": "engineering", "os": "macos"}, ["charlie"]),
    ],
)
def test_filter(reader_client, fleet, params, expected):
    assert hostnames(reader_client, params) == expected


def test_filter_by_location(reader_client, fleet):
    assert hostnames(reader_client, {"location": fleet["lab"].pk}) == ["alpha", "bravo"]
    assert hostnames(reader_client, {"location": fleet["office"].pk}) == ["charlie"]


def test_filter_by_assignee(reader_client, fleet):
    assert hostnames(reader_client, {"assigned_to": fleet["alice"].pk}) == ["alpha"]
    assert hostnames(reader_client, {"assigned_to": fleet["bob"].pk}) == ["charlie"]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("alph", ["alpha"]),  # hostname
        ("AT-300", ["charlie"]),  # asset tag
        ("ser-bravo", ["bravo"]),  # serial, any case
        ("192.168", ["charlie"]),  # IP address
        ("10.0.0", ["alpha", "bravo"]),
        ("nothing-matches", []),
    ],
)
def test_search(reader_client, fleet, term, expected):
    assert hostnames(reader_client, {"search": term}) == expected


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("-purchase_date", ["charlie", "bravo", "alpha", "delta"]),
        ("purchase_date", ["delta", "alpha", "bravo", "charlie"]),
        ("-hostname", ["delta", "charlie", "bravo", "alpha"]),
        ("warranty_expires", ["delta", "alpha", "bravo", "charlie"]),
        ("asset_tag", ["alpha", "bravo", "charlie", "delta"]),
        ("status,-hostname", ["charlie", "alpha", "delta", "bravo"]),
        # Repeated, as clients generated from the schema send a list.
        (["status", "-hostname"], ["charlie", "alpha", "delta", "bravo"]),
        (["-status", "hostname,"], ["bravo", "delta", "alpha", "charlie"]),
    ],
)
def test_ordering(reader_client, fleet, ordering, expected):
    assert hostnames(reader_client, {"ordering": ordering}) == expected


def test_default_ordering_is_by_hostname(reader_client, fleet):
    assert hostnames(reader_client, {}) == ["alpha", "bravo", "charlie", "delta"]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"status": ["deployed", "bogus"]},
        {"location": "999999"},
        {"location": "abc"},
        {"assigned_to": "999999"},
        {"form_factor": "x"},
        {"purchase_date_after": "notadate"},
        {"purchase_date_before": "31/12/2024"},
        {"warranty_expires_before": "notadate"},
        {"warranty_expires_after": "2024-13-01"},
    ],
)
def test_unknown_filter_value_is_400_naming_the_parameter(reader_client, fleet, params):
    response = reader_client.get(LIST, params)
    assert response.status_code == 400
    assert list(response.json()) == list(params)


def test_filters_with_locations_list(reader_client, fleet):
    LocationFactory(name="Annex", site="Branch")
    response = reader_client.get("/api/locations/", {"site": "Branch"})
    assert [row["name"] for row in response.json()["results"]] == ["Annex"]
    response = reader_client.get("/api/locations/", {"search": "off"})
    assert [row["name"] for row in response.json()["results"]] == ["Office"]
    response = reader_client.get("/api/locations/", {"ordering": "-workstation_count"})
    assert [row["name"] for row in response.json()["results"]] == ["Lab", "Office", "Annex"]


def test_location_filter_names_are_remembered_once_per_view(reader_client, fleet):
    """django-filter makes a new FilterSet class for ``filterset_fields`` on every call: the
    names it reads are remembered per view, not per class (one entry per request, before)."""
    from workstations.api import filters

    reader_client.get("/api/locations/", {"site": "Branch"})
    remembered = len(filters._PARAMS) + len(filters._NARROWED)
    for n in range(5):
        assert reader_client.get("/api/locations/", {"site": f"s{n}"}).status_code == 200
    assert len(filters._PARAMS) + len(filters._NARROWED) == remembered


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"location": "abc"}, "Enter a location id: a whole number."),
        ({"location": "1.5"}, "Enter a location id: a whole number."),
        ({"location": "999999"}, "There is no location with this id."),
        ({"assigned_to": "alice"}, "Enter a user id: a whole number."),
        ({"assigned_to": "999999"}, "There is no user with this id."),
    ],
)
def test_an_id_filter_asks_for_an_id(reader_client, fleet, params, says):
    response = reader_client.get(LIST, params)
    assert response.status_code == 400
    assert response.json() == {name: [says] for name in params}


def test_a_status_filter_reads_the_page_without_distinct(reader_client, fleet):
    """A status is a column of the row: no row can repeat, and DISTINCT cost each filtered
    page a sort of every row it selects (django-filter adds it to a multiple choice)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = reader_client.get(LIST, {"status": ["deployed", "in_stock"]})
    assert response.status_code == 200
    assert {row["status"] for row in response.json()["results"]} <= {"deployed", "in_stock"}
    assert response.json()["count"] == 2
    selects = [q["sql"] for q in queries.captured_queries if "workstations_workstation" in q["sql"]]
    assert selects and not any("DISTINCT" in sql for sql in selects)


class _RequiredFilters(django_filters.FilterSet):
    site = django_filters.CharFilter(required=True)
    name = django_filters.CharFilter()
    address = django_filters.CharFilter()
    # Unchecked, a checkbox is False, not absent: without a room unless ?roomed=on.
    roomed = django_filters.BooleanFilter(method="filter_roomed", widget=forms.CheckboxInput)

    def filter_roomed(self, queryset, name, value):
        return queryset if value else queryset.filter(room="")

    class Meta:
        model = Location
        fields: list[str] = []


class _RequiredFiltersView(generics.ListAPIView):
    queryset = Location.objects.order_by("name")
    serializer_class = LocationSerializer
    filter_backends = [FilterBackend]
    filterset_class = _RequiredFilters
    permission_classes: list = []
    authentication_classes: list = []


def _filter(params: dict) -> tuple[int, object]:
    request = APIRequestFactory().get("/locations/", params)
    response = _RequiredFiltersView.as_view()(request)
    return response.status_code, response.data


def test_a_request_builds_the_filters_it_names_and_the_required_ones(db, monkeypatch):
    """Each filter a FilterSet builds costs a deep copy and a form field; the request's
    FilterSet has those the query names and those that act when not named (a required one
    missing is still the error it was; an unchecked checkbox still filters), and filters as
    the whole FilterSet does."""
    LocationFactory(name="Lab", site="Main", room="")
    LocationFactory(name="Annex", site="Branch", room="")
    LocationFactory(name="Store", site="Main", room="B12")
    created: list[django_filters.FilterSet] = []
    monkeypatch.setattr(
        _RequiredFilters, "__init__", _recording(_RequiredFilters.__init__, created), raising=False
    )
    status, data = _filter({"site": "Main"})
    assert status == 200 and [row["name"] for row in data["results"]] == ["Lab"]
    assert list(created[-1].filters) == ["site", "roomed"]
    status, data = _filter({"site": "Main", "roomed": "on"})
    assert status == 200 and [row["name"] for row in data["results"]] == ["Lab", "Store"]
    status, data = _filter({"site": "Branch", "name": "Annex"})
    assert status == 200 and [row["name"] for row in data["results"]] == ["Annex"]
    assert list(created[-1].filters) == ["site", "name", "roomed"]
    status, data = _filter({"name": "Lab"})
    assert status == 400 and list(data) == ["site"]  # required, though not named
    assert list(created[-1].filters) == ["site", "name", "roomed"]


def _recording(init, created):
    """``init``, noting each FilterSet made."""

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        created.append(self)

    return __init__
