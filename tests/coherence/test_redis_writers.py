"""The Redis shape serves writes made without a Django signal within the bound, on every server
(docs/design.md, "Invariants", 1 and 8).

Two gunicorn servers share one database and a private ``redis-server``. A change that sends no
signal — ``QuerySet.update()``, ``bulk_update()``, plain SQL from another program, a token's key
changed or its user deactivated with ``update()`` — must be served by both servers within
``sampling.BOUND``, on URLs they had cached too; a token it revokes must be refused by both.

The database follows the suite's pass: SQLite, then PostgreSQL (a database of the test's own),
so that whatever records changes in the database is exercised on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.performance.servers import RedisServer

from .conftest import USERS, Site, require_processes
from .sampling import LIST, Probe, Scenario, notes_at_least, revocation_probes, warm

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def fleet(
    make_module_site: Callable[..., Site], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """Servers A and B (one worker each) on one database and one private Redis, shared by the
    module's tests: each edits a workstation of its own, or revokes a token of its own."""
    require_processes(redis=True)
    redis = RedisServer(tmp_path_factory.mktemp("coherence-redis"))
    site = make_module_site("pass", REDIS_URL=redis.url)
    try:
        site.start("A")
        site.start("B")
        site.wait_until_ready()
        yield site
    finally:
        site.stop()  # before Redis: a server shutting down may still talk to it
        redis.stop()


def _check(site: Site, scenario: Scenario) -> None:
    scenario.notes["database"] = "postgresql" if site.postgresql else "sqlite"
    try:
        scenario.check()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{site.logs()}") from None


WRITES: dict[str, Callable[[Site, int], None]] = {
    "QuerySet.update()": lambda site, pk: site.shell(
        "from workstations.models import Workstation\n"
        f"assert Workstation.objects.filter(pk={pk}).update(notes='v1') == 1\n"
    ),
    "bulk_update()": lambda site, pk: site.shell(
        "from workstations.models import Workstation\n"
        f"w = Workstation.objects.get(pk={pk})\n"
        "w.notes = 'v1'\n"
        "Workstation.objects.bulk_update([w], ['notes'])\n"
    ),
    "raw SQL from another program": lambda site, pk: site.sql(
        "UPDATE workstations_workstation SET notes = ? WHERE id = ?", ("v1", pk)
    ),
}


@pytest.mark.parametrize("path", list(WRITES))
def test_a_write_without_a_signal_is_served_by_every_server(fleet: Site, path: str) -> None:
    pk = fleet.pks[list(WRITES).index(path)]
    detail = f"{LIST}{pk}/"
    for server in fleet.servers.values():
        for url in (LIST, detail):
            warm(server, url, fleet.token)

    WRITES[path](fleet, pk)
    scenario = Scenario(f"redis: workstation edited by {path}")
    scenario.changed()
    scenario.sample(_notes_probes(fleet, pk))
    _check(fleet, scenario)


def _notes_probes(site: Site, pk: int) -> list[Probe]:
    """The workstation's detail and its row in the list, on each server: notes "v1" wanted."""
    probes = []
    for name, server in site.servers.items():
        probes += [
            Probe(
                f"{name} detail",
                server,
                f"{LIST}{pk}/",
                notes_at_least(pk, lambda: 1),
                token=site.token,
            ),
            Probe(
                f"{name} list row",
                server,
                LIST,
                notes_at_least(pk, lambda: 1, listed=True),
                token=site.token,
            ),
        ]
    return probes


def test_a_write_through_the_api_is_served_by_every_server_on_the_next_request(
    fleet: Site,
) -> None:
    """The control: a write through A is served by A and B at once (bound 0), which also
    shows that the probes above can tell a fresh answer."""
    pk = fleet.pks[len(WRITES)]
    detail = f"{LIST}{pk}/"
    for server in fleet.servers.values():
        for url in (LIST, detail):
            warm(server, url, fleet.token)

    status, _, body = fleet.servers["A"].request(
        "PATCH", detail, {"notes": "v1"}, token=fleet.token
    )
    assert status == 200, body
    scenario = Scenario("redis: workstation edited through the API (control)", bound=0.0)
    scenario.changed()
    scenario.sample(_notes_probes(fleet, pk), seconds=0.3)
    _check(fleet, scenario)


#: Each revocation path revokes the token of a user of its own: ``user`` (a username).
REVOCATIONS: dict[str, Callable[[Site, str], None]] = {
    "token key changed with update()": lambda site, user: site.shell(
        "from rest_framework.authtoken.models import Token\n"
        f"assert Token.objects.filter(key={site.tokens[user]!r}).update(key='0' * 40) == 1\n"
    ),
    "user deactivated with update()": lambda site, user: site.shell(
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        f"assert User.objects.filter(username={user!r}).update(is_active=False) == 1\n"
    ),
}


@pytest.mark.parametrize("path", list(REVOCATIONS))
def test_a_token_revoked_without_a_signal_is_refused_by_every_server(
    fleet: Site, path: str
) -> None:
    user = USERS[len(USERS) - 1 - list(REVOCATIONS).index(path)]
    token = fleet.tokens[user]
    for server in fleet.servers.values():
        for url in (LIST, f"{LIST}{fleet.pks[6]}/"):
            warm(server, url, token)

    REVOCATIONS[path](fleet, user)
    scenario = Scenario(f"redis: token revoked by {path}")
    scenario.changed()
    scenario.sample(revocation_probes(fleet.servers, fleet.pks, token))
    _check(fleet, scenario)
