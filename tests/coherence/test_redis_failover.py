"""A Redis that goes back in time never brings back what was invalidated (docs/design.md,
"Invariants", 1 and 3).

Two gunicorn servers share one SQLite file and reach Redis through a ``TcpProxy``, as they would
reach a managed endpoint. The Redis behind it goes back in time four ways — a replica promoted
without the last bump, a replica promoted without the last four writes, a restart from an older
snapshot, a token revoked just before a failover — and, separately, one server is cut off from
a Redis the other still reaches. Once the failover is complete (the proxy switched, or Redis
answering again), every read must be fresh within ``sampling.BOUND``; a write made after it
must be seen on the very next request (bound 0); and the generations the servers use must be
greater than any they used before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from performance.cache.keys import AUTH_NAMESPACE, generation_key
from tests.performance.servers import (
    Gunicorn,
    Load,
    RedisServer,
    Register,
    breaker_opened,
    wait_for,
)

from .conftest import USERS, Site, require_processes
from .proxy import TcpProxy
from .sampling import BOUND, LIST, MARGIN, Probe, Scenario, notes_at_least, refused, warm

pytestmark = pytest.mark.redis

WORKSTATIONS = "workstations"
#: Writes made after the failover, each read back at once through both servers.
WRITES_AFTER = 4


@dataclass
class Stack:
    """Servers A and B, the Redis they reach through ``proxy``, and its replica."""

    site: Site
    primary: RedisServer
    replica: RedisServer | None
    proxy: TcpProxy
    prefix: str

    @property
    def a(self) -> Gunicorn:
        return self.site.servers["A"]

    @property
    def b(self) -> Gunicorn:
        return self.site.servers["B"]

    def failover(self) -> None:
        """The replica becomes the primary and the endpoint moves to it; the old primary dies."""
        assert self.replica is not None
        self.replica.promote()
        self.proxy.switch(self.replica.address)
        self.primary.kill()

    def generations(self, redis: RedisServer, *namespaces: str) -> dict[str, int | None]:
        """The generations ``redis`` holds, read as the servers' keys name them."""
        keys = [f"{self.prefix}:1:{generation_key(ns)}" for ns in namespaces]
        with redis.client() as client:
            values = client.mget(keys)
        found: dict[str, int | None] = {}
        for namespace, value in zip(namespaces, values, strict=True):
            try:
                found[namespace] = None if value is None else int(value)
            except ValueError:
                found[namespace] = None
        return found


def _stack(site_factory: Callable[..., Site], tmp_path: Path, *, replica: bool) -> Stack:
    primary = RedisServer(tmp_path / "primary")
    copy = None
    proxy = None
    try:
        if replica:
            copy = RedisServer(tmp_path / "replica")
            copy.replicate(primary)
        proxy = TcpProxy(primary.address)
        site = site_factory(REDIS_URL=proxy.url)
        site.start("A")
        site.start("B")
        site.wait_until_ready()
    except BaseException:
        for thing in (proxy, copy, primary):
            if thing is not None:
                thing.stop()
        raise
    return Stack(site, primary, copy, proxy, site.env["CACHE_KEY_PREFIX"])


@pytest.fixture
def stack(make_site: Callable[..., Site], tmp_path: Path) -> Iterator[Stack]:
    """Primary and replica in sync, the proxy in front of the primary, servers A and B."""
    require_processes(redis=True)
    made = _stack(make_site, tmp_path, replica=True)
    try:
        yield made
    finally:
        made.site.stop()  # before Redis: a server shutting down may still talk to it
        made.proxy.stop()
        for redis in (made.primary, made.replica):
            if redis is not None:
                redis.stop()


@pytest.fixture
def single(make_site: Callable[..., Site], tmp_path: Path) -> Iterator[Stack]:
    """One Redis (persistence on demand), the proxy in front of it, servers A and B."""
    require_processes(redis=True)
    made = _stack(make_site, tmp_path, replica=False)
    try:
        yield made
    finally:
        made.site.stop()
        made.proxy.stop()
        made.primary.stop()


# Helpers -------------------------------------------------------------------------------------


def _warm_notes(stack: Stack, pk: int) -> None:
    for server in (stack.a, stack.b):
        for url in (LIST, f"{LIST}{pk}/"):
            warm(server, url, stack.site.token)


def _write(load: Load, server: Gunicorn, pk: int) -> int:
    sample = load.write(server, pk)
    assert (sample.status, sample.error) == (200, ""), sample
    return load.register.acked[pk]


def _notes_probes(
    stack: Stack,
    pk: int,
    wanted: Callable[[], int],
    *,
    since: Callable[[], float | None] | None = None,
    bound: float | None = None,
) -> list[Probe]:
    probes = []
    for server in (stack.a, stack.b):
        for label, url, listed in (("detail", f"{LIST}{pk}/", False), ("list row", LIST, True)):
            probes.append(
                Probe(
                    f"{server.name} {label}",
                    server,
                    url,
                    notes_at_least(pk, wanted, listed=listed),
                    token=stack.site.token,
                    since=since,
                    bound=bound,
                )
            )
    return probes


def _cache_in_use(scenario: Scenario, stack: Stack) -> None:
    """Each server answered from the cache once the bound had passed: otherwise (a breaker
    left open, say) fresh reads from the database would prove nothing about the cache."""
    for server in (stack.a, stack.b):
        hits = [
            r
            for r in scenario.reads
            if r.server == server.name and r.cache == "HIT" and r.after > scenario.bound
        ]
        if not hits:
            scenario.problems.append(
                f"{server.name} served no cache hit after the bound: the scenario proves nothing"
            )


def _generations_moved_on(
    scenario: Scenario,
    stack: Stack,
    redis: RedisServer,
    before: dict[str, int | None],
    when: str,
) -> None:
    """Each generation ``redis`` holds now is greater than any the servers used before the
    failover (``before``: the old primary's, read last, when they were highest)."""
    after = stack.generations(redis, *before)
    observed = scenario.notes.setdefault("generations", {"before the failover": before})
    observed[when] = after
    for namespace, old in before.items():
        new = after[namespace]
        if old is None or new is None:
            scenario.notes.setdefault("generations_not_observed", []).append(f"{namespace} {when}")
            continue
        if new <= old:
            scenario.problems.append(
                f"generation of {namespace!r} {when} went back or repeated: {new} after {old}"
            )


def _writes_after(
    scenario: Scenario,
    stack: Stack,
    load: Load,
    pk: int,
    redis: RedisServer,
    before: dict[str, int | None],
) -> None:
    """Writes through A and B in turn, each read back at once through both (bound 0); the
    generation each write moved to is new."""
    acked_at: list[float] = []
    probes = _notes_probes(
        stack,
        pk,
        lambda: load.register.acked[pk],
        since=lambda: acked_at[-1],
        bound=0.0,
    )
    for n in range(WRITES_AFTER):
        _write(load, (stack.a, stack.b)[n % 2], pk)
        acked_at.append(time.monotonic())
        for probe in probes:
            scenario.ask(probe)
        _generations_moved_on(scenario, stack, redis, before, f"after write {n + 1} after it")


def _check(stack: Stack, scenario: Scenario) -> None:
    try:
        scenario.check()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.site.logs()}") from None


# (a) The last bump lost in a failover ---------------------------------------------------------


def test_a_bump_lost_in_a_failover_is_not_served(stack: Stack) -> None:
    pk = stack.site.pks[0]
    load = Load([stack.a, stack.b], stack.site.token, Register(stack.site.pks))
    _warm_notes(stack, pk)
    stack.replica.wait_synced(stack.primary)

    stack.replica.cut_replication()
    written = _write(load, stack.a, pk)  # acknowledged by the old primary only
    before = stack.generations(stack.primary, WORKSTATIONS)
    stack.failover()

    scenario = Scenario("redis failover: last bump lost")
    scenario.changed()
    scenario.sample(_notes_probes(stack, pk, lambda: written))
    _cache_in_use(scenario, stack)
    _generations_moved_on(scenario, stack, stack.replica, before, "after the failover")
    _check(stack, scenario)


# (b) A replica promoted with older data -------------------------------------------------------


def test_a_replica_promoted_with_older_data_serves_the_last_write(stack: Stack) -> None:
    pk = stack.site.pks[0]
    load = Load([stack.a, stack.b], stack.site.token, Register(stack.site.pks))
    _warm_notes(stack, pk)
    stack.replica.wait_synced(stack.primary)

    stack.replica.cut_replication()
    for n in range(4):  # each read back through both, so each leaves copies behind
        server = (stack.a, stack.b)[n % 2]
        _write(load, server, pk)
        for other in (stack.a, stack.b):
            for url in (LIST, f"{LIST}{pk}/"):
                other.request("GET", url, token=stack.site.token)
                other.request("GET", url, token=stack.site.token)
    written = load.register.acked[pk]
    before = stack.generations(stack.primary, WORKSTATIONS)
    stack.failover()

    scenario = Scenario("redis failover: replica promoted with older data")
    scenario.changed()
    scenario.sample(_notes_probes(stack, pk, lambda: written))
    _cache_in_use(scenario, stack)
    _generations_moved_on(scenario, stack, stack.replica, before, "after the failover")
    _writes_after(scenario, stack, load, pk, stack.replica, before)
    _check(stack, scenario)


# (c) A restart from an older snapshot ----------------------------------------------------------


def test_a_restart_from_an_older_snapshot_serves_the_last_write(
    single: Stack, tmp_path: Path
) -> None:
    stack, pk = single, single.site.pks[0]
    load = Load([stack.a, stack.b], stack.site.token, Register(stack.site.pks))
    _warm_notes(stack, pk)
    snapshot = stack.primary.snapshot(tmp_path / "older.rdb")

    for n in range(4):
        _write(load, (stack.a, stack.b)[n % 2], pk)
        for other in (stack.a, stack.b):
            for url in (LIST, f"{LIST}{pk}/"):
                other.request("GET", url, token=stack.site.token)
                other.request("GET", url, token=stack.site.token)
    written = load.register.acked[pk]
    before = stack.generations(stack.primary, WORKSTATIONS)
    stack.primary.kill()
    stack.primary.restart(snapshot=snapshot)

    scenario = Scenario("redis restarted from an older snapshot")
    scenario.changed()
    scenario.sample(_notes_probes(stack, pk, lambda: written))
    _cache_in_use(scenario, stack)
    _generations_moved_on(scenario, stack, stack.primary, before, "after the restart")
    _writes_after(scenario, stack, load, pk, stack.primary, before)
    _check(stack, scenario)


# (d) A token revoked just before a failover ----------------------------------------------------


def test_a_token_revoked_just_before_a_failover_stays_refused(stack: Stack) -> None:
    site = stack.site
    token = site.tokens[USERS[0]]
    for server in (stack.a, stack.b):
        for url in (LIST, f"{LIST}{site.pks[0]}/"):
            warm(server, url, token)
            warm(server, url, site.token)
    stack.replica.wait_synced(stack.primary)

    stack.replica.cut_replication()
    site.shell(
        "from rest_framework.authtoken.models import Token\n"
        f"Token.objects.filter(key={token!r}).delete()\n"
    )
    for server in (stack.a, stack.b):  # refused before the failover: the revocation went through
        status, _, body = server.request("GET", LIST, token=token)
        assert status == 401, (server.name, status, body)
    before = stack.generations(stack.primary, AUTH_NAMESPACE)
    stack.failover()

    scenario = Scenario("redis failover: token revoked just before")
    scenario.changed()
    probes = []
    for server in (stack.a, stack.b):
        probes += [
            Probe(f"{server.name} GET list", server, LIST, refused, token=token),
            Probe(
                f"{server.name} GET detail",
                server,
                f"{LIST}{site.pks[0]}/",
                refused,
                token=token,
            ),
            # Someone else's reads, so that the cache is seen in use after the failover.
            Probe(
                f"{server.name} GET list (root)",
                server,
                LIST,
                notes_at_least(site.pks[0], lambda: 0, listed=True),
                token=site.token,
            ),
        ]
    scenario.sample(probes)
    _cache_in_use(scenario, stack)
    _generations_moved_on(scenario, stack, stack.replica, before, "after the failover")
    _check(stack, scenario)


# (e) One server's breaker open while Redis is up for the other --------------------------------


def test_a_write_through_a_server_cut_off_from_redis_is_served_by_the_other(
    make_site: Callable[..., Site], tmp_path: Path
) -> None:
    require_processes(redis=True)
    redis = RedisServer(tmp_path / "redis")
    proxy = TcpProxy(redis.address)
    site: Site | None = None
    try:
        site = make_site(REDIS_URL=redis.url)
        a = site.start("A", REDIS_URL=proxy.url)  # A through its own proxy, B directly
        b = site.start("B")
        site.wait_until_ready()
        pk = site.pks[0]
        for server in (a, b):
            for url in (LIST, f"{LIST}{pk}/"):
                warm(server, url, site.token)

        proxy.blackhole(hold=False)  # A's connections are reset; B's Redis stays up
        opened = wait_for(
            lambda: a.request("GET", LIST, token=site.token)[0] == 200 and breaker_opened(a),
            timeout=15,
        )
        assert opened, f"A's circuit breaker did not open:\n{a.log_text()[-2000:]}"

        load = Load([a, b], site.token, Register(site.pks))
        scenario = Scenario("redis: write through a server whose breaker is open")
        scenario.changed()
        acked_at: list[float] = []
        probes = [
            Probe(
                f"{server.name} {label}",
                server,
                url,
                notes_at_least(pk, lambda: load.register.acked[pk], listed=listed),
                token=site.token,
                since=lambda: acked_at[-1],
            )
            for server in (b, a)
            for label, url, listed in (("detail", f"{LIST}{pk}/", False), ("list row", LIST, True))
        ]
        for _ in range(3):
            _write(load, a, pk)
            acked_at.append(time.monotonic())
            scenario.sample(probes, seconds=BOUND + MARGIN)
        hits = [r for r in scenario.reads if r.server == "B" and r.cache == "HIT"]
        if not hits:
            scenario.problems.append("B served no cache hit: the scenario proves nothing")
        try:
            scenario.check()
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{site.logs()}") from None
    finally:
        if site is not None:
            site.stop()
        proxy.stop()
        redis.stop()
