"""How far a request travels through the service's own code: files entered, moves between them.

    .venv/bin/python -m benchmarks.walk            # a warm GET and a PATCH, on a throwaway SQLite

Every Python call made while ``django.test.Client`` serves the request is seen through
``sys.setprofile``; only frames of the service's own packages count. A *move* is a call from one
of the service's files into another (directly, or through Django or DRF); the files are those
where at least one frame ran. The figures are deterministic for a given checkout: a measure of
the shape of the read and write paths, not of their speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("project", "workstations", "performance")


def _own(filename: str) -> str | None:
    try:
        relative = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    return str(relative) if relative.parts and relative.parts[0] in PACKAGES else None


def trace(fn) -> tuple[list[str], int, object]:
    """Run ``fn``; the service's files it entered (in order of first entry), the moves between
    them, and what ``fn`` returned."""
    files: list[str] = []
    moves = 0
    names: dict[str, str | None] = {}

    def own_of(filename: str) -> str | None:
        own = names.get(filename, "?")
        if own == "?":
            own = names[filename] = _own(filename)
        return own

    def profile(frame, event, arg):
        nonlocal moves
        if event != "call":
            return
        own = own_of(frame.f_code.co_filename)
        if own is None:
            return
        if own not in files:
            files.append(own)
        # The nearest caller in the service's own code: a call from it into another file of
        # ours is a move (Django and DRF in between do not count).
        caller = frame.f_back
        while caller is not None and own_of(caller.f_code.co_filename) is None:
            caller = caller.f_back
        if caller is not None and own_of(caller.f_code.co_filename) != own:
            moves += 1

    sys.setprofile(profile)
    try:
        result = fn()
    finally:
        sys.setprofile(None)
    return files, moves, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="list the files of each walk")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="walk-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ["VAR_DIR"] = work
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["REQUEST_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    call_command("seed_demo", count=60, verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    user = get_user_model().objects.create_user("walker", password="walk-the-walk-1")
    user.user_permissions.add(*Permission.objects.filter(codename="change_workstation"))
    token = Token.objects.create(user=user)
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_HOST="127.0.0.1")
    url = "/api/workstations/?page_size=5"
    detail = "/api/workstations/{}/".format(client.get(url).json()["results"][0]["id"])
    for _ in range(3):  # warm: entries, token lookup and any copies
        client.get(url)

    walks = {
        "warm GET": lambda: client.get(url),
        "PATCH": lambda: client.patch(
            detail, data='{"notes": "walked"}', content_type="application/json"
        ),
    }
    for title, request in walks.items():
        files, moves, response = trace(request)
        status = getattr(response, "status_code", None)
        cache = response.get("X-Cache", "-") if hasattr(response, "get") else "-"
        print(f"{title}: {len(files)} files, {moves} moves (status {status}, X-Cache {cache})")
        if args.verbose:
            for name in files:
                print(f"    {name}")


if __name__ == "__main__":
    main()
