"""The Django admin for workstations and locations, as staff sees it."""

from __future__ import annotations

import datetime
import re
from unittest import mock

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import services
from workstations.choices import Status
from workstations.models import Location, Workstation

pytestmark = pytest.mark.django_db

WS_CHANGELIST = "/admin/workstations/workstation/"
WS_ADD = "/admin/workstations/workstation/add/"
LOC_CHANGELIST = "/admin/workstations/location/"
AUTOCOMPLETE = "/admin/autocomplete/"


@pytest.fixture
def staff_browser(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def form_data(**overrides) -> dict:
    """What the add/change form posts for a valid workstation."""
    return {
        "asset_tag": "AT-ADMIN",
        "hostname": "admin-host",
        "status": Status.STAGED,
        "assigned_to": "",
        "department": "",
        "manufacturer": "",
        "model_name": "",
        "form_factor": "desktop",
        "serial_number": "",
        "cpu": "",
        "ram_gb": "",
        "storage_gb": "",
        "os": "",
        "os_version": "",
        "mac_address": "",
        "ip_address": "",
        "location": "",
        "purchase_date": "",
        "purchase_cost": "",
        "warranty_expires": "",
        "last_audit_date": "",
        "notes": "",
        **overrides,
    }


# Access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/", WS_CHANGELIST, WS_ADD, LOC_CHANGELIST])
def test_anonymous_is_redirected_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_non_staff_is_redirected_to_login(client, editor):
    client.force_login(editor)
    response = client.get(WS_CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_admin_index(staff_browser):
    response = staff_browser.get("/admin/")
    assert response.status_code == 200
    assert b"Workstations" in response.content


# Pages --------------------------------------------------------------------------------------


def test_workstation_changelist_with_search_and_filters(staff_browser):
    lab = LocationFactory(name="Lab")
    WorkstationFactory(hostname="findme", location=lab, status=Status.STAGED)
    WorkstationFactory(hostname="other", location=lab, status=Status.PLANNED)

    response = staff_browser.get(WS_CHANGELIST)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 2

    response = staff_browser.get(
        WS_CHANGELIST, {"q": "findme", "status__exact": "staged", "location__id__exact": lab.pk}
    )
    assert response.status_code == 200
    assert [w.hostname for w in response.context["cl"].result_list] == ["findme"]


def test_workstation_changelist_query_count_does_not_grow(
    staff_browser, django_assert_max_num_queries
):
    lab = LocationFactory()
    for _ in range(30):
        WorkstationFactory(location=lab, status=Status.DEPLOYED, assigned_to=UserFactory())
    with django_assert_max_num_queries(15):
        assert staff_browser.get(WS_CHANGELIST).status_code == 200


def test_workstation_add_and_change_forms(staff_browser):
    workstation = WorkstationFactory()
    assert staff_browser.get(WS_ADD).status_code == 200
    response = staff_browser.get(f"{WS_CHANGELIST}{workstation.pk}/change/")
    assert response.status_code == 200
    assert workstation.hostname.encode() in response.content


def test_location_changelist_shows_workstation_count(staff_browser):
    lab = LocationFactory(name="Lab")
    WorkstationFactory.create_batch(3, location=lab)
    response = staff_browser.get(LOC_CHANGELIST)
    assert response.status_code == 200
    assert b"column-workstation_count" in response.content
    assert [(loc.name, loc.workstation_count) for loc in response.context["cl"].result_list] == [
        ("Lab", 3)
    ]
    sorted_by_count = staff_browser.get(LOC_CHANGELIST, {"o": "5"})
    assert sorted_by_count.status_code == 200


def test_location_change_form(staff_browser):
    location = LocationFactory()
    assert staff_browser.get(f"{LOC_CHANGELIST}{location.pk}/change/").status_code == 200


# Add and change through the forms ------------------------------------------------------------


def test_admin_add_saves_through_the_service_and_normalises(staff_browser):
    with mock.patch.object(services, "workstation_save", wraps=services.workstation_save) as save:
        response = staff_browser.post(
            WS_ADD, form_data(hostname="Admin-Host.", mac_address="aabbccddeeff")
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    save.assert_called_once()
    stored = Workstation.objects.get()
    assert (stored.hostname, stored.mac_address) == ("admin-host", "AA:BB:CC:DD:EE:FF")


def test_admin_add_deployed_without_assignee_is_a_form_error(staff_browser):
    response = staff_browser.post(WS_ADD, form_data(status=Status.DEPLOYED))
    assert response.status_code == 200
    assert "assigned_to" in response.context["adminform"].form.errors
    assert not Workstation.objects.exists()


@pytest.mark.parametrize("status", [Status.IN_STOCK, Status.RETIRED, Status.LOST_STOLEN])
def test_admin_add_assigned_stocked_or_gone_is_a_form_error(staff_browser, status):
    user = UserFactory()
    response = staff_browser.post(WS_ADD, form_data(status=status, assigned_to=user.pk))
    assert response.status_code == 200
    assert "assigned_to" in response.context["adminform"].form.errors
    assert not Workstation.objects.exists()


def test_admin_change_enforces_the_status_rule(staff_browser):
    workstation = WorkstationFactory(hostname="keep-me", location=None, serial_number="")
    response = staff_browser.post(
        f"{WS_CHANGELIST}{workstation.pk}/change/",
        form_data(hostname="keep-me", asset_tag=workstation.asset_tag, status=Status.DEPLOYED),
    )
    assert response.status_code == 200
    assert "assigned_to" in response.context["adminform"].form.errors
    workstation.refresh_from_db()
    assert workstation.status == Status.STAGED


def test_admin_add_hostname_case_clash_is_a_form_error(staff_browser):
    WorkstationFactory(hostname="ws-1")
    response = staff_browser.post(WS_ADD, form_data(hostname="WS-1"))
    assert response.status_code == 200
    assert "hostname" in response.context["adminform"].form.errors
    assert Workstation.objects.count() == 1


def test_admin_add_bad_mac_is_a_form_error(staff_browser):
    response = staff_browser.post(WS_ADD, form_data(mac_address="zz:zz"))
    assert response.status_code == 200
    assert "mac_address" in response.context["adminform"].form.errors
    assert not Workstation.objects.exists()


# Actions ------------------------------------------------------------------------------------


def run_action(client: Client, action: str, workstations) -> HttpResponse:
    response = client.post(
        WS_CHANGELIST,
        {"action": action, ACTION_CHECKBOX_NAME: [w.pk for w in workstations]},
        follow=True,
    )
    assert response.status_code == 200
    return response


def test_mark_in_repair_action(staff_browser):
    user = UserFactory()
    chosen = [
        WorkstationFactory(status=Status.DEPLOYED, assigned_to=user),
        WorkstationFactory(status=Status.STAGED),
    ]
    untouched = WorkstationFactory(status=Status.STAGED)
    with mock.patch.object(
        services, "workstation_bulk_set_status", wraps=services.workstation_bulk_set_status
    ) as service:
        response = run_action(staff_browser, "mark_in_repair", chosen)
    service.assert_called_once()
    assert "2 workstation(s) marked in repair." in response.content.decode()
    for workstation in chosen:
        workstation.refresh_from_db()
        assert workstation.status == Status.IN_REPAIR
    assert chosen[0].assigned_to == user  # in repair keeps its owner
    untouched.refresh_from_db()
    assert untouched.status == Status.STAGED


def test_retire_action_clears_the_assignee(staff_browser):
    chosen = [
        WorkstationFactory(status=Status.DEPLOYED, assigned_to=UserFactory()),
        WorkstationFactory(status=Status.IN_REPAIR, assigned_to=UserFactory()),
    ]
    with mock.patch.object(
        services, "workstation_bulk_set_status", wraps=services.workstation_bulk_set_status
    ) as service:
        run_action(staff_browser, "retire", chosen)
    service.assert_called_once()
    for workstation in chosen:
        workstation.refresh_from_db()
        assert (workstation.status, workstation.assigned_to) == (Status.RETIRED, None)


def test_delete_location_with_workstations_is_refused(staff_browser):
    lab = LocationFactory()
    WorkstationFactory(location=lab)
    response = staff_browser.post(f"{LOC_CHANGELIST}{lab.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200  # the "cannot delete, protected" page
    assert Location.objects.filter(pk=lab.pk).exists()


# Autocomplete -------------------------------------------------------------------------------


@pytest.mark.filterwarnings("error::django.core.paginator.UnorderedObjectListWarning")
def test_location_autocomplete(staff_browser):
    LocationFactory(name="Lab south")
    LocationFactory(name="Lab north")
    LocationFactory(name="Office")
    response = staff_browser.get(
        AUTOCOMPLETE,
        {
            "app_label": "workstations",
            "model_name": "workstation",
            "field_name": "location",
            "term": "lab",
        },
    )
    assert response.status_code == 200
    assert [item["text"] for item in response.json()["results"]] == ["Lab north", "Lab south"]


def test_assignee_autocomplete(staff_browser):
    UserFactory(username="alice")
    UserFactory(username="bob")
    response = staff_browser.get(
        AUTOCOMPLETE,
        {
            "app_label": "workstations",
            "model_name": "workstation",
            "field_name": "assigned_to",
            "term": "ali",
        },
    )
    assert response.status_code == 200
    assert [item["text"] for item in response.json()["results"]] == ["alice"]


def test_autocomplete_is_refused_to_anonymous(client):
    response = client.get(
        AUTOCOMPLETE,
        {"app_label": "workstations", "model_name": "workstation", "field_name": "location"},
    )
    assert response.status_code == 302


def test_deleting_a_user_with_a_deployed_workstation_is_refused(staff_browser):
    user = UserFactory(username="leaver")
    workstation = WorkstationFactory(status=Status.DEPLOYED, assigned_to=user)
    response = staff_browser.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200  # the "cannot delete, protected" page, not a 500
    assert workstation.hostname in response.content.decode()
    workstation.refresh_from_db()
    assert workstation.assigned_to == user


# Impossible selections and filters ------------------------------------------------------------

IMPOSSIBLE_IDS = [str(2**70), "-" + str(2**70), "abc", "1.5", ""]
IMPOSSIBLE_NAMES = ["huge", "-huge", "word", "float", "empty"]
CHANGELISTS = [WS_CHANGELIST, LOC_CHANGELIST, "/admin/auth/user/", "/admin/auth/group/"]


@pytest.mark.parametrize("changelist", CHANGELISTS)
@pytest.mark.parametrize("selected", IMPOSSIBLE_IDS, ids=IMPOSSIBLE_NAMES)
def test_an_action_on_an_impossible_id_is_a_bad_request(staff, changelist, selected):
    """Django filters with ``pk__in`` as posted: OverflowError (SQLite) or ValueError, a 500."""
    browser = Client(raise_request_exception=False)
    browser.force_login(staff)
    response = browser.post(
        changelist, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [selected]}
    )
    assert response.status_code == 400


def test_an_action_on_an_id_that_matches_nothing_acts_on_nothing(staff_browser):
    kept = WorkstationFactory(status=Status.IN_STOCK)
    response = staff_browser.post(
        WS_CHANGELIST, {"action": "retire", ACTION_CHECKBOX_NAME: [str(2**62)]}, follow=True
    )
    assert response.status_code == 200
    kept.refresh_from_db()
    assert kept.status == Status.IN_STOCK


@pytest.mark.parametrize(
    "query",
    [
        f"location__id__exact={2**70}",
        f"assigned_to__id__exact={2**70}",
        f"id={2**70}",
        f"ram_gb={2**70}",
        f"location__id__exact=-{2**70}",
    ],
)
def test_a_filter_on_an_impossible_id_is_not_a_server_error(staff, query):
    browser = Client(raise_request_exception=False)
    browser.force_login(staff)
    assert browser.get(f"{WS_CHANGELIST}?{query}").status_code in {200, 302, 400, 404}


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_an_object_page_with_an_impossible_id_is_not_a_server_error(staff, view):
    browser = Client(raise_request_exception=False)
    browser.force_login(staff)
    response = browser.get(f"{WS_CHANGELIST}{2**70}/{view}/")
    assert response.status_code in {302, 404}  # Django's "doesn't exist" message and redirect


# A change made since the form was opened -------------------------------------------------------


def opened_form(browser: Client, workstation: Workstation) -> dict:
    """The change form's fields as the page holds them when it is opened."""
    response = browser.get(f"{WS_CHANGELIST}{workstation.pk}/change/")
    assert response.status_code == 200
    form = response.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        data[name] = "" if value is None else value
    assert data["version"], "the form carries the version it was opened on"
    return data


@pytest.mark.django_db(transaction=True)
def test_the_change_form_refuses_to_save_over_a_change_made_since_it_opened(staff_browser):
    workstation = WorkstationFactory(notes="", department="Engineering")
    data = opened_form(staff_browser, workstation)
    services.workstation_update(workstation=workstation, data={"notes": "meanwhile"})

    response = staff_browser.post(
        f"{WS_CHANGELIST}{workstation.pk}/change/", {**data, "department": "Sales"}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert len(errors) == 1 and "since you opened this page: Notes." in errors[0], errors
    stored = Workstation.objects.get(pk=workstation.pk)
    assert (stored.notes, stored.department) == ("meanwhile", "Engineering")


@pytest.mark.django_db(transaction=True)
def test_the_change_form_saves_when_nothing_changed_since_it_opened(staff_browser):
    workstation = WorkstationFactory(notes="", department="Engineering")
    data = opened_form(staff_browser, workstation)
    response = staff_browser.post(
        f"{WS_CHANGELIST}{workstation.pk}/change/", {**data, "department": "Sales"}
    )
    assert response.status_code == 302
    assert Workstation.objects.get(pk=workstation.pk).department == "Sales"


@pytest.mark.django_db(transaction=True)
def test_the_location_change_form_refuses_a_stale_save_too(staff_browser):
    location = LocationFactory(name="Lab")
    response = staff_browser.get(f"{LOC_CHANGELIST}{location.pk}/change/")
    form = response.context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    services.location_update(location=location, data={"room": "7"})
    response = staff_browser.post(f"{LOC_CHANGELIST}{location.pk}/change/", {**data, "site": "X"})
    assert response.status_code == 200
    assert "Room" in response.context["adminform"].form.non_field_errors()[0]
    assert Location.objects.get(pk=location.pk).site == location.site


# The site, the changelist's columns and filters, bulk edit ---------------------------------------


def test_the_site_is_named_for_the_product_and_view_site_leads_somewhere(staff_browser):
    response = staff_browser.get("/admin/")
    page = response.content.decode()
    assert "<title>Inventory administration | Workstation Inventory</title>" in page
    assert '<a href="/admin/">Workstation Inventory</a>' in page
    assert "Django administration" not in page
    view_site = re.search(r'<a href="([^"]+)">View site</a>', page)
    assert view_site is not None
    assert staff_browser.get(view_site[1]).status_code == 200


def test_the_changelist_shows_seven_columns_with_location_and_warranty(staff_browser):
    WorkstationFactory(manufacturer="Lenovo", model_name="ThinkCentre M70q")
    response = staff_browser.get(WS_CHANGELIST)
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', response.content.decode())
    assert headers == [
        "hostname",
        "asset_tag",
        "status",
        "hardware",
        "assigned_to",
        "location",
        "warranty_expires",
    ]
    assert "Lenovo ThinkCentre M70q" in response.content.decode()


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("expired", ["ws-expired"]),
        ("30", ["ws-in-10-days", "ws-today"]),
        ("90", ["ws-in-10-days", "ws-in-60-days", "ws-today"]),
        ("none", ["ws-no-date"]),
    ],
)
def test_the_warranty_filter(staff_browser, choice, expected):
    today = timezone.localdate()
    for hostname, days in [
        ("ws-expired", -1),
        ("ws-today", 0),
        ("ws-in-10-days", 10),
        ("ws-in-60-days", 60),
        ("ws-in-120-days", 120),
    ]:
        WorkstationFactory(
            hostname=hostname,
            purchase_date=None,
            warranty_expires=today + datetime.timedelta(days=days),
        )
    WorkstationFactory(hostname="ws-no-date", warranty_expires=None)
    response = staff_browser.get(WS_CHANGELIST, {"warranty": choice})
    assert response.status_code == 200
    assert sorted(w.hostname for w in response.context["cl"].result_list) == expected


def bulk_edit(client: Client, workstations, **changes) -> HttpResponse:
    return client.post(
        WS_CHANGELIST,
        {
            "action": "bulk_edit",
            ACTION_CHECKBOX_NAME: [w.pk for w in workstations],
            "apply": "yes",
            **changes,
        },
    )


def test_bulk_edit_asks_what_to_set_then_sets_it_on_the_selection(staff_browser):
    chosen = WorkstationFactory.create_batch(3, department="Engineering")
    untouched = WorkstationFactory(department="Engineering")
    lab = LocationFactory(name="Lab 9")

    page = staff_browser.post(
        WS_CHANGELIST, {"action": "bulk_edit", ACTION_CHECKBOX_NAME: [w.pk for w in chosen]}
    )
    assert page.status_code == 200
    assert "Apply to 3 workstations" in page.content.decode()
    assert not Workstation.objects.filter(location=lab).exists()

    with mock.patch.object(
        services, "workstation_bulk_update", wraps=services.workstation_bulk_update
    ) as service:
        response = bulk_edit(
            staff_browser, chosen, location=lab.pk, department="Finance", status="in_repair"
        )
    assert response.status_code == 302
    service.assert_called_once()
    for workstation in chosen:
        workstation.refresh_from_db()
        assert (workstation.location, workstation.department, workstation.status) == (
            lab,
            "Finance",
            Status.IN_REPAIR,
        )
    untouched.refresh_from_db()
    assert untouched.department == "Engineering"


def test_bulk_edit_deploys_with_an_assignee_and_stocking_clears_it(staff_browser):
    chosen = WorkstationFactory.create_batch(2, status=Status.STAGED)
    user = UserFactory(username="zoe")
    assert bulk_edit(staff_browser, chosen, status="deployed", assigned_to=user.pk).status_code
    assert {(w.status, w.assigned_to_id) for w in Workstation.objects.all()} == {
        (Status.DEPLOYED, user.pk)
    }
    assert bulk_edit(staff_browser, chosen, status="in_stock").status_code == 302
    assert {(w.status, w.assigned_to_id) for w in Workstation.objects.all()} == {
        (Status.IN_STOCK, None)
    }


def test_bulk_edit_that_breaks_a_rule_changes_nothing_and_names_the_machines(staff_browser):
    holder = UserFactory()
    ready = WorkstationFactory(hostname="ws-ready", status=Status.DEPLOYED, assigned_to=holder)
    bare = WorkstationFactory(hostname="ws-bare", status=Status.STAGED, department="Ops")
    response = bulk_edit(staff_browser, [ready, bare], status="deployed", department="Sales")
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert "Nothing was changed" in errors[0] and "ws-bare" in errors[0], errors
    assert "ws-ready" not in " ".join(errors)
    bare.refresh_from_db()
    assert (bare.status, bare.department) == (Status.STAGED, "Ops")
    assert Workstation.objects.get(pk=ready.pk).department == ready.department


def test_bulk_edit_without_a_change_asks_for_one(staff_browser):
    chosen = WorkstationFactory.create_batch(2)
    response = bulk_edit(staff_browser, chosen)
    assert response.status_code == 200
    assert "Choose at least one change." in response.context["form"].non_field_errors()
