"""django-redis's own tests (``tests/`` of its source distribution), fetched for the installed
version.

The wheel does not ship them, so the sdist of the *installed* version is fetched from the package
index with pip, once, and kept under ``VAR_DIR/django-redis-src/<version>/`` (``var/`` is
git-ignored; a second run reuses it). Their ``tests/`` is extracted as the directory
``django_redis_tests/``, so that it never shadows this project's own ``tests`` package, and without
its ``conftest.py`` and ``settings/``: ``plugin`` and ``settings`` stand in for them.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The directory the suite's ``tests/`` is extracted as.
PACKAGE = "django_redis_tests"
DOWNLOAD_TIMEOUT = 300
#: What of upstream's ``tests/`` is replaced here: the fixtures and the settings modules.
_REPLACED = {"conftest.py", "settings"}


class SuiteUnavailable(Exception):
    """django-redis's source distribution could not be obtained."""


def installed_version() -> str:
    return importlib.metadata.version("django-redis")


def source_dir(version: str | None = None) -> Path:
    var = Path(os.environ.get("VAR_DIR", ROOT / "var"))
    return var / "django-redis-src" / (version or installed_version())


def ensure_tests(version: str | None = None) -> Path:
    """The directory holding the extracted ``django_redis_tests/``, downloading on first use."""
    version = version or installed_version()
    root = source_dir(version)
    if (root / PACKAGE / "test_backend.py").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    archive = _download_sdist(version, root)
    _extract_tests(archive, root / PACKAGE)
    return root


def _download_sdist(version: str, root: Path) -> Path:
    existing = sorted(root.glob("django[-_]redis-*.tar.gz"))
    if existing:
        return existing[0]
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            f"django-redis=={version}",
            "-d",
            tmp,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SuiteUnavailable(f"pip download django-redis=={version}: {exc}") from exc
        found = sorted(Path(tmp).glob("django[-_]redis-*.tar.gz"))
        if done.returncode != 0 or not found:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise SuiteUnavailable(
                f"pip download django-redis=={version} failed: {' | '.join(tail)}"
            )
        # A rename within one directory: a concurrent run sees the whole archive or none.
        archive = root / found[0].name
        found[0].replace(archive)
    return archive


def _extract_tests(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = []
            for member in tar.getmembers():
                parts = Path(member.name).parts[1:]  # without "django_redis-7.0.0/"
                if not member.isfile() or parts[:1] != ("tests",) or len(parts) < 2:
                    continue
                if parts[1] in _REPLACED:
                    continue
                member.name = str(Path(PACKAGE, *parts[1:]))
                members.append(member)
            if not any(Path(m.name).name == "test_backend.py" for m in members):
                raise SuiteUnavailable(f"{archive.name} has no tests/test_backend.py")
            with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
                for member in members:
                    tar.extract(member, tmp, filter="data")
                if target.exists():  # a concurrent run got there first
                    return
                shutil.move(str(Path(tmp) / PACKAGE), target)
    except (tarfile.TarError, OSError) as exc:
        raise SuiteUnavailable(f"cannot extract {archive}: {exc}") from exc
