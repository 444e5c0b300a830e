"""The cache commands, run from a shell beside the embedded server, never claim what did not
happen (docs/design.md, "Invariants", 1 and 7).

With the cache in the server's memory, a command in another process has a cache of its own. A
command either reaches the server's cache through the database — the server then shows the
effect within ``sampling.BOUND`` — or exits non-zero naming where the action can be done (the
admin page or the staff API). In both cases the audit trail (``CacheAction``) records a success
only when the action took effect.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.performance.servers import free_port

from .conftest import Site, require_processes
from .sampling import BOUND, LIST, MARGIN, Probe, Scenario, invalidated, warm, warmed

SUMMARY = "/api/workstations/summary/"
#: Where a refusal must send the operator: the console's page or the staff API (compared
#: without case).
PLACES = ("/admin/performance/cache/", "/api/performance/", "staff API")
#: Responses ``cache_warm`` fills (workstations/warming.py), one probe each, in this order.
WARMED = [
    f"{LIST}",
    f"{LIST}?status=deployed",
    f"{LIST}?status=in_stock",
    SUMMARY,
    "/api/locations/",
]


def _serve(site: Site) -> Site:
    require_processes()
    # The warmer fills responses for the Host headers it is given: the one this server is
    # reached by, whether the command warms or hands the work to the server.
    port = free_port()
    site.env["CACHE_WARM_HOSTS"] = f"127.0.0.1:{port}"
    site.start("embedded", port=port)
    site.wait_until_ready()
    return site


@pytest.fixture(scope="module")
def site(make_module_site: Callable[..., Site]) -> Site:
    """One server for the invalidations: each test warms what it then invalidates."""
    return _serve(make_module_site())


@pytest.fixture
def cold_site(make_site: Callable[..., Site]) -> Site:
    """A server of this test's own, with nothing cached yet."""
    return _serve(make_site())


def _last_action(site: Site) -> int:
    return site.query("SELECT COALESCE(MAX(id), 0) FROM performance_cacheaction")[0][0]


def _audited(site: Site, after: int) -> list[dict[str, Any]]:
    rows = site.query(
        "SELECT kind, source, succeeded, message FROM performance_cacheaction WHERE id > ?",
        (after,),
    )
    return [
        {"kind": kind, "source": source, "succeeded": bool(ok), "message": message}
        for kind, source, ok, message in rows
    ]


def _judge_command(
    site: Site, scenario: Scenario, result: Any, audited_after: int, sample: Callable[[], None]
) -> None:
    """Either the command was refused with directions, or its effect reached the server; the
    audit trail agrees with what happened."""
    output = f"{result.stdout}\n{result.stderr}".strip()
    scenario.notes["exit_status"] = result.returncode
    scenario.notes["output"] = output[-300:]
    if result.returncode != 0:
        scenario.notes["refused"] = True
        if not any(place.lower() in output.lower() for place in PLACES):
            scenario.problems.append(
                f"refused without naming where to do it ({' or '.join(PLACES)}): {output!r}"
            )
    else:
        sample()
    audit = _audited(site, audited_after)
    scenario.notes["audit"] = audit
    effect_missing = result.returncode == 0 and any(r.late for r in scenario.reads)
    for row in audit:
        if row["succeeded"] and (result.returncode != 0 or effect_missing):
            scenario.problems.append(
                f"the audit trail records a success that did not happen: {row['message']!r}"
            )
    if result.returncode == 0:
        scenario.check()
    else:
        scenario.record()
        assert not scenario.problems, f"{scenario.name}: {'; '.join(scenario.problems)}"


INVALIDATIONS = {
    "cache_invalidate --namespace workstations": (
        "cache_invalidate",
        "--namespace",
        "workstations",
    ),
    "cache_invalidate 'workstations:*'": ("cache_invalidate", "workstations:*"),
    "cache_clear --yes": ("cache_clear", "--yes"),
}


@pytest.mark.parametrize("command", list(INVALIDATIONS))
def test_an_invalidation_from_a_shell_reaches_the_server_or_is_refused(
    site: Site, command: str
) -> None:
    server = site.servers["embedded"]
    for path in (LIST, SUMMARY):
        warm(server, path, site.token)
    audited_after = _last_action(site)

    result = site.manage(*INVALIDATIONS[command], check=False)
    scenario = Scenario(f"embedded: {command} from a shell")
    scenario.changed()
    probes = [
        Probe("list", server, LIST, invalidated(), token=site.token),
        Probe("summary", server, SUMMARY, invalidated(), token=site.token),
    ]
    _judge_command(site, scenario, result, audited_after, lambda: scenario.sample(probes))


def test_an_invalidation_through_the_staff_api_is_served_on_the_next_request(site: Site) -> None:
    """The control: the server acts on its own cache at once (bound 0), which also shows that
    the probes above can tell an entry dropped."""
    server = site.servers["embedded"]
    for path in (LIST, SUMMARY):
        warm(server, path, site.token)

    status, _, body = server.request(
        "POST",
        "/api/performance/cache-invalidate/",
        {"namespace": "workstations"},
        token=site.token,
    )
    assert status == 200, body
    scenario = Scenario("embedded: invalidation through the staff API (control)", bound=0.0)
    scenario.changed()
    scenario.sample(
        [
            Probe("list", server, LIST, invalidated(), token=site.token),
            Probe("summary", server, SUMMARY, invalidated(), token=site.token),
        ],
        seconds=0.3,
    )
    scenario.check()


def test_a_warm_from_a_shell_fills_the_servers_cache_or_is_refused(cold_site: Site) -> None:
    """Nothing is cached yet; each response the warmer fills is asked for once, at times spread
    over the bound and past it: those asked after the bound must be HITs."""
    site = cold_site
    server = site.servers["embedded"]
    audited_after = _last_action(site)

    result = site.manage("cache_warm", check=False)
    scenario = Scenario("embedded: cache_warm from a shell")
    changed_at = scenario.changed()
    at = [0.1, 0.4, 0.7, BOUND + 0.05, BOUND + MARGIN]

    def sample() -> None:
        for offset, path in zip(at, WARMED, strict=True):
            time.sleep(max(0.0, changed_at + offset - time.monotonic()))
            scenario.ask(Probe(path, server, path, warmed, token=site.token))

    _judge_command(site, scenario, result, audited_after, sample)
