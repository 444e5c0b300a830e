# ruff: noqa: E501  (the catalogue below reads best as a table, one model per line)
"""Deterministic demo data: the same seed gives the same locations, people and machines.

Django does not load modules starting with an underscore as commands; ``seed_demo`` and
``bootstrap`` share this one.

Generated workstations are valid *by construction* (see ``_workstation``): a sample of each batch
still goes through ``full_clean`` so that a mistake here fails loudly, and the database's unique
and check constraints reject anything that slipped through (the whole seed rolls back).
"""

from __future__ import annotations

import datetime
import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from workstations import services
from workstations.choices import STATUSES_FORBIDDING_ASSIGNEE, FormFactor, Status
from workstations.models import Location, Workstation
from workstations.selectors import workstation_list

#: The demo's "today". Fixed, so that a seed gives identical rows whatever day it runs.
REFERENCE_DATE = datetime.date(2025, 6, 30)
BATCH_SIZE = 5_000
#: One row in this many of each batch goes through full_clean (the first one always does).
VALIDATION_SAMPLE_EVERY = 1_000
ASSET_TAG_FORMAT = "WS-{:06d}"
_ASSET_TAG_NUMBER = re.compile(r"^WS-(\d+)$")
_HOSTNAME_NUMBER = re.compile(r"^[a-z]+-[a-z]+-(\d+)$")
_SERIAL_ALPHABET = string.digits + string.ascii_uppercase


@dataclass(frozen=True)
class _Site:
    name: str
    site: str
    building: str
    room: str
    code: str  # host name prefix
    subnet: int  # second octet of the site's 10.x.0.0/16


LOCATIONS: tuple[_Site, ...] = (
    _Site("London HQ / Floor 4", "London HQ", "Aldgate Tower", "4.01", "lon", 10),
    _Site("London HQ / IT Store", "London HQ", "Aldgate Tower", "B.12", "lon", 11),
    _Site("Manchester / Floor 2", "Manchester", "Spinningfields 3", "2.10", "man", 20),
    _Site("Amsterdam / Floor 3", "Amsterdam", "Keizersgracht 123", "3.02", "ams", 30),
    _Site("Berlin / Floor 1", "Berlin", "Friedrichstrasse 68", "1.07", "ber", 40),
    _Site("New York / Floor 12", "New York", "5 Hudson Yards", "12.20", "nyc", 50),
)
_STORE = LOCATIONS[1]  # where machines nobody has wait, and where the old ones go
_OFFICES = tuple(site for site in LOCATIONS if site is not _STORE)

FIRST_NAMES = (
    "Alice", "Amir", "Anna", "Ben", "Carlos", "Chloe", "Daniel", "Elena", "Emma", "Farah",
    "George", "Hannah", "Isabel", "Jack", "James", "Julia", "Kenji", "Laura", "Liam", "Lucas",
    "Maya", "Mohammed", "Nina", "Noah", "Olivia", "Omar", "Priya", "Rachel", "Sam", "Sofia",
    "Thomas", "Yara", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Bakker", "Brown", "Chen", "Clarke", "Costa", "Davies", "Dubois", "Evans", "Fischer",
    "Garcia", "Hughes", "Jansen", "Khan", "Kowalski", "Lee", "Martin", "Meyer", "Murphy",
    "Nguyen", "Novak", "Okafor", "Patel", "Rossi", "Schmidt", "Silva", "Smith", "Taylor",
    "Walker", "Wilson",
)  # fmt: skip
DEPARTMENTS = (
    "Engineering", "Finance", "Sales", "Marketing", "Human Resources", "IT", "Legal",
    "Operations", "Customer Support", "Design",
)  # fmt: skip
USER_COUNT = 40


@dataclass(frozen=True)
class _Model:
    manufacturer: str
    name: str
    form_factor: str
    cpus: tuple[str, ...]
    ram_gb: tuple[int, ...]
    storage_gb: tuple[int, ...]
    price: int  # list price in EUR
    warranty_years: int
    weight: int  # how common it is in the fleet


_FF = FormFactor
CATALOGUE: tuple[_Model, ...] = (
    _Model("Dell", "OptiPlex 7010 Micro", _FF.DESKTOP, ("Intel Core i5-13500T", "Intel Core i7-13700T"), (8, 16, 32), (256, 512), 849, 3, 14),
    _Model("Dell", "OptiPlex 7410 All-in-One", _FF.ALL_IN_ONE, ("Intel Core i5-13500T", "Intel Core i7-13700T"), (16, 32), (512,), 1199, 3, 4),
    _Model("Dell", "Precision 3660 Tower", _FF.TOWER, ("Intel Core i7-13700", "Intel Core i9-13900K"), (32, 64, 128), (1024, 2048), 2399, 5, 3),
    _Model("Dell", "Latitude 5440", _FF.LAPTOP, ("Intel Core i5-1345U", "Intel Core i7-1365U"), (16, 32), (256, 512), 1149, 3, 12),
    _Model("Dell", "Wyse 5070", _FF.THIN_CLIENT, ("Intel Pentium Silver J5005",), (4, 8), (16, 32), 399, 3, 2),
    _Model("HP", "EliteDesk 800 G9 Mini", _FF.DESKTOP, ("Intel Core i5-12500T", "Intel Core i7-12700T"), (8, 16, 32), (256, 512), 899, 3, 8),
    _Model("HP", "EliteBook 840 G10", _FF.LAPTOP, ("Intel Core i5-1335U", "Intel Core i7-1355U"), (16, 32), (512, 1024), 1349, 3, 10),
    _Model("HP", "ProBook 450 G10", _FF.LAPTOP, ("Intel Core i5-1335U",), (8, 16), (256, 512), 899, 1, 5),
    _Model("HP", "Z2 Tower G9", _FF.TOWER, ("Intel Core i7-13700K", "Intel Core i9-13900K"), (32, 64), (1024, 2048), 2199, 3, 2),
    _Model("HP", "t640 Thin Client", _FF.THIN_CLIENT, ("AMD Ryzen R1505G",), (4, 8), (16, 32), 449, 3, 2),
    _Model("Lenovo", "ThinkCentre M70q Gen 4", _FF.DESKTOP, ("Intel Core i5-13400T", "Intel Core i7-13700T"), (8, 16, 32), (256, 512), 799, 3, 8),
    _Model("Lenovo", "ThinkPad T14 Gen 4", _FF.LAPTOP, ("Intel Core i5-1335U", "Intel Core i7-1365U", "AMD Ryzen 7 PRO 7840U"), (16, 32), (512, 1024), 1299, 3, 12),
    _Model("Lenovo", "ThinkPad X1 Carbon Gen 11", _FF.LAPTOP, ("Intel Core i7-1365U",), (16, 32), (512, 1024), 1899, 3, 5),
    _Model("Lenovo", "ThinkCentre M90a Gen 3", _FF.ALL_IN_ONE, ("Intel Core i5-12500", "Intel Core i7-12700"), (16, 32), (512,), 1249, 3, 3),
    _Model("Lenovo", "ThinkStation P360 Tower", _FF.TOWER, ("Intel Core i7-12700K", "Intel Core i9-12900K"), (32, 64, 128), (1024, 2048), 2099, 3, 2),
    _Model("Apple", 'MacBook Pro 14" (M3 Pro)', _FF.LAPTOP, ("Apple M3 Pro",), (18, 36), (512, 1024), 2399, 1, 6),
    _Model("Apple", 'MacBook Air 13" (M2)', _FF.LAPTOP, ("Apple M2",), (8, 16, 24), (256, 512), 1299, 1, 4),
    _Model("Apple", 'iMac 24" (M3)', _FF.ALL_IN_ONE, ("Apple M3",), (8, 16, 24), (256, 512), 1699, 1, 2),
    _Model("Apple", "Mac mini (M2)", _FF.DESKTOP, ("Apple M2", "Apple M2 Pro"), (8, 16, 32), (256, 512), 799, 1, 1),
)  # fmt: skip
_MODEL_WEIGHTS = tuple(model.weight for model in CATALOGUE)

# Serial numbers in each maker's shape: (prefix, random characters); the running number follows
# in 5 base-36 digits, so serials are unique by construction and never collide across makers
# (the lengths differ: 7, 10, 8 and 12 characters).
_SERIAL_SHAPES = {"Dell": ("", 2), "HP": ("5CG", 2), "Lenovo": ("PF", 1), "Apple": ("C02", 4)}
_OUIS = {"Dell": "F8:B1:56", "HP": "3C:52:82", "Lenovo": "54:E1:AD", "Apple": "A4:83:E7"}
_HOST_CODES = {
    _FF.DESKTOP: "dt",
    _FF.LAPTOP: "lt",
    _FF.ALL_IN_ONE: "aio",
    _FF.TOWER: "twr",
    _FF.THIN_CLIENT: "tc",
}

# Status distribution of a fleet in use, with the chance that a machine of that status has an
# assignee. Deployed always has one; in stock, retired and lost never do.
_STATUSES: tuple[tuple[str, int, float], ...] = (
    (Status.DEPLOYED, 640, 1.0),
    (Status.IN_STOCK, 110, 0.0),
    (Status.STAGED, 60, 0.5),
    (Status.PLANNED, 40, 0.2),
    (Status.IN_REPAIR, 40, 0.7),
    (Status.FAILED, 20, 0.4),
    (Status.RETIRED, 70, 0.0),
    (Status.LOST_STOLEN, 20, 0.0),
)
_STATUS_NAMES = tuple(status for status, _, _ in _STATUSES)
_STATUS_WEIGHTS = tuple(weight for _, weight, _ in _STATUSES)
_ASSIGNEE_CHANCE = {status: chance for status, _, chance in _STATUSES}

_WINDOWS = (("Windows", "11 23H2"), ("Windows", "11 22H2"), ("Windows", "10 22H2"))
_UBUNTU = (("Ubuntu", "22.04 LTS"), ("Ubuntu", "24.04 LTS"))
_MACOS = (("macOS", "14.5"), ("macOS", "14.6"), ("macOS", "15.0"))
_NOTES = (
    "Docking station and two monitors issued.",
    "Battery replaced under warranty.",
    "Keyboard replaced after a coffee spill.",
    "BitLocker recovery key escrowed.",
    "Loaner for visiting staff.",
    "Re-imaged after a malware alert.",
)


@dataclass
class _Person:
    user: AbstractBaseUser
    department: str
    site: _Site


@dataclass
class SeedResult:
    """What a seed run created (and reused, when appending)."""

    locations_created: int
    users_created: int
    workstations_created: int
    first_asset_tag: str | None
    last_asset_tag: str | None


def seed_demo(
    *,
    count: int,
    seed: int,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SeedResult:
    """Create demo locations, people and ``count`` workstations, all or nothing.

    Numbers continue after the highest demo asset tag or host name already stored, so a second
    run (``--append``) adds machines instead of colliding with the first.
    """
    rng = random.Random(seed)
    batch_size = batch_size or BATCH_SIZE
    with transaction.atomic():
        locations, locations_created = _ensure_locations()
        people, users_created = _ensure_people(rng)
        start = next_number()
        created = 0
        for batch in _batches(_workstations(rng, start, count, people, locations), batch_size):
            for workstation in batch[::VALIDATION_SAMPLE_EVERY]:
                workstation.full_clean()
            services.workstation_bulk_create(workstations=batch, validate=False)
            created += len(batch)
            if progress is not None:
                progress(created, count)
    return SeedResult(
        locations_created=locations_created,
        users_created=users_created,
        workstations_created=created,
        first_asset_tag=ASSET_TAG_FORMAT.format(start) if count else None,
        last_asset_tag=ASSET_TAG_FORMAT.format(start + count - 1) if count else None,
    )


def next_number() -> int:
    """The first free demo number: above every ``WS-<n>`` asset tag and ``xxx-yy-<n>`` host."""
    highest = 0
    rows = workstation_list().values_list("asset_tag", "hostname").iterator(chunk_size=5_000)
    for asset_tag, hostname in rows:
        for pattern, value in ((_ASSET_TAG_NUMBER, asset_tag), (_HOSTNAME_NUMBER, hostname)):
            match = pattern.match(value)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def _ensure_locations() -> tuple[dict[str, Location], int]:
    existing = {location.name: location for location in Location.objects.all()}
    created = 0
    for site in LOCATIONS:
        if site.name not in existing:
            existing[site.name] = services.location_create(
                data={
                    "name": site.name,
                    "site": site.site,
                    "building": site.building,
                    "room": site.room,
                }
            )
            created += 1
    return existing, created


def _ensure_people(rng: random.Random) -> tuple[list[_Person], int]:
    """``USER_COUNT`` employees named first.last, with unusable passwords (they never log in)."""
    user_model = get_user_model()
    names: dict[str, tuple[str, str]] = {}
    while len(names) < USER_COUNT:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        names.setdefault(f"{first}.{last}".lower(), (first, last))
    existing = user_model.objects.in_bulk(list(names), field_name="username")
    people, created = [], 0
    for username, (first, last) in names.items():
        user = existing.get(username)
        if user is None:
            user = user_model.objects.create_user(
                username=username,
                email=f"{username}@example.com",
                first_name=first,
                last_name=last,
            )
            created += 1
        people.append(_Person(user, rng.choice(DEPARTMENTS), rng.choice(_OFFICES)))
    return people, created


def _batches(items: Iterator[Workstation], size: int) -> Iterator[list[Workstation]]:
    batch: list[Workstation] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _workstations(
    rng: random.Random,
    start: int,
    count: int,
    people: list[_Person],
    locations: dict[str, Location],
) -> Iterator[Workstation]:
    for number in range(start, start + count):
        yield Workstation(**_workstation(rng, number, people, locations))


def _base36(number: int, width: int) -> str:
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = _SERIAL_ALPHABET[digit] + digits
    return digits.rjust(width, "0")


def _add_years(day: datetime.date, years: int) -> datetime.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _workstation(
    rng: random.Random, number: int, people: list[_Person], locations: dict[str, Location]
) -> dict[str, Any]:
    """Field values of one valid workstation; ``number`` makes every unique value unique.

    Valid by construction: asset tag, host name, serial and MAC embed ``number``; host names are
    lower-case letters, digits and hyphens; the assignee follows the status rules; the warranty
    ends after the purchase; every number is positive and within its field's limits.
    """
    model = rng.choices(CATALOGUE, weights=_MODEL_WEIGHTS)[0]
    status = rng.choices(_STATUS_NAMES, weights=_STATUS_WEIGHTS)[0]
    person = people[rng.randrange(len(people))] if rng.random() < _ASSIGNEE_CHANCE[status] else None
    if person is not None:
        site, department = person.site, person.department
    elif status in STATUSES_FORBIDDING_ASSIGNEE:
        site, department = _STORE, "IT"
    else:
        site, department = rng.choice(_OFFICES), rng.choice(DEPARTMENTS)

    if model.manufacturer == "Apple":
        os, os_version = rng.choice(_MACOS)
    elif model.form_factor == FormFactor.THIN_CLIENT:
        os, os_version = "Windows", "10 IoT Enterprise LTSC 2021"
    else:
        os, os_version = rng.choice(_UBUNTU) if rng.random() < 0.12 else rng.choice(_WINDOWS)

    prefix, random_chars = _SERIAL_SHAPES[model.manufacturer]
    serial = prefix + "".join(rng.choices(_SERIAL_ALPHABET, k=random_chars)) + _base36(number, 5)
    low = number & 0xFFFFFF
    mac = f"{_OUIS[model.manufacturer]}:{low >> 16:02X}:{(low >> 8) & 0xFF:02X}:{low & 0xFF:02X}"
    online = status in {Status.DEPLOYED, Status.STAGED, Status.IN_REPAIR}
    ip = f"10.{site.subnet}.{(number // 250) % 256}.{number % 250 + 2}" if online else None

    if status == Status.PLANNED:  # ordered, not yet delivered
        purchase_date = warranty_expires = last_audit_date = None
        cost = None
    else:
        oldest = 7 * 365 if status == Status.RETIRED else 5 * 365
        purchase_date = REFERENCE_DATE - datetime.timedelta(days=rng.randrange(14, oldest))
        warranty_expires = _add_years(purchase_date, model.warranty_years)
        audited = rng.random() < 0.8
        last_audit_date = (
            purchase_date
            + datetime.timedelta(days=rng.randrange((REFERENCE_DATE - purchase_date).days + 1))
            if audited
            else None
        )
        # 85 % to 105 % of the list price, in whole cents (no float rounding).
        cost = Decimal(model.price * rng.randrange(85, 106)) / 100

    notes = ""
    if status == Status.FAILED:
        notes = "Does not power on; RMA requested."
    elif status == Status.LOST_STOLEN:
        notes = "Reported missing; remote wipe issued."
    elif rng.random() < 0.08:
        notes = rng.choice(_NOTES)

    return {
        "asset_tag": ASSET_TAG_FORMAT.format(number),
        "hostname": f"{site.code}-{_HOST_CODES[model.form_factor]}-{number:06d}",
        "serial_number": serial,
        "manufacturer": model.manufacturer,
        "model_name": model.name,
        "form_factor": model.form_factor,
        "os": os,
        "os_version": os_version,
        "cpu": rng.choice(model.cpus),
        "ram_gb": rng.choice(model.ram_gb),
        "storage_gb": rng.choice(model.storage_gb),
        "mac_address": mac,
        "ip_address": ip,
        "status": status,
        "assigned_to": person.user if person is not None else None,
        "department": department,
        "location": locations[site.name],
        "purchase_date": purchase_date,
        "purchase_cost": cost,
        "warranty_expires": warranty_expires,
        "last_audit_date": last_audit_date,
        "notes": notes,
    }
