"""The realistic load's plan (``benchmarks.run.realistic_plan``): the spread the issue asks for,
checked on the plan itself, without a server."""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest

from benchmarks.run import (
    REALISTIC_MACHINES,
    REALISTIC_PAGE_SIZES,
    Clients,
    list_filters,
    realistic_plan,
)

#: What realistic.lua reads: "METHOD PATH CLIENT".
LINE = re.compile(r"^(GET|PATCH) (\S+) (\d+)$")
ROWS = 10_000


@pytest.fixture(scope="module")
def clients() -> Clients:
    return Clients(
        tokens=[f"token-{n}" for n in range(8)],
        ids=list(range(101, 101 + ROWS)),
        locations=[3, 4, 5, 6, 7, 8],
    )


@pytest.fixture(scope="module")
def filters(clients) -> list[tuple[str, float]]:
    return list_filters(clients.locations)


@pytest.fixture(scope="module")
def counts(filters) -> dict[str, int]:
    # Every filter selects some rows, one none at all: a page past the last would be a 404.
    counts = {query: 40 + 37 * n for n, (query, _) in enumerate(filters)}
    counts[""] = ROWS
    counts["search=no-such-host"] = 0
    return counts


@pytest.fixture(scope="module")
def plan(clients, filters, counts) -> list[tuple[str, str, int]]:
    lines = realistic_plan(clients, filters, counts)
    parsed = []
    for line in lines:
        match = LINE.match(line)
        assert match, line
        parsed.append((match.group(1), match.group(2), int(match.group(3))))
    return parsed


def test_the_same_seed_gives_the_same_plan(clients, filters, counts):
    assert realistic_plan(clients, filters, counts) == realistic_plan(clients, filters, counts)
    assert realistic_plan(clients, filters, counts, seed=1) != realistic_plan(
        clients, filters, counts
    )


def test_two_percent_are_writes_of_existing_machines(plan, clients):
    writes = [path for method, path, _ in plan if method == "PATCH"]
    assert len(writes) == len(plan) * 2 // 100
    ids = {int(re.fullmatch(r"/api/workstations/(\d+)/", path).group(1)) for path in writes}
    assert ids <= set(clients.ids)
    assert len(ids) > len(writes) * 0.9  # random machines, not a few


def test_every_client_sends_its_share(plan, clients):
    sent = Counter(client for _, _, client in plan)
    assert set(sent) == set(range(len(clients.tokens)))
    assert min(sent.values()) > len(plan) / len(clients.tokens) * 0.9


def test_details_of_a_few_thousand_machines_most_reads_on_a_fifth(plan, clients):
    reads = Counter(
        int(m.group(1))
        for method, path, _ in plan
        if method == "GET" and (m := re.fullmatch(r"/api/workstations/(\d+)/", path))
    )
    # The tail is long: in one pass of the plan most, not all, of its machines are read.
    assert REALISTIC_MACHINES >= len(reads) > 2000
    assert set(reads) <= set(clients.ids)
    # Spread over the table, not its first rows.
    assert max(reads) - min(reads) > ROWS * 0.9
    hot = sorted(reads.values(), reverse=True)[: REALISTIC_MACHINES // 5]
    assert sum(hot) / sum(reads.values()) >= 0.75


def test_lists_spread_over_filters_orderings_sizes_and_existing_pages(plan, counts):
    lists = [
        parse_qs(urlsplit(path).query)
        for method, path, _ in plan
        if method == "GET" and urlsplit(path).path == "/api/workstations/"
    ]
    assert len(lists) > len(plan) * 0.4
    sizes = Counter(int(query["page_size"][0]) for query in lists)
    assert set(sizes) == set(REALISTIC_PAGE_SIZES)
    for name in ("status", "department", "form_factor", "location", "search", "ordering"):
        assert sum(name in query for query in lists) > len(lists) * 0.04, name
    pages = Counter()
    for query in lists:
        page = int(query.get("page", ["1"])[0])
        filtered = {k: v for k, v in query.items() if k not in {"page", "page_size", "ordering"}}
        key = "&".join(f"{k}={v[0]}" for k, v in filtered.items())
        matching = [q for q in counts if parse_qs(q) == filtered] if key else [""]
        assert matching, query
        last = max(1, -(-counts[matching[0]] // int(query["page_size"][0])))
        assert 1 <= page <= last, query
        pages[page] += 1
    # Most readers stay on the first pages; some go far.
    assert pages[1] > pages[2] > pages[5]
    assert max(pages) > 50


def test_summaries_and_locations_are_read(plan):
    paths = Counter(urlsplit(path).path for method, path, _ in plan if method == "GET")
    assert paths["/api/workstations/summary/"] == len(plan) * 8 // 100
    assert paths["/api/locations/"] == len(plan) * 10 // 100
