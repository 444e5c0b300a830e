"""A client generated from the served schema, used as generated against a live server.

API consumers do not write HTTP calls by hand: they generate a client from ``/api/schema/``.
Here openapi-python-client (pinned in the dev dependencies) generates one into a temporary folder
from the schema a real gunicorn serves (a migrated SQLite site, tests/performance/servers.py);
every module of it is imported, and its functions, unedited, call every operation of the API:
a token, the lists with each filter, paging, create, update, conditional reads (304, 412),
delete, the error models, the staff figures. Its clients raise on any status the schema does not
document (``raise_on_unexpected_status``), so an undocumented answer fails the test.
"""

from __future__ import annotations

import datetime
import importlib
import json
import pkgutil
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.performance.servers import GUNICORN, Gunicorn, migrated_site, site_env

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "inventory_client"
PASSWORD = "unused-password"  # the seeded superuser's (tests/performance/servers.py: SEED)

pytestmark = pytest.mark.skipif(
    not GENERATOR.exists() or not GUNICORN.exists(),
    reason="openapi-python-client and gunicorn come with the dev dependencies (make test)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A live server on a migrated SQLite site with a superuser and three workstations."""
    work = tmp_path_factory.mktemp("generated-client-site")
    seeded = migrated_site(work, count=3)
    env = site_env(seeded["database"], work / "var", REQUEST_LOG_LEVEL="WARNING")
    server = Gunicorn("generated-client", env, work)
    try:
        server.wait_until_ready(time.monotonic() + 60)
        with sqlite3.connect(seeded["database"]) as db:
            (root_id,) = db.execute("SELECT id FROM auth_user WHERE username = 'root'").fetchone()
        yield {**seeded, "server": server, "root_id": root_id}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def generated(site, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The client package generated from the schema the server serves, imported whole."""
    status, _, schema = site["server"].request("GET", "/api/schema/?format=json")
    assert status == 200, schema
    work = tmp_path_factory.mktemp("generated-client")
    (work / "schema.json").write_text(json.dumps(schema))
    # No post hooks: they run ruff over the output, which says nothing about the schema.
    (work / "config.yml").write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    done = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(work / "schema.json"),
            "--output-path",
            str(work / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(work / "config.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output and "Error" not in output, output  # nothing skipped
    sys.path.insert(0, str(work))
    try:
        package = importlib.import_module(PACKAGE)
        modules = {
            info.name: importlib.import_module(info.name)
            for info in pkgutil.walk_packages(package.__path__, f"{PACKAGE}.")
        }
        yield {"schema": schema, "path": work / PACKAGE, "modules": modules}
    finally:
        sys.path.remove(str(work))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        shutil.rmtree(work, ignore_errors=True)


class Api:
    """The generated package's operations and models by short name; records which operations
    the test called."""

    def __init__(self, modules: dict[str, ModuleType]) -> None:
        self.modules = modules
        self.called: set[str] = set()

    def op(self, name: str) -> ModuleType:
        (module,) = [m for n, m in self.modules.items() if n.endswith(f".api.{name}")]
        self.called.add(name)
        return module

    def operations(self) -> set[str]:
        return {n.split(".api.", 1)[1] for n in self.modules if n.count(".") == 3 and ".api." in n}

    def __getattr__(self, name: str) -> Any:
        """A model class (``api.Workstation``) or the package's ``Client``, ``AuthenticatedClient``,
        ``UNSET``."""
        for module_name in (f"{PACKAGE}.models", PACKAGE, f"{PACKAGE}.types"):
            found = getattr(self.modules.get(module_name) or sys.modules[module_name], name, None)
            if found is not None:
                return found
        raise AttributeError(name)


@pytest.fixture(scope="module")
def api(generated) -> Api:
    return Api(generated["modules"])


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_module_imports_and_every_model_is_a_component(generated):
    """Before: 5 operation modules failed to import, and 122 model files came out, most of them
    one error class per operation and status code."""
    models = sorted(
        path.stem for path in (generated["path"] / "models").glob("*.py") if path.stem != "__init__"
    )
    components = [snake(name) for name in generated["schema"]["components"]["schemas"]]
    for model in models:
        # A component, or an object nested in one (CacheStats.namespaces: CacheStatsNamespaces).
        assert any(model == c or model.startswith(f"{c}_") for c in components), model
    # (The change history added 7: Change and its changes' two nested objects, its page, the
    # check-out and check-in bodies, ObjectTypeEnum.)
    assert len(models) < 45, models
    assert len(generated["modules"]) > len(models)


def test_the_generated_client_works_as_generated(site, api):
    server = site["server"]
    base_url = f"http://127.0.0.1:{server.port}"

    # A token, for a username and password; no token needed to get one.
    anonymous = api.Client(base_url=base_url, raise_on_unexpected_status=True)
    answer = api.op("auth.auth_token_create").sync_detailed(
        client=anonymous, body=api.AuthTokenRequest(username="root", password=PASSWORD)
    )
    assert answer.status_code == 200
    assert answer.parsed.token == site["token"]
    wrong = api.op("auth.auth_token_create").sync(
        client=anonymous, body=api.AuthTokenRequest(username="root", password="not-it")
    )
    assert isinstance(wrong, api.ValidationError)
    assert "non_field_errors" in wrong.additional_properties

    # The generated authenticated client sends "Authorization: Bearer <token>".
    client = api.AuthenticatedClient(
        base_url=base_url, token=answer.parsed.token, raise_on_unexpected_status=True
    )
    refused = api.op("workstations.workstations_list").sync(
        client=api.AuthenticatedClient(
            base_url=base_url, token="not-a-token", raise_on_unexpected_status=True
        )
    )
    assert isinstance(refused, api.Error)
    assert refused.detail == "Invalid token."

    # Create: a location, then workstations in it.
    lab = api.op("locations.locations_create").sync(
        client=client, body=api.LocationRequest(name="Lab", site="HQ", building="B1")
    )
    assert isinstance(lab, api.Location)
    assert (lab.name, lab.workstation_count) == ("Lab", 0)
    made = []
    for n, (status, form_factor, department) in enumerate(
        [
            (api.StatusEnum.DEPLOYED, api.FormFactorEnum.LAPTOP, "Finance"),
            (api.StatusEnum.IN_STOCK, api.FormFactorEnum.THIN_CLIENT, "Engineering"),
        ]
    ):
        body = api.WorkstationRequest(
            asset_tag=f"GC-{n}",
            hostname=f"GC-Host-{n}",
            status=status,
            form_factor=form_factor,
            department=department,
            manufacturer="Dell" if n == 0 else "HP",
            os="Ubuntu" if n == 0 else "Windows",
            location=lab.id,
            assigned_to=site["root_id"] if status == api.StatusEnum.DEPLOYED else None,
            purchase_date=datetime.date(2023, 1, 1 + n),
            warranty_expires=datetime.date(2026, 1, 1 + n),
            ip_address=f"10.9.0.{n + 1}",
            ram_gb=16,
        )
        workstation = api.op("workstations.workstations_create").sync(client=client, body=body)
        assert isinstance(workstation, api.Workstation), workstation
        assert workstation.hostname == f"gc-host-{n}"  # stored lower-case
        assert workstation.location_name == "Lab"
        made.append(workstation)
    first, second = made
    assert first.assigned_to_username == "root"
    assert second.assigned_to is None  # null, not absent: every field is always there

    # List with each filter, search and ordering.
    listing = api.op("workstations.workstations_list")

    def hostnames(**query: Any) -> list[str]:
        page = listing.sync(client=client, **query)
        assert isinstance(page, api.PaginatedWorkstationList), page
        return [row.hostname for row in page.results]

    both, one, two = ["gc-host-0", "gc-host-1"], ["gc-host-0"], ["gc-host-1"]
    assert hostnames(location=lab.id) == both
    assert hostnames(status=[api.StatusEnum.DEPLOYED]) == one
    assert hostnames(status=[api.StatusEnum.DEPLOYED, api.StatusEnum.IN_STOCK]) == both
    assert hostnames(assigned_to=site["root_id"]) == one
    assert hostnames(department="finance") == one
    assert hostnames(manufacturer="hp") == two
    assert hostnames(os="windows") == two
    assert hostnames(form_factor=api.FormFactorEnum.THIN_CLIENT) == two
    assert hostnames(purchase_date_after=datetime.date(2023, 1, 2)) == two
    assert hostnames(purchase_date_before=datetime.date(2023, 1, 1)) == one
    assert hostnames(warranty_expires_after=datetime.date(2026, 1, 2)) == two
    assert hostnames(warranty_expires_before=datetime.date(2026, 1, 1)) == one
    assert hostnames(search="10.9.0") == both
    descending = [api.WorkstationOrderingEnum("-hostname")]
    assert hostnames(location=lab.id, ordering=descending) == ["gc-host-1", "gc-host-0"]
    by_status = [api.WorkstationOrderingEnum("status"), api.WorkstationOrderingEnum("-hostname")]
    assert hostnames(location=lab.id, ordering=by_status) == ["gc-host-0", "gc-host-1"]

    # Paging: five workstations (three seeded), two per page.
    pages = [listing.sync(client=client, page_size=2, page=n) for n in (1, 2, 3)]
    assert [page.count for page in pages] == [5, 5, 5]
    assert [len(page.results) for page in pages] == [2, 2, 1]
    assert pages[0].previous is None and pages[0].next_.endswith("page=2&page_size=2")
    assert pages[2].next_ is None
    bad_size = listing.sync(client=client, page_size=0)
    assert isinstance(bad_size, api.ValidationError)
    assert list(bad_size.additional_properties) == ["page_size"]
    beyond = listing.sync(client=client, page=9)
    assert isinstance(beyond, api.Error)

    # The summary, over the same filters.
    summary = api.op("workstations.workstations_summary_retrieve").sync(
        client=client, location=lab.id
    )
    assert isinstance(summary, api.WorkstationSummary)
    assert summary.total == 2
    assert summary.by_status.additional_properties["deployed"] == 1
    assert [(row.location, row.count) for row in summary.by_location] == [("Lab", 2)]

    # Conditional reads: 304 while the ETag is current, 412 when If-Match is not.
    retrieve = api.op("workstations.workstations_retrieve")
    fresh = retrieve.sync_detailed(id=first.id, client=client)
    assert fresh.status_code == 200 and fresh.parsed.id == first.id
    etag = fresh.headers["etag"]
    not_modified = retrieve.sync_detailed(id=first.id, client=client, if_none_match=etag)
    assert (not_modified.status_code, not_modified.parsed) == (304, None)
    assert not_modified.headers["etag"] == etag
    failed = retrieve.sync_detailed(id=first.id, client=client, if_match='"not-the-tag"')
    assert failed.status_code == 412
    first_page = listing.sync_detailed(client=client, location=lab.id)
    again = listing.sync_detailed(
        client=client, location=lab.id, if_none_match=first_page.headers["etag"]
    )
    assert again.status_code == 304

    # Update: a change (PATCH), and a whole replacement (PUT); the next read shows it.
    changed = api.op("workstations.workstations_partial_update").sync(
        id=second.id, client=client, body=api.PatchedWorkstationRequest(notes="checked")
    )
    assert isinstance(changed, api.Workstation) and changed.notes == "checked"
    assert (
        retrieve.sync_detailed(id=second.id, client=client, if_none_match=etag).status_code == 200
    )
    replaced = api.op("workstations.workstations_update").sync(
        id=second.id,
        client=client,
        body=api.WorkstationRequest(
            asset_tag="GC-1", hostname="gc-host-1", status=api.StatusEnum.RETIRED, location=None
        ),
    )
    assert isinstance(replaced, api.Workstation)
    assert (replaced.status, replaced.location) == (api.StatusEnum.RETIRED, None)
    assert retrieve.sync(id=second.id, client=client).status == api.StatusEnum.RETIRED

    # A 400 model: a taken asset tag, named.
    taken = api.op("workstations.workstations_create").sync(
        client=client, body=api.WorkstationRequest(asset_tag="GC-0", hostname="gc-other")
    )
    assert isinstance(taken, api.ValidationError)
    assert "asset_tag" in taken.additional_properties

    # Check out and check in: the history answers who had it, and when.
    lent = api.op("workstations.workstations_checkout_create").sync(
        id=second.id,
        client=client,
        body=api.CheckoutRequest(assigned_to=site["root_id"], note="loan"),
    )
    assert isinstance(lent, api.Workstation), lent
    assert (lent.status, lent.assigned_to_username) == (api.StatusEnum.DEPLOYED, "root")
    back = api.op("workstations.workstations_checkin_create").sync(
        id=second.id, client=client, body=api.CheckinRequest(note="back")
    )
    assert (back.status, back.assigned_to) == (api.StatusEnum.IN_STOCK, None)
    history = api.op("workstations.workstations_history_list").sync(
        id=second.id, client=client, page_size=2
    )
    assert isinstance(history, api.PaginatedChangeList), history
    assert [(c.event, c.note, c.actor) for c in history.results] == [
        ("checkin", "back", "root"),
        ("checkout", "loan", "root"),
    ]
    assigned = history.results[1].changes.additional_properties["assigned_to"]
    assert (assigned.before, assigned.after) == (None, "root")
    changes = api.op("changes.changes_list").sync(
        client=client, object_type=api.ObjectTypeEnum.WORKSTATION, object_id=second.id
    )
    assert isinstance(changes, api.PaginatedChangeList)
    assert changes.count == 5  # created, changed, replaced, checked out, checked in

    # Locations: read, change, replace; a location still in use is a 409.
    locations = api.op("locations.locations_list").sync(
        client=client, ordering=[api.LocationOrderingEnum("-workstation_count")]
    )
    assert locations.results[0].name == "Lab"
    assert api.op("locations.locations_retrieve").sync(id=lab.id, client=client).site == "HQ"
    renamed = api.op("locations.locations_partial_update").sync(
        id=lab.id, client=client, body=api.PatchedLocationRequest(room="101")
    )
    assert renamed.room == "101"
    replaced_lab = api.op("locations.locations_update").sync(
        id=lab.id, client=client, body=api.LocationRequest(name="Lab 1")
    )
    assert (replaced_lab.name, replaced_lab.room) == ("Lab 1", "101")  # PUT: unsent kept
    in_use = api.op("locations.locations_destroy").sync_detailed(id=lab.id, client=client)
    assert in_use.status_code == 409
    assert isinstance(in_use.parsed, api.Conflict)
    assert in_use.parsed.referred_to_by == ["gc-host-0"]

    # Delete.
    destroy = api.op("workstations.workstations_destroy")
    assert destroy.sync_detailed(id=first.id, client=client).status_code == 204
    gone = retrieve.sync_detailed(id=first.id, client=client)
    assert (gone.status_code, type(gone.parsed)) == (404, api.Error)
    assert destroy.sync_detailed(id=second.id, client=client).status_code == 204
    assert api.op("locations.locations_destroy").sync_detailed(
        id=lab.id, client=client
    ).status_code == (204)

    # The staff figures, typed.
    stats = api.op("performance.performance_cache_stats_retrieve").sync(client=client)
    assert isinstance(stats, api.CacheStats)
    assert (stats.instrumented, stats.backend, stats.breaker) == (True, "locmem", None)
    assert isinstance(stats.totals, api.CacheTotals)
    assert stats.totals.hits >= 2 and stats.totals.misses >= 1
    assert isinstance(stats.responses, api.Responses)
    assert stats.responses.hits >= 2 and stats.responses.misses >= 1
    assert isinstance(stats.responses.hit_rate, float)
    assert "workstations" in stats.responses.namespaces
    workstations = stats.namespaces.additional_properties["workstations"]
    assert isinstance(workstations, api.NamespaceStats)
    assert workstations.hits >= 2 and not workstations.internal
    assert isinstance(stats.reset_at, datetime.datetime)
    assert all(isinstance(minute, api.HistoryMinute) for minute in stats.history)
    assert isinstance(stats.hot_copies, api.HotCopies)
    metrics = api.op("performance.performance_metrics_retrieve").sync(client=client)
    assert isinstance(metrics, api.SystemMetrics)
    assert metrics.pid > 0 and metrics.database_vendor == "sqlite"
    assert isinstance(metrics.cache_rtt_ms, float)

    # The cache actions.
    cleared = api.op("performance.performance_cache_clear_create").sync(client=client)
    assert isinstance(cleared, api.CacheCleared) and cleared.cleared
    invalidate = api.op("performance.performance_cache_invalidate_create")
    bumped = invalidate.sync(client=client, body=api.InvalidateRequest(namespace="workstations"))
    assert isinstance(bumped, api.NamespaceInvalidated) and bumped.generation > 0
    counted = invalidate.sync(
        client=client, body=api.InvalidateRequest(pattern="workstations:*", dry_run=True)
    )
    assert isinstance(counted, api.PatternInvalidated) and counted.dry_run
    refused = invalidate.sync(client=client, body=api.InvalidateRequest(pattern="*"))
    assert isinstance(refused, api.ValidationError)

    assert api.called == api.operations(), api.operations() - api.called
