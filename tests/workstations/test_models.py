"""Model rules (normalisation, uniqueness, status and assignee, dates), in Python and in SQL."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from tests.factories import LocationFactory, UserFactory, WorkstationFactory
from workstations import services
from workstations.choices import Status
from workstations.models import Workstation

pytestmark = pytest.mark.django_db


def build(**fields) -> Workstation:
    """An unsaved workstation with valid defaults, ready for ``full_clean``."""
    return WorkstationFactory.build(location=None, **fields)


# Host names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("WS-0001", "ws-0001"),
        ("Ws-0001.Corp.Example.com", "ws-0001.corp.example.com"),
        ("ws-0001.corp.example.com.", "ws-0001.corp.example.com"),
        ("  ws-0001  ", "ws-0001"),
        ("a", "a"),
        ("1host", "1host"),
    ],
)
def test_hostname_is_lower_cased_and_loses_its_trailing_dot(given, stored):
    workstation = build(hostname=given)
    workstation.full_clean()
    workstation.save()
    workstation.refresh_from_db()
    assert workstation.hostname == stored


@pytest.mark.parametrize(
    "hostname",
    [
        "-leading-hyphen",
        "trailing-hyphen-",
        "under_score",
        "spa ce",
        "double..dot",
        "é-accent",
        "a" * 64,  # one label longer than 63
        ".".join(["a" * 63] * 4),  # 255 characters in all
        ".",
    ],
)
def test_hostname_that_is_not_rfc_1123_is_rejected(hostname):
    workstation = build(hostname=hostname)
    with pytest.raises(ValidationError) as excinfo:
        workstation.full_clean()
    assert "hostname" in excinfo.value.message_dict


def test_hostname_clash_differing_only_by_case_is_rejected():
    WorkstationFactory(hostname="ws-1")
    with pytest.raises(ValidationError) as excinfo:
        build(hostname="WS-1").full_clean()
    assert "hostname" in excinfo.value.message_dict


# MAC addresses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "aa:bb:cc:dd:ee:ff",
        "AA:BB:CC:DD:EE:FF",
        "aa-bb-cc-dd-ee-ff",
        "aabb.ccdd.eeff",
        "aabbccddeeff",
        " AaBbCcDdEeFf ",
    ],
)
def test_mac_address_common_spellings_are_normalised(given):
    workstation = build(mac_address=given)
    workstation.full_clean()
    workstation.save()
    workstation.refresh_from_db()
    assert workstation.mac_address == "AA:BB:CC:DD:EE:FF"


@pytest.mark.parametrize(
    "given",
    [
        "aa:bb:cc:dd:ee",
        "aa:bb:cc:dd:ee:ff:00",
        "gg:bb:cc:dd:ee:ff",
        "aa:bb-cc:dd-ee:ff",
        "aabbccddeef",
        "not a mac",
    ],
)
def test_mac_address_invalid_spelling_is_rejected(given):
    with pytest.raises(ValidationError) as excinfo:
        build(mac_address=given).full_clean()
    assert "mac_address" in excinfo.value.message_dict


def test_mac_address_may_be_blank():
    workstation = build(mac_address="")
    workstation.full_clean()
    assert workstation.mac_address == ""


# Uniqueness -------------------------------------------------------------------------------


def test_serial_number_unique_when_set():
    WorkstationFactory(serial_number="SN-1")
    with pytest.raises(ValidationError) as excinfo:
        build(serial_number="SN-1").full_clean()
    assert "serial number already exists" in str(excinfo.value)


def test_serial_number_unique_in_the_database():
    WorkstationFactory(serial_number="SN-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkstationFactory(serial_number="SN-1")


def test_two_blank_serial_numbers_are_allowed():
    WorkstationFactory(serial_number="")
    second = build(serial_number="")
    second.full_clean()
    second.save()
    assert Workstation.objects.filter(serial_number="").count() == 2


def test_asset_tag_is_unique():
    WorkstationFactory(asset_tag="AT-1")
    with pytest.raises(ValidationError) as excinfo:
        build(asset_tag="AT-1").full_clean()
    assert "asset_tag" in excinfo.value.message_dict


@pytest.mark.parametrize(
    ("field", "taken"),
    [("hostname", {"hostname": "ws-race"}), ("serial_number", {"serial_number": "SN-RACE"})],
)
def test_a_unique_value_taken_after_validation_names_the_field(field, taken):
    """Another write commits the same value between ``full_clean`` and the INSERT: the
    database refuses it, and the error still says which field, as validation would have."""
    workstation = build(asset_tag="AT-RACE", hostname="ws-race", serial_number="SN-RACE")
    validate = workstation.full_clean

    def validate_then_lose_the_race(*args, **kwargs):
        validate(*args, **kwargs)
        WorkstationFactory(asset_tag="AT-WINNER", location=None, **taken)

    workstation.full_clean = validate_then_lose_the_race
    with pytest.raises(ValidationError) as excinfo:
        services.workstation_save(workstation=workstation)
    assert list(excinfo.value.message_dict) == [field], excinfo.value
    assert not Workstation.objects.filter(asset_tag="AT-RACE").exists()


@pytest.mark.parametrize("field", ["hostname", "serial_number", "asset_tag"])
def test_the_databases_refusal_of_a_taken_value_names_the_field(field):
    """When the winner of a race is not visible to the loser's transaction, the refusal of the
    database itself (SQLite's or PostgreSQL's words) still names the field."""
    winner = WorkstationFactory(location=None)
    loser = build(asset_tag="AT-LOSER", hostname="ws-loser", serial_number="SN-LOSER")
    setattr(loser, field, getattr(winner, field))
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        loser.save()
    assert services._unique_field_in(loser, str(excinfo.value)) == field


# Status and assignee ----------------------------------------------------------------------


def test_deployed_requires_an_assignee():
    with pytest.raises(ValidationError) as excinfo:
        build(status=Status.DEPLOYED, assigned_to=None).full_clean()
    assert "assigned_to" in excinfo.value.message_dict


def test_deployed_with_an_assignee_is_valid():
    build(status=Status.DEPLOYED, assigned_to=UserFactory()).full_clean()


@pytest.mark.parametrize("status", [Status.IN_STOCK, Status.RETIRED, Status.LOST_STOLEN])
def test_stocked_or_gone_forbids_an_assignee(status):
    with pytest.raises(ValidationError) as excinfo:
        build(status=status, assigned_to=UserFactory()).full_clean()
    assert "assigned_to" in excinfo.value.message_dict


@pytest.mark.parametrize("status", [Status.PLANNED, Status.STAGED, Status.IN_REPAIR, Status.FAILED])
def test_other_statuses_allow_either(status):
    build(status=status, assigned_to=UserFactory()).full_clean()
    build(status=status, assigned_to=None).full_clean()


def test_database_rejects_deployed_without_assignee_on_raw_update():
    workstation = WorkstationFactory(status=Status.STAGED, assigned_to=None)
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        Workstation.objects.filter(pk=workstation.pk).update(status=Status.DEPLOYED)
    assert "ws_deployed_has_assignee" in str(excinfo.value)
    workstation.refresh_from_db()
    assert workstation.status == Status.STAGED


@pytest.mark.parametrize("status", [Status.IN_STOCK, Status.RETIRED, Status.LOST_STOLEN])
def test_database_rejects_assigned_stocked_or_gone_on_raw_update(status):
    workstation = WorkstationFactory(status=Status.DEPLOYED, assigned_to=UserFactory())
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        Workstation.objects.filter(pk=workstation.pk).update(status=status)
    assert "ws_unassigned_when_stocked_or_gone" in str(excinfo.value)
    workstation.refresh_from_db()
    assert workstation.status == Status.DEPLOYED


# Dates ------------------------------------------------------------------------------------


def test_warranty_before_purchase_is_rejected():
    workstation = build(
        purchase_date=datetime.date(2024, 6, 1), warranty_expires=datetime.date(2024, 5, 31)
    )
    with pytest.raises(ValidationError) as excinfo:
        workstation.full_clean()
    assert "warranty_expires" in excinfo.value.message_dict


def test_warranty_on_purchase_day_is_accepted():
    build(
        purchase_date=datetime.date(2024, 6, 1), warranty_expires=datetime.date(2024, 6, 1)
    ).full_clean()


# Services ---------------------------------------------------------------------------------


def test_service_create_validates_and_normalises():
    workstation = services.workstation_create(
        data={"asset_tag": "AT-9", "hostname": "NEW-HOST.", "mac_address": "aabbccddeeff"}
    )
    workstation.refresh_from_db()
    assert (workstation.hostname, workstation.mac_address) == ("new-host", "AA:BB:CC:DD:EE:FF")


def test_service_refuses_invalid_data_and_writes_nothing():
    with pytest.raises(ValidationError):
        services.workstation_create(
            data={"asset_tag": "AT-9", "hostname": "h", "status": Status.DEPLOYED}
        )
    assert not Workstation.objects.exists()


def test_bulk_retire_clears_the_assignee():
    workstations = WorkstationFactory.create_batch(
        2, status=Status.DEPLOYED, assigned_to=UserFactory()
    )
    count = services.workstation_bulk_set_status(
        queryset=Workstation.objects.filter(pk__in=[w.pk for w in workstations]),
        status=Status.RETIRED,
    )
    assert count == 2
    assert set(Workstation.objects.values_list("status", "assigned_to")) == {(Status.RETIRED, None)}


def test_bulk_deploy_is_refused():
    WorkstationFactory()
    with pytest.raises(ValidationError):
        services.workstation_bulk_set_status(
            queryset=Workstation.objects.all(), status=Status.DEPLOYED
        )
    assert not Workstation.objects.filter(status=Status.DEPLOYED).exists()


def test_location_str_and_workstation_str():
    location = LocationFactory(name="Lab 1")
    workstation = WorkstationFactory(hostname="lab-1", location=location)
    assert (str(location), str(workstation)) == ("Lab 1", "lab-1")


# Deleting an assignee ------------------------------------------------------------------------


def test_deleting_the_user_of_a_deployed_workstation_is_refused():
    user = UserFactory()
    workstation = WorkstationFactory(status=Status.DEPLOYED, assigned_to=user)
    with pytest.raises(ProtectedError) as excinfo:
        user.delete()
    assert set(excinfo.value.protected_objects) == {workstation}
    workstation.refresh_from_db()
    assert workstation.assigned_to == user


def test_deleting_the_user_of_other_workstations_clears_the_assignee():
    user = UserFactory()
    workstation = WorkstationFactory(status=Status.IN_REPAIR, assigned_to=user)
    user.delete()
    workstation.refresh_from_db()
    assert (workstation.status, workstation.assigned_to) == (Status.IN_REPAIR, None)
