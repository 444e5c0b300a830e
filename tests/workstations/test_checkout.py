"""Check-out and check-in (API and admin), no deployment to a deactivated user, and the admin
finding machines by who has them and where they are."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations.choices import Status
from workstations.models import Workstation

pytestmark = pytest.mark.django_db

LIST = "/api/workstations/"
WS_CHANGELIST = "/admin/workstations/workstation/"


@pytest.fixture
def staff_browser(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def staff_api(staff_client) -> APIClient:
    return staff_client


@pytest.fixture
def zoe(db):
    return UserFactory(username="zoe")


# Check-out and check-in ---------------------------------------------------------------------


def test_checkout_and_checkin_answer_who_had_the_machine_and_when(editor_client, zoe):
    workstation = WorkstationFactory(status=Status.IN_STOCK)
    url = f"{LIST}{workstation.pk}/"

    out = editor_client.post(
        f"{url}checkout/", {"assigned_to": zoe.pk, "note": "new starter"}, format="json"
    )
    assert out.status_code == 200, out.json()
    assert (out.json()["status"], out.json()["assigned_to_username"]) == ("deployed", "zoe")
    back = editor_client.post(f"{url}checkin/", {"note": "left"}, format="json")
    assert back.status_code == 200, back.json()
    assert (back.json()["status"], back.json()["assigned_to"]) == ("in_stock", None)

    checkin, checkout = editor_client.get(f"{url}history/").json()["results"][:2]
    assert checkout["event"] == "checkout" and checkout["note"] == "new starter"
    assert checkout["changes"]["assigned_to"] == {"before": None, "after": "zoe"}
    assert checkout["changes"]["status"] == {"before": "in_stock", "after": "deployed"}
    assert checkin["event"] == "checkin" and checkin["note"] == "left"
    assert checkin["changes"]["assigned_to"] == {"before": "zoe", "after": None}
    assert checkin["actor"] == "editor"


def test_checking_out_again_to_the_same_user_is_recorded_with_its_note(editor_client, zoe):
    workstation = WorkstationFactory(status=Status.DEPLOYED, assigned_to=zoe)
    url = f"{LIST}{workstation.pk}/"
    response = editor_client.post(
        f"{url}checkout/", {"assigned_to": zoe.pk, "note": "extended loan"}, format="json"
    )
    assert response.status_code == 200, response.json()
    latest = editor_client.get(f"{url}history/").json()["results"][0]
    assert (latest["event"], latest["note"], latest["changes"]) == ("checkout", "extended loan", {})


def test_checkout_needs_the_change_permission(reader_client, zoe):
    workstation = WorkstationFactory(status=Status.IN_STOCK)
    response = reader_client.post(
        f"{LIST}{workstation.pk}/checkout/", {"assigned_to": zoe.pk}, format="json"
    )
    assert response.status_code == 403
    workstation.refresh_from_db()
    assert workstation.status == Status.IN_STOCK


@pytest.mark.parametrize(
    "body, field",
    [({}, "assigned_to"), ({"assigned_to": 999999}, "assigned_to"), ({"assignee": 1}, "assignee")],
)
def test_checkout_refuses_a_bad_body_naming_the_field(editor_client, body, field):
    workstation = WorkstationFactory(status=Status.IN_STOCK)
    response = editor_client.post(f"{LIST}{workstation.pk}/checkout/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


# Rules: no deployment to a deactivated user ----------------------------------------------------


@pytest.fixture
def gone(db):
    return UserFactory(username="gone", is_active=False)


def test_checkout_to_an_inactive_user_is_a_400_naming_assigned_to(editor_client, gone):
    workstation = WorkstationFactory(status=Status.IN_STOCK)
    response = editor_client.post(
        f"{LIST}{workstation.pk}/checkout/", {"assigned_to": gone.pk}, format="json"
    )
    assert response.status_code == 400
    assert "deactivated" in response.json()["assigned_to"][0]
    workstation.refresh_from_db()
    assert (workstation.status, workstation.assigned_to) == (Status.IN_STOCK, None)


def test_creating_deployed_to_an_inactive_user_is_a_400(editor_client, gone):
    response = editor_client.post(
        LIST,
        {"asset_tag": "AT-G", "hostname": "g", "status": "deployed", "assigned_to": gone.pk},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()) == ["assigned_to"]
    assert not Workstation.objects.exists()


def test_deploying_to_an_inactive_user_by_patch_is_a_400(editor_client, gone):
    workstation = WorkstationFactory(status=Status.STAGED)
    response = editor_client.patch(
        f"{LIST}{workstation.pk}/",
        {"status": "deployed", "assigned_to": gone.pk},
        format="json",
    )
    assert response.status_code == 400
    assert "assigned_to" in response.json()


def test_a_machine_deployed_before_its_user_left_can_still_be_edited(editor_client, zoe):
    workstation = WorkstationFactory(status=Status.DEPLOYED, assigned_to=zoe)
    zoe.is_active = False
    zoe.save()
    response = editor_client.patch(
        f"{LIST}{workstation.pk}/", {"notes": "to collect"}, format="json"
    )
    assert response.status_code == 200, response.json()


# The admin ----------------------------------------------------------------------------------


def test_admin_finds_machines_by_assignee_and_location(staff_browser, zoe):
    amsterdam = LocationFactory(name="Amsterdam")
    WorkstationFactory(hostname="zoes", status=Status.DEPLOYED, assigned_to=zoe)
    WorkstationFactory(hostname="in-ams", location=amsterdam)
    WorkstationFactory(hostname="other")

    def found(**params) -> list[str]:
        response = staff_browser.get(WS_CHANGELIST, params)
        assert response.status_code == 200
        return sorted(w.hostname for w in response.context["cl"].result_list)

    assert found(q="zoe") == ["zoes"]
    assert found(q="Amsterdam") == ["in-ams"]
    assert found(assigned_to__id__exact=zoe.pk) == ["zoes"]


def test_admin_checkout_asks_for_the_user_then_checks_out(staff_browser, staff_api, zoe):
    workstation = WorkstationFactory(hostname="lend-me", status=Status.IN_STOCK)
    selection = {"action": "checkout", ACTION_CHECKBOX_NAME: [workstation.pk]}

    page = staff_browser.post(WS_CHANGELIST, selection)
    assert page.status_code == 200
    assert "Check out lend-me" in page.content.decode()
    workstation.refresh_from_db()
    assert workstation.status == Status.IN_STOCK  # nothing happens before the form is sent

    done = staff_browser.post(
        WS_CHANGELIST,
        {**selection, "apply": "1", "assigned_to": zoe.pk, "note": "laptop for travel"},
        follow=True,
    )
    assert "Lend-me checked out to zoe." in done.content.decode()  # (the admin capitalises)
    workstation.refresh_from_db()
    assert (workstation.status, workstation.assigned_to) == (Status.DEPLOYED, zoe)
    (latest, *_) = staff_api.get(f"{LIST}{workstation.pk}/history/").json()["results"]
    assert (latest["actor"], latest["event"]) == ("admin", "checkout")
    assert latest["note"] == "laptop for travel"


def test_admin_checkout_offers_active_users_only(staff_browser, gone):
    workstation = WorkstationFactory(status=Status.IN_STOCK)
    response = staff_browser.post(
        WS_CHANGELIST,
        {
            "action": "checkout",
            ACTION_CHECKBOX_NAME: [workstation.pk],
            "apply": "1",
            "assigned_to": gone.pk,
        },
    )
    assert response.status_code == 200
    assert "assigned_to" in response.context["form"].errors
    workstation.refresh_from_db()
    assert workstation.status == Status.IN_STOCK


def test_admin_checkin_action(staff_browser, staff_api, zoe):
    workstation = WorkstationFactory(status=Status.DEPLOYED, assigned_to=zoe)
    response = staff_browser.post(
        WS_CHANGELIST,
        {"action": "checkin", ACTION_CHECKBOX_NAME: [workstation.pk]},
        follow=True,
    )
    assert "1 workstation(s) checked in" in response.content.decode()
    workstation.refresh_from_db()
    assert (workstation.status, workstation.assigned_to) == (Status.IN_STOCK, None)
    (latest, *_) = staff_api.get(f"{LIST}{workstation.pk}/history/").json()["results"]
    assert latest["event"] == "checkin"
