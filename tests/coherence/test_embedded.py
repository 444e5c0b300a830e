"""The embedded shape (``make run``: SQLite, the cache in the one gunicorn process) serves a
change made by another process within the bound (docs/design.md, "Invariants", 1).

The server owns its cache; commands, shells and other programs write to the same SQLite file
from processes of their own. Whatever path a change takes — an import, the demo seeder, the ORM
with or without signals, plain SQL — the server must serve it within ``sampling.BOUND`` of its
commit, on URLs it had already cached too; and a token revoked by any of these paths must be
refused, on GET, PATCH and DELETE alike, within the same bound.

The tests share one server; each edits a workstation of its own and revokes the token of a user
of its own, so that none depends on another's outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import USERS, Site, require_processes
from .sampling import (
    LIST,
    Probe,
    Scenario,
    count_at_least,
    notes_at_least,
    revocation_probes,
    warm,
)

SUMMARY = "/api/workstations/summary/"
LOCATIONS = "/api/locations/"


@pytest.fixture(scope="module")
def site(make_module_site: Callable[..., Site]) -> Site:
    """A copy of the template served by one gunicorn process, as ``make run`` serves it."""
    require_processes()
    site = make_module_site()
    site.start("embedded")
    site.wait_until_ready()
    return site


def _count(site: Site, path: str, field: str = "count") -> int:
    status, _, body = site.servers["embedded"].request("GET", path, token=site.token)
    assert status == 200, body
    return body[field]


def _check(site: Site, scenario: Scenario) -> None:
    try:
        scenario.check()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{site.logs()}") from None


# New rows from a command -----------------------------------------------------------------------


def test_an_import_from_a_shell_is_served_on_warm_lists(site: Site, tmp_path: Path) -> None:
    server = site.servers["embedded"]
    for path in (LIST, SUMMARY):
        warm(server, path, site.token)
    before = _count(site, LIST)
    rows = tmp_path / "one-row.csv"
    rows.write_text("asset_tag,hostname\nAT-IMPORTED-1,ws-imported-1\n")

    site.manage("import_workstations", str(rows))
    scenario = Scenario("embedded: import_workstations FILE")
    scenario.changed()
    scenario.sample(
        [
            Probe("list count", server, LIST, count_at_least(before + 1), token=site.token),
            Probe(
                "summary total",
                server,
                SUMMARY,
                count_at_least(before + 1, field="total"),
                token=site.token,
            ),
        ]
    )
    _check(site, scenario)


def test_demo_rows_seeded_from_a_shell_are_served_on_warm_lists(site: Site) -> None:
    server = site.servers["embedded"]
    for path in (LIST, SUMMARY, LOCATIONS):
        warm(server, path, site.token)
    before, locations = _count(site, LIST), _count(site, LOCATIONS)

    site.manage("seed_demo", "--append", "--count", "3", "--seed", "7")
    scenario = Scenario("embedded: seed_demo --append")
    scenario.changed()
    added = site.query("SELECT COUNT(*) FROM workstations_location")[0][0] - locations
    assert added > 0, "seed_demo added no location: the locations probe would prove nothing"
    scenario.sample(
        [
            Probe("list count", server, LIST, count_at_least(before + 3), token=site.token),
            Probe(
                "summary total",
                server,
                SUMMARY,
                count_at_least(before + 3, field="total"),
                token=site.token,
            ),
            Probe(
                "locations count",
                server,
                LOCATIONS,
                count_at_least(locations + added),
                token=site.token,
            ),
        ]
    )
    _check(site, scenario)


# An edited row, by three paths ----------------------------------------------------------------

EDITS: dict[str, Callable[[Site, int], None]] = {
    "shell save()": lambda site, pk: site.shell(
        "from workstations.models import Workstation\n"
        f"w = Workstation.objects.get(pk={pk})\n"
        "w.notes = 'v1'\n"
        "w.save()\n"
    ),
    "shell QuerySet.update()": lambda site, pk: site.shell(
        "from workstations.models import Workstation\n"
        f"assert Workstation.objects.filter(pk={pk}).update(notes='v1') == 1\n"
    ),
    "raw SQL (sqlite3 module)": lambda site, pk: site.sql(
        "UPDATE workstations_workstation SET notes = ? WHERE id = ?", ("v1", pk)
    ),
}


@pytest.mark.parametrize("path", list(EDITS))
def test_a_row_edited_by_another_process_is_served_on_warm_urls(site: Site, path: str) -> None:
    server, pk = site.servers["embedded"], site.pks[list(EDITS).index(path)]
    detail = f"{LIST}{pk}/"
    for url in (LIST, detail):
        warm(server, url, site.token)

    EDITS[path](site, pk)
    scenario = Scenario(f"embedded: workstation edited by {path}")
    scenario.changed()
    scenario.sample(
        [
            Probe("detail", server, detail, notes_at_least(pk, lambda: 1), token=site.token),
            Probe(
                "list row",
                server,
                LIST,
                notes_at_least(pk, lambda: 1, listed=True),
                token=site.token,
            ),
        ]
    )
    _check(site, scenario)


def test_a_write_through_the_api_is_served_on_the_next_request(site: Site) -> None:
    """The control: a write the server makes itself is served at once (bound 0), which also
    shows that the probes above can tell a fresh answer."""
    server, pk = site.servers["embedded"], site.pks[len(EDITS)]
    detail = f"{LIST}{pk}/"
    for url in (LIST, detail):
        warm(server, url, site.token)

    status, _, body = server.request("PATCH", detail, {"notes": "v1"}, token=site.token)
    assert status == 200, body
    scenario = Scenario("embedded: workstation edited through the API (control)", bound=0.0)
    scenario.changed()
    scenario.sample(
        [
            Probe("detail", server, detail, notes_at_least(pk, lambda: 1), token=site.token),
            Probe(
                "list row",
                server,
                LIST,
                notes_at_least(pk, lambda: 1, listed=True),
                token=site.token,
            ),
        ],
        seconds=0.3,
    )
    _check(site, scenario)


# A revoked token, by four paths -----------------------------------------------------------------

#: Each revocation path revokes the token of a user of its own: ``user`` (a username).
REVOCATIONS: dict[str, Callable[[Site, str], None]] = {
    "drf_create_token -r": lambda site, user: site.manage("drf_create_token", "-r", user),
    "user deactivated by save()": lambda site, user: site.shell(
        "from django.contrib.auth import get_user_model\n"
        f"user = get_user_model().objects.get(username={user!r})\n"
        "user.is_active = False\n"
        "user.save()\n"
    ),
    "user deactivated by update()": lambda site, user: site.shell(
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        f"assert User.objects.filter(username={user!r}).update(is_active=False) == 1\n"
    ),
    # Only this user's token: the other tests' tokens stay.
    "DELETE FROM authtoken_token": lambda site, user: site.sql(
        "DELETE FROM authtoken_token WHERE key = ?", (site.tokens[user],)
    ),
}


@pytest.mark.parametrize("path", list(REVOCATIONS))
def test_a_token_revoked_by_another_process_is_refused(site: Site, path: str) -> None:
    server, user = site.servers["embedded"], USERS[list(REVOCATIONS).index(path)]
    token = site.tokens[user]
    for url in (LIST, f"{LIST}{site.pks[6]}/"):
        warm(server, url, token)

    REVOCATIONS[path](site, user)
    scenario = Scenario(f"embedded: token revoked by {path}")
    scenario.changed()
    scenario.sample(revocation_probes(site.servers, site.pks, token))
    _check(site, scenario)
