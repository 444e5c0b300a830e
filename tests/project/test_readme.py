"""The README's production steps, run as written: they give a working admin and the groups the
README's permissions paragraph relies on, and no demo data.

The ``manage.py`` lines of the "Production" section's shell block run in order, with the
production settings, on a fresh SQLite file (PostgreSQL and Redis are the deployment's).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from workstations.models import Workstation
admin = get_user_model().objects.get(username="admin")
print(json.dumps({
    "superuser": admin.is_superuser and admin.is_staff and admin.is_active,
    "password": admin.check_password(PASSWORD),
    "editors": sorted(Group.objects.get(name="Inventory editors").permissions.values_list(
        "codename", flat=True)),
    "workstations": Workstation.objects.count(),
}))
"""


def production_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Production\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(".venv/bin/python manage.py"):
            commands.append([sys.executable, *shlex.split(line)[1:]])
    return commands


def test_the_production_steps_give_a_working_admin_and_the_groups(tmp_path):
    commands = production_commands()
    assert [c[2] for c in commands] == ["migrate", "bootstrap", "collectstatic"]
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DEBUG"}},
        "DJANGO_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "inventory.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
    }
    outputs = []
    for command in commands:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (command, done.stderr[-2000:])
        outputs.append(done.stdout)

    password = re.search(r"Password:\s+(\S+)", "".join(outputs)).group(1)
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", CHECK.replace("PASSWORD", repr(password))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "superuser": True,
        "password": True,
        "editors": sorted(
            f"{action}_{model}"
            for action in ("add", "change", "delete", "view")
            for model in ("location", "workstation")
        ),
        "workstations": 0,
    }
