"""Generation counters: O(1) invalidation of a whole namespace.

Every cached entry's key embeds its namespace's generation, read *before* the data is computed.
A write bumps the generation, which makes every older key unreachable at once, without scanning;
a slow reader that raced a write stores its body under the dead generation, where nobody looks.

Generations never repeat and never go back (docs/design.md, "Invariants", 3), whatever the cache
does:

- a bump moves a generation to ``max(current + 1, now in microseconds)`` — the clock of the
  cache server on Redis — so a counter that went back (a failover to a replica that missed
  writes, a restore from an older snapshot) jumps past every value it handed out before, instead
  of handing them out again;
- a missing generation (evicted, flushed, Redis restarted empty) is seeded from the clock too;
- each process remembers the highest generation it has seen of each namespace; one read lower
  than that means the cache went back in time, and is replaced before anything is served under it.

Beside each generation the cache keeps the database version it took in (``applied_key``, see
``changes`` and ``sync``): a bump after a write records the version the write committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from django.core.cache import caches

from . import changes
from .keys import (
    GENERATION_NAMESPACE,
    applied_key,
    collection_scope,
    generation_key,
    is_page_scope,
    layout_scope,
    object_field,
    object_scope,
)

logger = logging.getLogger(__name__)

__all__ = [
    "GENERATION_NAMESPACE",
    "Step",
    "advance",
    "bump_generation",
    "generation_key",
    "get_generation",
    "went_back",
]

#: Seconds since the epoch as a float; tests replace it to set the clock.
clock: Callable[[], float] = time.time

#: What ``advance`` does to one namespace. ``OBJECTS``: a ``SYNC`` that, when the cache has
#: taken in the version ``since`` (or one after it, before ``version``), bumps the namespace's
#: collections and the generations of the objects the versions up to ``version`` touched,
#: instead of the namespace.
WRITE, SYNC, RESET, OBJECTS = "write", "sync", "reset", "objects"
#: ``advance``'s answer for a namespace whose generation it left as it was.
UNCHANGED = 0
#: ``advance``'s answer (``SYNC``) for a namespace the cache has applied a *newer* database
#: version of than the one given: a reader that raced another, or a database that went back.
AHEAD = -1
#: Seconds a list page's generation lives (``keys.page_scope``): there is one per page clients
#: asked for, so they must go; gone, it is seeded anew and the page is a miss.
PAGE_GENERATION_TTL = 24 * 3600

#: ``advance``'s answer (``OBJECTS``) for a namespace whose objects and collections it bumped.
OBJECTS_BUMPED = -2


class Step(NamedTuple):
    """One namespace for ``advance``: the database version to record (``None``: none known),
    what to do, and the lowest generation acceptable (above what this process has seen); for
    ``OBJECTS``, the version the cache must have taken in already (``since``) and the objects
    the versions after it touched."""

    namespace: str
    version: int | None
    mode: str = WRITE
    floor: int = 0
    since: int | None = None
    objects: tuple[str, ...] = ()
    #: Whether a change may have moved one of ``objects`` in, out of or within a list.
    moved: bool = False

    def scopes(self) -> list[str]:
        """The generations an ``OBJECTS`` step bumps: the collections', each object's, and
        the lists' layout when an object may have moved."""
        if self.mode != OBJECTS:
            return []
        return [
            collection_scope(self.namespace),
            *(object_scope(self.namespace, object_id) for object_id in self.objects),
            *([layout_scope(self.namespace)] if self.moved else []),
        ]

    def listed(self) -> list[str]:
        """The objects whose pages (``keys.listings_key``) an ``OBJECTS`` step bumps, when no
        object moved and the namespace has lists (otherwise the layout's bump ends them all)."""
        if self.mode != OBJECTS or self.moved or not changes.has_layout(self.namespace):
            return []
        return [object_field(object_id) for object_id in self.objects]


# The highest generation this process has seen of each namespace, per cache (``state``): a
# seed or a bump never goes below it, and a generation read below it means the cache went back
# in time. A cache of Django's own (no state) shares one.
_highest_of_plain_caches: dict[str, int] = {}
_highest_lock = threading.Lock()


def highest(cache: Any) -> dict[str, int]:
    """The highest generation this process has seen of each namespace of ``cache``."""
    state = getattr(cache, "state", None)
    return state.highest if state is not None else _highest_of_plain_caches


def _seen(cache: Any, namespace: str, value: int) -> int:
    marks = highest(cache)
    with _highest_lock:
        if value > marks.get(namespace, 0):
            marks[namespace] = value
    return value


def went_back(read: Mapping[str, Any], names: Mapping[str, str], marks: dict[str, int]) -> bool:
    """Whether any generation just read (``read``: key -> value; ``names``: key -> namespace) is
    below the highest this process has seen (``marks``, from ``highest``); the others are noted
    as seen. The read path's check, made on every request: dictionary lookups, no lock (a lost
    update only lowers the mark, which is the safe direction)."""
    highest = marks
    for key, namespace in names.items():
        value = read.get(key)
        if type(value) is not int:
            continue
        known = highest.get(namespace, 0)
        if value < known:
            return True
        if value > known:
            highest[namespace] = value
    return False


def now_us() -> int:
    return int(clock() * 1_000_000)


def _seed(cache: Any, namespace: str) -> int:
    with _highest_lock:
        return max(now_us(), highest(cache).get(namespace, 0) + 1)


def floor(cache: Any, namespace: str) -> int:
    """The highest generation this process has seen of ``namespace`` (0: none yet)."""
    return highest(cache).get(namespace, 0)


class Seed(NamedTuple):
    """A generation to store where none is (``SET NX``): its key, its value, how long it lives
    (seconds; ``None``: until it goes)."""

    key: str
    value: int
    lives: int | None


#: ``get_generation``'s ``read``: the generation has not been read yet.
_UNREAD: Any = object()


def get_generation(namespace: str, *, alias: str = "default", read: Any = _UNREAD) -> int:
    """The namespace's current generation, seeding it from the clock when missing.

    When the cache cannot store it (an outage), a fresh clock value is returned: every request
    then misses, which is slow but never stale. A generation below one this process has seen
    (the cache went back in time) is replaced by a new one first. ``read``: what the caller
    read under its key already (``None``: nothing), not read again.
    """
    cache = caches[alias]
    key = generation_key(namespace)
    value = cache.get(key) if read is _UNREAD else read
    if value is not None and not isinstance(value, int):
        logger.warning("the generation of %r is not a number: starting a new one", namespace)
        cache.delete(key)
        value = None
    if value is not None and value < floor(cache, namespace):
        logger.warning(
            "the cache's generation of %r went back (%d, this process has seen %d): a failover "
            "or a restore; starting a new one",
            namespace,
            value,
            floor(cache, namespace),
        )
        bumped = bump_generation(namespace, alias=alias)
        return bumped if bumped is not None else _seed(cache, namespace)
    if value is None:
        lives = PAGE_GENERATION_TTL if is_page_scope(namespace) else None
        seed = _seed(cache, namespace)
        added = cache.add(key, seed, timeout=lives)
        if added:
            # The seed is the generation as of now (a bump after it moves past it): no need
            # to read back what was just written.
            return _seen(cache, namespace, seed)
        if cache.get(key) is None and cache.has_key(key):
            # The key is there but cannot be read (something else wrote it): start again. (An
            # unreachable or refusing cache answers neither: nothing more is asked of it.)
            logger.warning("the generation of %r cannot be read: starting a new one", namespace)
            cache.delete(key)
            cache.add(key, _seed(cache, namespace), timeout=lives)
        value = cache.get(key)
        if value is None:
            return _seed(cache, namespace)
    return _seen(cache, namespace, int(value))


def get_generations(namespaces: Sequence[str], *, alias: str = "default") -> dict[str, int]:
    """``get_generation`` of several namespaces found missing (the generations of objects a
    page shows, never changed since the cache started): seeded together, in one round trip
    where the backend can (``add_many``), each answered as ``get_generation`` answers."""
    cache = caches[alias]
    add_many = getattr(cache, "add_many", None)
    if add_many is None or not namespaces:
        return {namespace: get_generation(namespace, alias=alias) for namespace in namespaces}
    lives = {PAGE_GENERATION_TTL if is_page_scope(namespace) else None for namespace in namespaces}
    if len(lives) > 1:
        raise ValueError("generations that live apart are seeded apart")
    seeds = {namespace: _seed(cache, namespace) for namespace in namespaces}
    held = add_many({generation_key(name): seed for name, seed in seeds.items()}, lives.pop())
    if not held:
        # An unreachable cache (or nothing it holds can be read): fresh seeds, as
        # ``get_generation`` answers then — every value keyed by them is a miss, never stale.
        return seeds
    out = {}
    for namespace in namespaces:
        value = held.get(generation_key(namespace))
        if type(value) is int and value >= floor(cache, namespace):
            out[namespace] = _seen(cache, namespace, value)
        else:  # unreadable, gone back, or an unreachable cache: the careful way
            out[namespace] = get_generation(namespace, alias=alias)
    return out


#: What a value of a namespace keyed by object is about (``generation_scopes``).
ABOUT_ALL, ABOUT_LAYOUT, ABOUT_PAGE, ABOUT_OBJECT = "all", "layout", "page", "object"


def generation_scopes(namespace: str, about: str = ABOUT_ALL, detail: Any = None) -> list[str]:
    """The generations read after the namespace's own for a value of ``namespace`` (in a
    namespace keyed by object: ``changes.keyed_by_object``; none otherwise), by what it is
    about (docs/design.md, "Invariants", 6):

    - ``ABOUT_OBJECT``: one object (``detail``: its primary key as text) — its generation;
    - ``ABOUT_PAGE``: one list page (``detail``: its own scope, ``keys.page_scope``) — the
      lists' layout and the page's, which changes to the objects it shows bump;
    - ``ABOUT_LAYOUT``: which objects the lists hold, in which order (counts) — the layout;
    - ``ABOUT_ALL``: anything else — the collections', which every change bumps.

    A namespace whose changes do not say whether they move objects (``changes.has_layout``)
    keys pages and counts by the collections'."""
    if not changes.keyed_by_object(namespace):
        return []
    if about == ABOUT_OBJECT and detail is not None:
        return [object_scope(namespace, detail)]
    if about in (ABOUT_PAGE, ABOUT_LAYOUT) and changes.has_layout(namespace):
        if about == ABOUT_PAGE and detail is not None:
            return [layout_scope(namespace), detail]
        return [layout_scope(namespace)]
    return [collection_scope(namespace)]


def generation_of(
    namespace: str,
    scopes: Sequence[str] = (),
    *,
    alias: str = "default",
    known: Mapping[str, Any] | None = None,
) -> int | str:
    """The generation a value of ``namespace`` is keyed by, read before the value is computed:
    the namespace's own, followed by those of ``scopes`` (``generation_scopes``).

    ``known``: what this request has read already under generation keys, before anything
    was computed (key -> value, ``None`` for a key found missing): not read again; a generation
    found missing is seeded, one below what this process has seen replaced (``went_back``)."""
    known = known or {}
    marks = highest(caches[alias])
    values = [
        value
        if _current(value := known.get(generation_key(part), _UNREAD), part, marks)
        else get_generation(part, alias=alias, read=value)
        for part in [namespace, *scopes]
    ]
    return values[0] if not scopes else ".".join(str(value) for value in values)


def known_generation(
    namespace: str,
    scopes: Sequence[str],
    known: Mapping[str, Any],
    *,
    alias: str = "default",
) -> int | str | None:
    """``generation_of`` from what was read already (``known``) only: ``None`` when one of
    the generations is not there (it would be read, or seeded)."""
    marks = highest(caches[alias])
    values = []
    for part in [namespace, *scopes]:
        value = known.get(generation_key(part))
        if not _current(value, part, marks):
            return None
        values.append(value)
    return values[0] if not scopes else ".".join(str(value) for value in values)


def proposed_generation(
    namespace: str,
    scopes: Sequence[str],
    known: Mapping[str, Any],
    missing: str,
    *,
    alias: str = "default",
) -> tuple[int | str, Seed] | None:
    """``generation_of`` when, of its generations, only ``missing``'s was found missing (in
    ``known``): the generation it gives once ``missing`` is seeded with a seed proposed here,
    and that seed, for the caller to store with what it asks of the cache next (``lookup``) —
    the generation is the caller's only if the seed was stored (``accept_seed``). ``None`` when
    another of the generations is not in ``known``."""
    seed = Seed(
        generation_key(missing),
        _seed(caches[alias], missing),
        PAGE_GENERATION_TTL if is_page_scope(missing) else None,
    )
    # (The seed is above what this process has seen: ``known_generation`` takes it.)
    generation = known_generation(namespace, scopes, {**known, seed.key: seed.value}, alias=alias)
    return None if generation is None else (generation, seed)


def accept_seed(seed: Seed, namespace: str, *, alias: str = "default") -> None:
    """``seed`` (``proposed_generation``'s, for ``namespace``) was stored: the generation is
    the one it proposed, as ``get_generation`` answers a seed it added."""
    _seen(caches[alias], namespace, seed.value)


def _current(value: Any, scope: str, marks: Mapping[str, int]) -> bool:
    """Whether ``value``, read under ``scope``'s generation key, is a generation this process
    may use: not one below what it has seen (``went_back``)."""
    return type(value) is int and value >= marks.get(scope, 0)


def advance(steps: Sequence[Step], *, alias: str = "default") -> list[int] | None:
    """Move generations on, atomically for each namespace: ``WRITE`` always bumps (a write just
    committed) and records at least ``version``; ``SYNC`` bumps only when the recorded version
    differs from ``version`` (answering ``AHEAD`` when it is newer) and records it; ``RESET``
    bumps and records ``version`` whatever was recorded.

    ``OBJECTS`` bumps the collections and the objects' generations when the cache has taken in
    the step's ``since``, or a version after it but before the step's (``OBJECTS_BUMPED``), and
    is a ``SYNC`` otherwise.

    Returns, per step, the new generation or ``UNCHANGED`` / ``AHEAD`` / ``OBJECTS_BUMPED``;
    ``None`` when the cache could not be reached (nothing is known to have changed).
    """
    cache = caches[alias]
    steps = [step._replace(floor=max(step.floor, floor(cache, step.namespace))) for step in steps]
    move = getattr(cache, "advance_generations", None)
    results = _advance_plainly(cache, steps) if move is None else move(steps, now_us())
    if results is None:
        return None
    for step, result in zip(steps, results, strict=True):
        if result > 0:
            _seen(cache, step.namespace, result)
    return results


def bump_generation(
    namespace: str, *, alias: str = "default", version: int | None = None
) -> int | None:
    """Make every entry of ``namespace`` unreachable (recording ``version`` of the database).

    Returns the new generation, or ``None`` when the cache could not be reached (a sweep applies
    the change later: the database still holds its version).
    """
    results = bump_generations({namespace: version}, alias=alias)
    return results[namespace]


def bump_generations(
    versions: Mapping[str, int | None], *, alias: str = "default"
) -> dict[str, int | None]:
    """``bump_generation`` for several namespaces, in one call to the cache."""
    return advance_after_write([Step(name, version) for name, version in versions.items()])


def advance_after_write(steps: Sequence[Step], *, alias: str = "default") -> dict[str, int | None]:
    """``advance`` of the steps of a write that has committed: it must not fail now. Per
    namespace, ``advance``'s answer, or ``None`` when the cache could not take it (the old
    generation is then forgotten, which invalidates as well; the sweeps apply the change)."""
    names = [step.namespace for step in steps]
    try:
        results = advance(steps, alias=alias)
    except Exception:
        # A backend error that is not an outage. The write this follows has committed and must
        # not fail now: forget the generations, which invalidates as well.
        logger.exception("could not bump the generations of %s", ", ".join(names))
        results = None
    if results is None:
        cache = caches[alias]
        for name in names:
            _forget(cache, generation_key(name))
        return dict.fromkeys(names)
    return dict(zip(names, results, strict=True))


def _forget(cache: Any, key: str) -> None:
    """A bump that did not go through: at least make the old generation unreachable.

    A Redis that is full with ``noeviction`` refuses writes (the bump) but still accepts a
    delete, which frees memory. With the generation key gone, every process seeds a new one
    from the clock (or, while nothing can be stored, computes every request afresh), so none
    serves an entry stored before this write. The sweep still applies the change later.
    """
    cache.delete(key)


def taken_in(recorded: Any, version: int | None, *, generation: Any) -> int | None:
    """For a ``SYNC`` step: ``UNCHANGED`` when the cache has taken in ``version`` already (or
    has neither a recorded version nor a generation: nothing is reachable that the version
    could have changed, and the caller records it), ``AHEAD`` when it has taken in a newer one,
    ``None`` when the step must bump. Nothing recorded counts as version 0, the version of a
    namespace nothing has changed yet."""
    known = type(recorded) is int
    recorded = recorded if known else 0
    version = version or 0
    if recorded == version:
        return UNCHANGED
    if recorded > version:
        return AHEAD
    return UNCHANGED if not known and generation is None else None


def _advance_plainly(cache: Any, steps: Iterable[Step]) -> list[int] | None:
    """``advance`` on a cache of Django's own (tests, other configurations): not atomic, which
    is all such a cache offers."""
    now = now_us()

    def put(key: str, value: Any) -> None:
        cache.set(key, value, timeout=None)

    return [apply_step(step, now, cache.get, put) for step in steps]


def apply_step(
    step: Step,
    now: int,
    get: Callable[[str], Any],
    put: Callable[[str, Any], Any],
    pages: Callable[[str, Sequence[str]], list[str] | None] | None = None,
    changed: Callable[[str, tuple[int, Any], Sequence[str]], None] | None = None,
) -> int:
    """``advance`` of one step on a cache read with ``get`` and written with ``put`` (key,
    value: kept until changed), by a caller that makes it atomic (a lock) if it can; the Redis
    script does the same on the server. ``pages``: the generation keys of the pages that show
    the given objects of a namespace, forgotten as they are given (``None``: not known, and the
    layout is bumped instead); ``changed``: notes a change in place (the collections'
    generation it moved to and from, the objects), for the pages computed meanwhile
    (``store_page``)."""
    key, recorded_key = generation_key(step.namespace), applied_key(step.namespace)
    recorded = get(recorded_key)
    current = get(key)

    def bump(key: str, floor: int = 0) -> int:
        value = get(key)
        value = max((value if type(value) is int else 0) + 1, now, floor + 1)
        put(key, value)
        return value

    if (
        step.mode == OBJECTS
        and type(recorded) is int
        and step.since is not None
        and step.version is not None
        and step.since <= recorded < step.version
    ):
        # The notes read cover every version after ``since``: those the cache has not taken
        # in yet among them (another process may have taken in the first few meanwhile).
        before = get(generation_key(collection_scope(step.namespace)))
        bumped = [bump(generation_key(scope)) for scope in step.scopes()]
        collections = bumped[0]  # (the collections' come first: ``Step.scopes``)
        listed = step.listed()
        if listed:
            if changed is not None:
                changed(step.namespace, (collections, before), listed)
            shown = pages(step.namespace, listed) if pages is not None else None
            if shown is None:
                bump(generation_key(layout_scope(step.namespace)))
            for page in shown or ():
                bump(page)
        put(recorded_key, step.version)
        return OBJECTS_BUMPED
    if step.mode in (SYNC, OBJECTS):
        taken = taken_in(recorded, step.version, generation=current)
        if taken is not None:
            if recorded is None:
                put(recorded_key, step.version or 0)
            return taken
    value = bump(key, step.floor)
    if step.version is not None:
        if step.mode == WRITE and isinstance(recorded, int):
            put(recorded_key, max(recorded, step.version))
        else:
            put(recorded_key, step.version)
    return value
