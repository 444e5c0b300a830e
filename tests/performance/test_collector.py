"""What the embedded cache keeps, the garbage collector does not look at.

A full collection holds every thread of the process while it looks at each object it tracks,
and the embedded cache keeps its entries, and the notes of which pages show which object, in
the process for as long as it runs: tens of thousands of them under the byte bound. Each entry
was a wrapper object the collector tracked, each note a set: a full collection took as long as
the cache was full. Entries are kept as plain values (a frozen value itself, anything else its
encoding), notes as dictionaries of page keys, which the collector stops tracking.
"""

from __future__ import annotations

import gc

from .support import COLLECTIONS, NAMESPACE, store_page, tracked_from

ENTRIES = 200


def test_the_entries_are_nothing_the_collector_looks_at(locmem_cache):
    for n in range(ENTRIES):
        locmem_cache.set(f"pages:{n}", (b"{}" * n, f'"etag-{n}"', "application/json", None))
        locmem_cache.set(f"ids:{n}", [n, [1, 2, 3]])  # (encoded: a list comes back a list)
        locmem_cache.set(f"generation:{n}", n)
    gc.collect()
    assert tracked_from([locmem_cache._cache]) == 0
    # And each reads back as it was stored, as from Redis.
    assert locmem_cache.get("pages:3") == [b"{}" * 3, '"etag-3"', "application/json", None]
    assert locmem_cache.get("ids:3") == [3, [1, 2, 3]]
    assert locmem_cache.get("generation:3") == 3
    assert locmem_cache.incr("generation:3") == 4


def test_the_notes_of_which_pages_show_which_object_are_nothing_it_looks_at(locmem_cache):
    locmem_cache.set(COLLECTIONS, 7, None)
    for n in range(ENTRIES):
        assert store_page(locmem_cache, f"p{n}", [str(n), str(n + 1)])
    gc.collect()
    listings = locmem_cache.state.listings
    assert len(listings[NAMESPACE]) == ENTRIES + 1
    # The namespace's notes: a dictionary the collector looks at, and nothing in it.
    assert tracked_from([listings]) == 1
