"""Django's own cache tests (``tests/cache/`` of its source distribution), made importable.

Django does not ship its test suite in the wheel, so the sdist of the *installed* version is
fetched from the package index with pip, once, and kept under ``VAR_DIR/django-src/<version>/``
(``var/`` is git-ignored). Only ``tests/cache/`` is extracted. It is imported as the package
``cache``, the name Django's own runner gives it: its settings refer to ``cache.tests.*`` by
dotted path, and pickled test values (functions, classes, ``Poll`` instances) name that module.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

from django.conf import settings
from django.test import override_settings

PACKAGE = "cache"
#: The app label of Django's cache test app (its ``Poll`` model).
APP = PACKAGE
DOWNLOAD_TIMEOUT = 300


class SuiteUnavailable(Exception):
    """Django's source distribution could not be obtained."""


def django_version() -> str:
    """The version pip installed (``django.get_version()`` may differ in spelling)."""
    return importlib.metadata.version("Django")


def source_dir(version: str | None = None) -> Path:
    return Path(settings.VAR_DIR) / "django-src" / (version or django_version())


def ensure_cache_tests(version: str | None = None) -> Path:
    """The extracted ``tests/cache/`` of Django's sdist, downloading it on first use."""
    version = version or django_version()
    root = source_dir(version)
    target = root / "tests" / PACKAGE
    if (target / "tests.py").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = _download_sdist(version, root)
    _extract_cache_tests(archive, target)
    return target


def _download_sdist(version: str, root: Path) -> Path:
    existing = sorted(root.glob("[Dd]jango-*.tar.gz"))
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
            f"Django=={version}",
            "-d",
            tmp,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SuiteUnavailable(f"pip download Django=={version}: {exc}") from exc
        found = sorted(Path(tmp).glob("[Dd]jango-*.tar.gz"))
        if done.returncode != 0 or not found:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise SuiteUnavailable(f"pip download Django=={version} failed: {' | '.join(tail)}")
        # A rename within one directory: a concurrent run sees the whole archive or none.
        archive = root / found[0].name
        found[0].replace(archive)
    return archive


def _extract_cache_tests(archive: Path, target: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.isfile() and _relative(m.name).parts[:2] == ("tests", PACKAGE)
            ]
            if not any(_relative(m.name).name == "tests.py" for m in members):
                raise SuiteUnavailable(f"{archive.name} has no tests/{PACKAGE}/tests.py")
            with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
                for member in members:
                    member.name = str(_relative(member.name))
                    tar.extract(member, tmp, filter="data")
                if target.exists():  # a concurrent run got there first
                    return
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(Path(tmp) / "tests" / PACKAGE), target)
    except (tarfile.TarError, OSError) as exc:
        raise SuiteUnavailable(f"cannot extract {archive}: {exc}") from exc


def _relative(name: str) -> Path:
    """``django-5.2.19/tests/cache/x.py`` → ``tests/cache/x.py``."""
    return Path(*Path(name).parts[1:])


def load(version: str | None = None) -> ModuleType:
    """Import Django's ``cache.tests`` (downloading the sdist if needed) and return it.

    Its ``models.py`` declares ``Poll`` without an ``app_label``, which Django accepts only while
    the app is installed: the import happens with ``cache`` in ``INSTALLED_APPS``. The model
    stays registered afterwards; the tests that use it install the app again for their run.
    """
    if f"{PACKAGE}.tests" in sys.modules:
        return sys.modules[f"{PACKAGE}.tests"]
    path = ensure_cache_tests(version)
    _register_package(path)
    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, APP]):
        return importlib.import_module(f"{PACKAGE}.tests")


def _register_package(path: Path) -> None:
    """Import the directory as the top-level package ``cache``, without touching ``sys.path``."""
    existing = sys.modules.get(PACKAGE)
    if existing is not None:
        if Path(getattr(existing, "__file__", "") or "").parent != path:
            raise SuiteUnavailable(f"a module named {PACKAGE!r} is already imported: {existing}")
        return
    if importlib.util.find_spec(PACKAGE) is not None:
        raise SuiteUnavailable(f"a module named {PACKAGE!r} is importable: it would clash")
    spec = importlib.util.spec_from_file_location(
        PACKAGE, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
