"""Make a fresh installation usable: demo data, a superuser, the staff groups. Idempotent."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.urls import reverse

from workstations.selectors import workstation_list

from ._recorded import RecordedCommand

ADMIN_USERNAME = "admin"
#: Hosts gunicorn listens on everywhere with: this machine reaches them at the loopback address.
_ANY_HOST = {"0.0.0.0", "::", "[::]", ""}
_MODELS = ("workstation", "location")
#: Staff groups decide who edits: add a user to one of these in the admin.
GROUPS: dict[str, tuple[str, ...]] = {
    "Inventory editors": tuple(
        f"{action}_{model}" for model in _MODELS for action in ("add", "change", "delete", "view")
    ),
    "Inventory readers": tuple(f"view_{model}" for model in _MODELS),
}


def ensure_groups() -> list[str]:
    """Create the staff groups that are missing; returns the names created.

    A group that exists is left as it is: its permissions are the staff's to change.
    """
    created = []
    for name, codenames in GROUPS.items():
        group, was_created = Group.objects.get_or_create(name=name)
        if not was_created:
            continue
        permissions = list(
            Permission.objects.filter(
                content_type__app_label="workstations", codename__in=codenames
            )
        )
        if len(permissions) != len(codenames):
            raise CommandError("Workstation permissions are missing: run `manage.py migrate`.")
        group.permissions.add(*permissions)
        created.append(name)
    return created


def ensure_superuser() -> str | None:
    """Create ``admin`` with a generated password unless a superuser exists.

    Returns the password when a user was created (shown once, stored only as a hash).
    """
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    if user_model.objects.filter(username=ADMIN_USERNAME).exists():
        raise CommandError(
            f"A user named {ADMIN_USERNAME!r} exists but is not a superuser; "
            "create one with `manage.py createsuperuser`."
        )
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser(username=ADMIN_USERNAME, email="", password=password)
    return password


def site_url(bind: str) -> str:
    """Where a browser on this machine finds gunicorn's ``bind`` (``settings.BIND``, read from
    the environment as project/gunicorn.conf.py reads it): ``host:port``, ``[v6]:port``, a bare
    host (gunicorn's port 8000), or a Unix socket (served through a proxy: no URL to give)."""
    if bind.startswith(("unix:", "fd://")):
        return f"(through the proxy in front of {bind})"
    host, sep, port = bind.rpartition(":")
    if not sep or host.endswith(":"):  # a bare host, or a bare IPv6 address
        host, port = bind, "8000"
    if host in _ANY_HOST:
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def login_box(password: str) -> str:
    """The one-time login notice, framed so it stands out in a server log."""
    lines = [
        "A superuser was created. This password is shown ONCE: note it now.",
        "",
        f"  URL:       {site_url(settings.BIND)}{reverse('admin:index')}",
        f"  Username:  {ADMIN_USERNAME}",
        f"  Password:  {password}",
        "",
        f"Change it with: .venv/bin/python manage.py changepassword {ADMIN_USERNAME}",
    ]
    width = max(len(line) for line in lines)
    border = "+" + "-" * (width + 2) + "+"
    return "\n".join([border, *(f"| {line.ljust(width)} |" for line in lines), border])


class Command(RecordedCommand):
    help = (
        "Prepare the database after `migrate`: demo data when there are no workstations (not "
        "with --no-demo), a superuser when there is none (its password printed once), and the "
        "staff groups 'Inventory editors' and 'Inventory readers'. Safe to run again."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-demo",
            action="store_true",
            help="Add no demo data (production): the superuser and the groups only.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        if options["no_demo"]:
            if verbosity >= 2:
                self.stdout.write("--no-demo: no demo data added.")
        elif not workstation_list().exists():
            call_command("seed_demo", stdout=self.stdout, stderr=self.stderr, verbosity=verbosity)
        elif verbosity >= 2:
            self.stdout.write("Workstations exist: no demo data added.")

        with transaction.atomic():
            password = ensure_superuser()
            groups = ensure_groups()

        if password is not None:
            # Printed whatever the verbosity: it is the only time anyone can read it.
            self.stdout.write(self.style.WARNING(login_box(password)))
        elif verbosity >= 1:
            self.stdout.write("Superuser exists.")
        if verbosity >= 1:
            for name in groups:
                self.stdout.write(f"Created group {name!r}.")
            self.stdout.write(self.style.SUCCESS("Bootstrap complete."))
