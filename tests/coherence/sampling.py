"""Reads judged against what was committed, and when: the figures of a coherence scenario.

A scenario makes one change (a commit by some path, or a Redis failover), notes when it was
complete (``Scenario.changed``), then samples a few requests round-robin, one every
``PERIOD`` seconds, for a bounded time. Each answer is judged by its probe:

- *fresh*: it shows the change (or a later one);
- *stale*: it does not, although the change was complete before the request started;
- *error*: anything else (a 5xx, a refused connection, a body that cannot be right).

A stale read is a failure once it starts more than the bound after the change: the README's
"any committed change, by any path, is served by every server process within 1 s"; for a
write acknowledged by the service itself, the bound is 0 ("on the very next request").

``Scenario.record`` keeps the figures for ``test-artifacts/coherence-report.json`` (written by
the package's conftest) before ``Scenario.check`` asserts on them, so a failing run still
reports what it measured.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.performance.servers import Gunicorn, version

#: Seconds within which any committed change, by any path, is served by every process (README).
BOUND = 1.0
#: Seconds between two requests of the sampling loop.
PERIOD = 0.02
#: Seconds sampled past the bound, so that a read late enough to fail is made.
MARGIN = 0.3
#: Reads a sampling makes after the bound at least (one per probe, up to this many)...
LATE_READS = 8
#: ...waiting for them at most this many seconds past the window.
LATE_DEADLINE = 15.0

Outcome = Literal["fresh", "stale", "error"]
#: A probe's judgement of one answer: its outcome and, for the report, why.
Judgement = tuple[Outcome, str]
Judge = Callable[[int, dict[str, str], Any], Judgement]

#: The list of workstations; a detail is ``f"{LIST}{pk}/"``.
LIST = "/api/workstations/"

#: Every scenario's figures in this session, by scenario name (the conftest writes them).
REPORT: dict[str, dict[str, Any]] = {}


@dataclass
class Probe:
    """One request the sampler repeats, and how to judge its answer.

    ``since`` names the moment the change it is judged against was complete (the scenario's
    by default) and ``bound`` how long a stale answer is allowed after it (the scenario's by
    default; 0 for a write through the service).
    """

    name: str
    server: Gunicorn
    path: str
    judge: Judge
    method: str = "GET"
    token: str | None = None
    body: Callable[[], Any] | None = None
    since: Callable[[], float | None] | None = None
    bound: float | None = None


@dataclass
class Read:
    probe: str
    server: str
    start: float
    end: float
    status: int | None
    cache: str | None
    outcome: Outcome
    note: str
    #: Seconds between the change this read is judged against and the request's start.
    after: float
    bound: float

    @property
    def late(self) -> bool:
        """Stale although it started later than its bound allows."""
        return self.outcome == "stale" and self.after > self.bound

    def describe(self) -> str:
        return (
            f"{self.probe} +{self.after:.3f}s -> {self.status} {self.cache or '-'}: "
            f"{self.outcome} {self.note}"
        )


@dataclass
class Scenario:
    """The reads of one scenario, judged and counted."""

    name: str
    bound: float = BOUND
    changed_at: float | None = None
    reads: list[Read] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def changed(self) -> float:
        """The change is complete (committed, or the failover done): reads are judged from now."""
        self.changed_at = time.monotonic()
        return self.changed_at

    # Requests --------------------------------------------------------------------------------

    def ask(self, probe: Probe) -> Read:
        """One request of ``probe``, judged and kept (only once the change is complete)."""
        assert self.changed_at is not None, "mark the change before sampling"
        body = probe.body() if probe.body is not None else None
        start = time.monotonic()
        since = probe.since() if probe.since is not None else None
        since = self.changed_at if since is None else since
        bound = self.bound if probe.bound is None else probe.bound
        try:
            status, headers, data = probe.server.request(
                probe.method, probe.path, body, token=probe.token
            )
        except (OSError, http.client.HTTPException) as exc:
            status, headers, outcome, note = None, {}, "error", repr(exc)
        else:
            outcome, note = probe.judge(status, headers, data)
        read = Read(
            probe=probe.name,
            server=probe.server.name,
            start=start,
            end=time.monotonic(),
            status=status,
            cache=headers.get("x-cache"),
            outcome=outcome,
            note=note,
            after=start - since,
            bound=bound,
        )
        self.reads.append(read)
        return read

    def sample(self, probes: list[Probe], *, seconds: float | None = None) -> list[Read]:
        """Ask the probes round-robin, one request every ``PERIOD`` seconds, for ``seconds``
        (default: the bound plus a margin) — and on, however slow the machine, until each of
        the first ``LATE_READS`` probes has been asked after its bound: a window that closes
        before the bound proves nothing."""
        assert self.changed_at is not None, "mark the change before sampling"
        now = time.monotonic()
        until = now + (self.bound + MARGIN if seconds is None else seconds)
        deadline = until + LATE_DEADLINE
        wanted = min(len(probes), LATE_READS)
        made: list[Read] = []
        late = 0
        turn = 0
        while now < until or (late < wanted and now < deadline):
            made.append(self.ask(probes[turn % len(probes)]))
            late += made[-1].after > made[-1].bound
            turn += 1
            time.sleep(max(0.0, PERIOD - (time.monotonic() - now)))
            now = time.monotonic()
        if late < wanted:
            self.problems.append(
                f"only {late} read(s) after the bound in {deadline - self.changed_at:.1f} s: "
                "the machine is too slow for this scenario to prove anything"
            )
        return made

    # Figures ---------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        reads = self.reads
        stale = [r for r in reads if r.outcome == "stale"]
        late = [r for r in reads if r.late]
        errors = [r for r in reads if r.outcome == "error"]
        last_by_probe: dict[str, Read] = {}
        for read in reads:
            last_by_probe[read.probe] = read
        still_stale = sorted(p for p, r in last_by_probe.items() if r.outcome == "stale")
        window = max((r.end for r in reads), default=self.changed_at or 0.0) - (
            self.changed_at or 0.0
        )
        return {
            "reads": len(reads),
            "reads_after_bound": sum(r.after > r.bound for r in reads),
            "stale_reads": len(stale),
            "stale_reads_after_bound": len(late),
            "longest_staleness_s": round(max((r.after for r in stale), default=0.0), 3),
            # Stale until the window closed: the real staleness is longer than measured.
            "still_stale_at_end": still_stale,
            "errors": len(errors),
            "hits": sum(r.cache == "HIT" for r in reads),
            "bound_s": self.bound,
            "window_s": round(window, 3),
            "examples": [r.describe() for r in (late + errors)[:6]],
            "problems": list(self.problems),
            **self.notes,
        }

    def record(self) -> dict[str, Any]:
        figures = self.figures()
        REPORT[self.name] = figures
        print(
            f"\n[coherence] {self.name}: {figures['reads']} reads, {figures['stale_reads']} stale, "
            f"{figures['stale_reads_after_bound']} stale after the {self.bound:g} s bound, "
            f"longest {figures['longest_staleness_s']:.3f} s"
            f"{' (still stale at the end)' if figures['still_stale_at_end'] else ''}, "
            f"{figures['errors']} errors"
            + ("; refused, with directions" if self.notes.get("refused") else "")
            + (f"; problems: {'; '.join(self.problems)}" if self.problems else "")
        )
        return figures

    def check(self) -> None:
        """Record the figures, then assert: no error, no stale read after the bound, and no
        other problem the scenario noted (a lie in the audit trail, a generation gone back)."""
        figures = self.record()
        assert figures["reads"], f"{self.name}: no read was made"
        assert not figures["errors"], f"{self.name}: {figures['errors']} error(s): {figures}"
        assert not figures["stale_reads_after_bound"], (
            f"{self.name}: {figures['stale_reads_after_bound']} stale read(s) later than "
            f"{self.bound:g} s after the change: {figures}"
        )
        assert not self.problems, f"{self.name}: {'; '.join(self.problems)}"


# Judges --------------------------------------------------------------------------------------


def _unexpected(status: int, body: Any) -> Judgement:
    return "error", f"answered {status}: {str(body)[:160]}"


def notes_at_least(pk: int, wanted: Callable[[], int], *, listed: bool = False) -> Judge:
    """Fresh when workstation ``pk`` shows notes ``v<n>`` with ``n >= wanted()``: in its detail,
    or (``listed``) in the list's first page."""

    def judge(status: int, headers: dict[str, str], body: Any) -> Judgement:
        if status != 200 or not isinstance(body, dict):
            return _unexpected(status, body)
        if listed:
            rows = [row for row in body.get("results", []) if row.get("id") == pk]
            if not rows:
                return "error", f"workstation {pk} is not in the list"
            body = rows[0]
        try:
            seen = version(body["notes"])
        except (KeyError, AssertionError, ValueError):
            return "error", f"notes {body.get('notes')!r}"
        floor = wanted()
        return ("fresh" if seen >= floor else "stale"), f"v{seen}, committed v{floor}"

    return judge


def count_at_least(wanted: int, *, field: str = "count") -> Judge:
    """Fresh when the body's ``field`` (a list's ``count``, the summary's ``total``) has
    reached ``wanted``."""

    def judge(status: int, headers: dict[str, str], body: Any) -> Judgement:
        if status != 200 or not isinstance(body, dict) or field not in body:
            return _unexpected(status, body)
        seen = body[field]
        return ("fresh" if seen >= wanted else "stale"), f"{field} {seen}, committed {wanted}"

    return judge


def refused(status: int, headers: dict[str, str], body: Any) -> Judgement:
    """For a revoked token: 401 is fresh; an answer that let it through (200, 204, or a 404
    that got past authentication) is stale."""
    if status == 401:
        return "fresh", "refused"
    if status in {200, 201, 204, 404}:
        return "stale", f"accepted: {status}"
    return _unexpected(status, body)


def invalidated() -> Judge:
    """Fresh from the first ``X-Cache: MISS`` on: the entry served before was dropped."""
    seen_miss = False

    def judge(status: int, headers: dict[str, str], body: Any) -> Judgement:
        nonlocal seen_miss
        if status != 200:
            return _unexpected(status, body)
        seen_miss = seen_miss or headers.get("x-cache") == "MISS"
        return ("fresh", "dropped") if seen_miss else ("stale", "the old entry answered")

    return judge


def warmed(status: int, headers: dict[str, str], body: Any) -> Judgement:
    """Fresh when a first request is already a ``HIT``: someone filled the entry."""
    if status != 200:
        return _unexpected(status, body)
    if headers.get("x-cache") == "HIT":
        return "fresh", "filled"
    return "stale", "not in the server's cache"


def revocation_probes(servers: dict[str, Gunicorn], pks: list[int], token: str) -> list[Probe]:
    """GET (list, detail), PATCH and DELETE with a revoked ``token``, on each server: each must
    be refused (401). They read ``pks[6]``, write ``pks[7]``, and each DELETE names one of
    ``pks[8:]``, so one that got through is seen (204), and a second one too (a 404 is past
    authentication as well)."""
    probes = []
    for n, victim in enumerate(pks[8:]):
        for name, server in servers.items():
            probes += [
                Probe(f"{name} GET list", server, LIST, refused, token=token),
                Probe(f"{name} GET detail", server, f"{LIST}{pks[6]}/", refused, token=token),
                Probe(
                    f"{name} PATCH",
                    server,
                    f"{LIST}{pks[7]}/",
                    refused,
                    method="PATCH",
                    token=token,
                    body=lambda n=n: {"notes": f"v{100 + n}"},
                ),
                Probe(
                    f"{name} DELETE",
                    server,
                    f"{LIST}{victim}/",
                    refused,
                    method="DELETE",
                    token=token,
                ),
            ]
    return probes


# Setting up ----------------------------------------------------------------------------------


def warm(server: Gunicorn, path: str, token: str, tries: int = 5) -> None:
    """Request ``path`` until the server answers it from its cache (``X-Cache: HIT``)."""
    for _ in range(tries):
        status, headers, body = server.request("GET", path, token=token)
        assert status == 200, (server.name, path, status, body)
        if headers.get("x-cache") == "HIT":
            return
    raise AssertionError(f"{server.name} {path} is not cached after {tries} requests")
