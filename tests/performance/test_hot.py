"""Each process's copies of the entries warm hits serve (``performance.cache.hot``)."""

from __future__ import annotations

import time

from performance.cache.hot import HotEntries


def test_a_copy_is_served_only_under_the_epoch_it_was_stored_under() -> None:
    hot = HotEntries(max_bytes=1_000, max_age=60)
    hot.put("workstations:1:abc", b"body", epoch=7, size=4)
    assert hot.get("workstations:1:abc", 7) == b"body"
    assert hot.get("workstations:1:abc", 8) is None  # purged since: dropped for good
    assert hot.get("workstations:1:abc", 7) is None
    assert hot.usage() == {"entries": 0, "bytes": 0, "max_bytes": 1_000}


def test_a_copy_never_outlives_the_cache_timeout() -> None:
    hot = HotEntries(max_bytes=1_000, max_age=0)
    hot.put("workstations:1:abc", b"body", epoch=1, size=4)
    assert hot.get("workstations:1:abc", 1) is None


def test_copies_are_bounded_in_bytes_oldest_stored_out_first() -> None:
    hot = HotEntries(max_bytes=100, max_age=60)
    for n in range(5):
        hot.put(f"workstations:1:{n}", n, epoch=1, size=30)
    assert hot.usage()["bytes"] == 90
    assert [hot.get(f"workstations:1:{n}", 1) for n in range(5)] == [None, None, 2, 3, 4]
    hot.put("workstations:1:4", 4, epoch=1, size=30)  # stored again: counted once
    assert hot.usage()["bytes"] == 90
    hot.put("workstations:1:big", "big", epoch=1, size=101)  # larger than everything: not kept
    assert hot.get("workstations:1:big", 1) is None
    assert hot.usage()["entries"] == 3


def test_no_bytes_means_no_copies() -> None:
    hot = HotEntries(max_bytes=0, max_age=60)
    assert not hot.enabled
    hot.put("workstations:1:abc", b"", epoch=1, size=0)
    assert hot.get("workstations:1:abc", 1) is None


def test_a_copy_ends_when_the_entry_it_came_from_expires() -> None:
    hot = HotEntries(max_bytes=1_000, max_age=60)
    hot.put("workstations:1:gone", b"body", epoch=1, size=4, expires_at=time.time() - 1)
    hot.put("workstations:1:soon", b"body", epoch=1, size=4, expires_at=time.time() + 0.05)
    hot.put("workstations:1:late", b"body", epoch=1, size=4, expires_at=time.time() + 600)
    assert hot.get("workstations:1:gone", 1) is None  # never kept
    assert hot.get("workstations:1:soon", 1) == b"body"
    time.sleep(0.1)
    assert hot.get("workstations:1:soon", 1) is None
    assert hot.get("workstations:1:late", 1) == b"body"  # max_age still bounds it (60 s)
