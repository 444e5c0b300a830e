"""Test data, in one place."""

from __future__ import annotations

import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from workstations.choices import FormFactor, Status
from workstations.models import Location, Workstation


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"HQ room {n}")
    site = "Headquarters"
    building = "Main"
    room = factory.Sequence(lambda n: f"{100 + n}")


class WorkstationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workstation

    asset_tag = factory.Sequence(lambda n: f"AT-{n:06d}")
    hostname = factory.Sequence(lambda n: f"ws-{n:05d}")
    serial_number = factory.Sequence(lambda n: f"SN{n:08d}")
    manufacturer = "Dell"
    model_name = "OptiPlex 7010"
    form_factor = FormFactor.DESKTOP
    os = "Windows"
    os_version = "11"
    cpu = "Intel Core i5-13500"
    ram_gb = 16
    storage_gb = 512
    status = Status.STAGED
    department = "Engineering"
    location = factory.SubFactory(LocationFactory)
    purchase_date = datetime.date(2024, 1, 15)
    purchase_cost = Decimal("899.00")
    warranty_expires = datetime.date(2027, 1, 15)
