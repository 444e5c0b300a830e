"""The small API the rest of the service uses to talk to the cache."""

from __future__ import annotations

import datetime
import functools
import logging
import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.core.cache import caches

from . import changes, glob, sync
from .backends import InstrumentedCacheMixin
from .generations import (
    ABOUT_ALL,
    bump_generation,
    bump_generations,
    generation_of,
    generation_scopes,
    get_generations,
    highest,
    known_generation,
)
from .keys import (
    PURGE_NAMESPACE,
    RATE_NAMESPACE,
    generation_key,
    namespace_of,
    object_value_keys,
    value_key,
)
from .namespaces import _registry, kind_of, response_namespaces
from .rates import RateCheck, Verdict
from .stats import MINUTE_FIELDS, summarise

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

MAX_PATTERN_LENGTH = 200
_MISSING = object()


class InvalidPattern(ValueError):
    """An invalidation pattern that is empty, too broad, too long or malformed."""


def backend() -> Any:
    return caches["default"]


def default_timeout() -> int | None:
    return backend().default_timeout


def reachable() -> bool:
    """Whether the cache takes calls now (``backends.InstrumentedCacheMixin.reachable``): what
    is worth computing to be remembered is not, while it does not."""
    reachable = getattr(backend(), "reachable", None)  # (a plain Django cache: always)
    return reachable is None or reachable()


# Invalidation ------------------------------------------------------------------------------


def invalidate(*names: str) -> dict[str, int | None]:
    """Bump the generation of each namespace now: O(1) whatever the number of cached keys."""
    bumped = bump_generations(dict.fromkeys(names))
    for namespace, generation in bumped.items():
        if generation is None:
            logger.warning("could not invalidate namespace %s: cache unavailable", namespace)
    return bumped


def invalidate_on_commit(*names: str) -> None:
    """Invalidate ``names`` once the current transaction commits (at once if there is none),
    recording the database's versions of them (``sync``): the sweeps of every process apply a
    bump the cache missed."""
    sync.invalidate_on_commit(names)


def validate_pattern(pattern: str) -> str:
    """Return the pattern stripped, or raise ``InvalidPattern`` saying what is wrong with it.

    A pattern is a glob in Redis's dialect, on both backends (``glob``), that starts with the
    namespace it applies to, written out, and a ``:`` (``workstations:*``): so no spelling of
    it (``*``, ``*:*``, ``[^~]*``) can reach every key, and the cache layer's own namespaces
    (``_gen``, ``_lock``...) are reached only by a pattern that names them. The login
    throttles' histories (``throttle``) are never reached: a cache manager must not be able
    to wipe a brute-force attempt's record (docs/design.md, "Keys").
    """
    if not isinstance(pattern, str):
        raise InvalidPattern("The pattern must be a string.")
    pattern = pattern.strip()
    if not pattern:
        raise InvalidPattern("The pattern is empty.")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPattern(f"The pattern is longer than {MAX_PATTERN_LENGTH} characters.")
    if any(unicodedata.category(ch).startswith("C") or ch.isspace() for ch in pattern):
        raise InvalidPattern("The pattern contains control characters or whitespace.")
    if not pattern.strip("*?:"):
        raise InvalidPattern(
            "The pattern matches every key; use 'clear' to remove all of this service's keys."
        )
    namespace, colon, _ = pattern.partition(":")
    if not colon or not namespace or any(ch in glob.SPECIAL for ch in namespace):
        raise InvalidPattern(
            "The pattern must start with the namespace it applies to, written out, and a ':' "
            f"(for example 'workstations:*'): {pattern!r} could reach the keys of every "
            "namespace."
        )
    if namespace == RATE_NAMESPACE:
        raise InvalidPattern(
            f"The '{RATE_NAMESPACE}' namespace holds the throttles' request histories (login "
            "attempts included): no pattern may remove them."
        )
    try:
        glob.parse(pattern)
    except glob.GlobError as exc:
        raise InvalidPattern(str(exc)) from exc
    return pattern


def invalidate_pattern(pattern: str, *, dry_run: bool = False) -> int:
    """Delete this service's entries whose logical key matches the glob ``pattern``.

    Returns how many keys matched (and, unless ``dry_run``, were deleted). On Redis this walks
    the key space with SCAN and deletes with UNLINK in chunks; the key prefix is always applied.
    """
    pattern = validate_pattern(pattern)
    removed = backend().delete_logical(pattern, dry_run=dry_run)
    if not dry_run:
        # Every process drops its copies (``hot``): they read this epoch with the generations.
        # Whatever matched here: a copy may outlive the entry it was made from.
        if bump_generation(PURGE_NAMESPACE) is None:
            logger.warning("could not reach the purge epoch: other processes keep their copies")
        backend().hot.clear()
    return removed


def clear() -> None:
    """Remove every key of this service (never ``FLUSHDB``); statistics are kept.

    The generations go too, so every key changes, and with them the copies of every process
    (``hot``): none can match a key again.
    """
    backend().clear()
    backend().hot.clear()


# Statistics --------------------------------------------------------------------------------


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).isoformat()


def key_counts(limit: int = 100_000) -> dict[str, int] | None:
    """Number of live keys per namespace (None if the backend cannot tell)."""
    cache = backend()
    counts: Counter[str] = Counter()
    try:
        for n, key in enumerate(cache.logical_keys("*")):
            if n >= limit:
                break
            counts[namespace_of(key)] += 1
    except Exception:  # an outage: the figures are optional
        logger.warning("could not count cache keys", exc_info=True)
        return None
    return dict(counts)


def stats(*, include_keys: bool = True) -> dict[str, Any]:
    """The figures of the console and the staff API (docs/design.md, "Invariants", 7).

    ``responses``: the response cache — responses answered from it (``hits``) and computed
    (``misses``) in the namespaces that hold responses, and their ``hit_rate``: the figure to
    judge the cache by. ``bookkeeping``: lookups of everything else (token entries, generations,
    locks, rates), apart. ``namespaces``: every namespace's counters, hit rate and ``kind``;
    ``totals``: every counter added up (``time_us`` is the total time spent in the backend,
    ``calls`` its round trips). ``history``: HTTP requests and responses per minute. ``scope``:
    ``fleet`` when the counters are every process's (Redis), ``process`` when this one's.
    """
    cache = backend()
    if not isinstance(cache, InstrumentedCacheMixin):
        return {"instrumented": False, "backend": type(cache).__name__}
    snapshot = cache.stats_snapshot()
    per_ns = {ns: dict(c) for ns, c in snapshot["per_namespace"].items()}
    for name in _registry:
        per_ns.setdefault(name, {})
    keys = key_counts() if include_keys else None
    for name in keys or {}:  # every key is shown, counted or not (``_pages``, say)
        per_ns.setdefault(name, {})
    summary = summarise(per_ns, {ns: kind_of(ns) for ns in per_ns})
    for ns, row in summary["namespaces"].items():
        row["keys"] = None if keys is None else keys.get(ns, 0)
        row["description"] = _registry[ns].description if ns in _registry else ""
        row["internal"] = ns.startswith("_")
    history = [
        {"minute": _iso(minute * 60), **{name: counts.get(name, 0) for name in MINUTE_FIELDS}}
        for minute, counts in sorted(snapshot["history"].items())
    ]
    return {
        "breaker": cache.breaker_state(),
        "instrumented": True,
        "backend": cache.server_info().get("backend"),
        "scope": cache.stats_scope,
        "key_prefix": cache.key_prefix,
        "default_ttl": cache.default_timeout,
        "reset_at": _iso(snapshot["reset_at"]),
        "evictions": snapshot["evictions"],
        "responses": {**summary["responses"], "namespaces": response_namespaces()},
        "bookkeeping": summary["bookkeeping"],
        "namespaces": summary["namespaces"],
        "totals": summary["totals"],
        "history": history,
        "server": cache.server_info(),
        # This process's copies for warm hits (``hot``); their hits are counted as hits.
        "hot_copies": cache.hot.usage(),
        "unavailable": bool(snapshot.get("unavailable")),
    }


def count_request() -> None:
    """Count one HTTP request in the per-minute history (the request middleware calls it)."""
    cache = backend()
    if isinstance(cache, InstrumentedCacheMixin):
        cache.count_request()


def reset_stats() -> None:
    cache = backend()
    if isinstance(cache, InstrumentedCacheMixin):
        cache.reset_stats()


# Request rates ----------------------------------------------------------------------------


def rate_hits(checks: list[RateCheck]) -> list[Verdict]:
    """Count one request against each rate, where it passes (``rates``); fails open."""
    cache = backend()
    if isinstance(cache, InstrumentedCacheMixin):
        return cache.rate_hits(checks)
    return [_history_hit(cache, check) for check in checks]


def _history_hit(cache: Any, check: RateCheck) -> Verdict:
    """DRF's own way, for a cache of Django's own: a list of timestamps read and written back."""
    history = cache.get(check.key)
    history = [t for t in history if t > check.now - check.duration] if history else []
    if len(history) >= check.limit:
        return Verdict(False, len(history), history[-1])
    history.insert(0, check.now)
    cache.set(check.key, history, check.duration)
    return Verdict(True, len(history), history[-1])


# Warming and cached functions ------------------------------------------------------------


def warm() -> dict[str, int]:
    """Run every registered warmer; returns how many entries each namespace filled."""
    filled: dict[str, int] = {}
    for name, entry in sorted(_registry.items()):
        for warmer in entry.warmers:
            try:
                filled[name] = filled.get(name, 0) + int(warmer() or 0)
            except Exception:
                logger.exception("warming namespace %s failed", name)
    return filled


def jittered(timeout: int | None) -> int | None:
    """A TTL stretched by up to 10 % so entries stored together do not expire together."""
    if timeout is None:
        return None
    return int(timeout * (1 + random.random() * getattr(settings, "CACHE_TTL_JITTER", 0.1)))


def remember(
    namespace: str,
    parts: tuple,
    compute: Callable[[], R],
    *,
    ttl: int | None = None,
    internal: bool = False,
    about: str = ABOUT_ALL,
    known: Mapping[str, Any] | None = None,
) -> R:
    """``compute()``'s value, cached under the namespace's generation (and, in a namespace
    keyed by object, the generation of what it is ``about``: ``generations.generation_scopes``;
    the collections' unless told) and a hash of ``parts``.

    The generation is read before computing, so a value computed while a write commits is
    stored where nobody looks (docs/design.md, "Invariants", 2). ``None``, ``0`` and ``[]``
    are cached like any other value. ``internal`` values (the cache layer's own, such as list
    counts) are kept under ``_memo``: counted apart from the namespace's responses and left
    alone by patterns that do not name them.

    The value is stored as plain data (``backends.SERIALIZER``: None, booleans, numbers,
    strings, bytes, lists, dicts with string keys; a tuple comes back as a list): anything else
    raises when stored, on both backends (docs/design.md, "Invariants", 4).

    ``known``: what the caller read before computing anything (a view's warm read:
    ``CachedResponseMixin.cache_generations_read``), not read again: generations, and the value
    itself when it was read ahead (``remembered_key``; ``None``: missing — a value of ``None``
    read ahead is computed again).
    """
    cache = backend()
    generation = generation_of(namespace, generation_scopes(namespace, about), known=known)
    key = value_key(namespace, generation, parts, internal=internal)
    if known is not None and key in known:
        value = _MISSING if known[key] is None else known[key]
    else:
        value = cache.get(key, _MISSING)
    if value is not _MISSING:
        return value
    value = compute()
    _set_later(cache, {key: value}, jittered(ttl if ttl is not None else default_timeout()))
    return value


def _set_later(cache: Any, data: dict[str, Any], timeout: int | None) -> None:
    """Store what was computed on the way to a response with that response, when one is being
    computed (``writes_deferred``: one round trip for all); at once otherwise."""
    later = getattr(cache, "set_later", None)
    if later is None:  # (a cache of Django's own)
        cache.set_many(data, timeout)
    else:
        later(data, timeout)


def remembered_key(
    namespace: str,
    parts: tuple,
    *,
    internal: bool = False,
    about: str = ABOUT_ALL,
    known: Mapping[str, Any] | None,
) -> str | None:
    """The key ``remember`` keeps this value under, made from the generations in ``known``
    (read already) only: ``None`` when one of them is not there. What a view reads ahead with
    its response's lookup (``CachedResponseMixin.cache_read_ahead``)."""
    if not known:
        return None
    generation = known_generation(namespace, generation_scopes(namespace, about), known)
    if generation is None:
        return None
    return value_key(namespace, generation, parts, internal=internal)


#: What a value ``remember_objects`` stored reads back as: its generation and the value.
_PAIRS = (list, tuple)


def remember_objects(
    namespace: str,
    ids: Sequence[Any],
    parts: tuple,
    compute: Callable[[list[Any]], Mapping[Any, Any]],
    *,
    ttl: int | None = None,
    known: Mapping[str, Any] | None = None,
) -> list[Any]:
    """One value per object of ``ids`` (its primary key as the database notes it), in their
    order: each cached under the namespace's generation and a hash of ``parts`` and the id, and
    good while the object's own generation (``keys.object_scope``, which every change of the
    object bumps) is the one it was computed under. ``compute(missing)`` gives the values of
    the objects that have none cached (id -> value), computed after their generations were
    read, and they are stored; one round trip reads the generations and values of all. An
    object ``compute`` gives no value for (gone meanwhile) is ``None`` in the answer.

    In a namespace not keyed by object (``changes.keyed_by_object``) nothing is cached:
    ``compute`` is asked for every object. A value must be plain data (``remember``);
    ``known``: generations the caller read before computing anything (``remember``).
    """
    ids = list(ids)
    if not ids:
        return []
    if not changes.keyed_by_object(namespace):
        computed = compute(ids)
        return [computed.get(object_id) for object_id in ids]
    cache = backend()
    generation = generation_of(namespace, known=known)
    scopes, value_keys = object_value_keys(namespace, generation, parts, ids)
    object_keys = [generation_key(scope) for scope in scopes]
    # (``read``: the backend's leanest way to read many keys in one round trip.)
    read = getattr(cache, "read", None)
    keys = [*object_keys, *value_keys]
    found = read(keys)[0] if read is not None else cache.get_many(keys)
    marks = highest(cache)
    out: list[Any] = []
    missing: list[tuple[int, Any, int]] = []  # (position, id, object generation)
    for position, (object_key, key) in enumerate(zip(object_keys, value_keys, strict=True)):
        current = found.get(object_key)
        if type(current) is int:
            if current < marks.get(scopes[position], 0):
                current = None  # below what this process has seen: the cache went back
            else:
                stored = found.get(key)
                # (a list, as the serializer gives a pair back; a tuple from pickle)
                if type(stored) in _PAIRS and len(stored) == 2 and stored[0] == current:
                    out.append(stored[1])
                    continue
        out.append(None)
        missing.append((position, ids[position], current))
    unseen = [scopes[position] for position, _, current in missing if type(current) is not int]
    if unseen:
        # Never changed since the cache started (or forgotten): seeded, as any generation.
        seeded = get_generations(unseen)
        missing = [
            (position, object_id, current if type(current) is int else seeded[scopes[position]])
            for position, object_id, current in missing
        ]
    if missing:
        computed = compute([object_id for _, object_id, _ in missing])
        timeout = jittered(ttl if ttl is not None else default_timeout())
        stored_now = {}
        for position, object_id, current in missing:
            out[position] = value = computed.get(object_id)
            if value is not None:
                # A tuple: with a value of bytes (a rendered row), immutable as a whole, which
                # the local-memory cache keeps as it is rather than encoding it and decoding it
                # on every read (a cold page reads fifty).
                stored_now[value_keys[position]] = (current, value)
        if stored_now:
            _set_later(cache, stored_now, timeout)
    return out


def cached(namespace: str, *, ttl: int | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Cache a function's result under ``namespace``'s generation, keyed by its arguments.

    A write that invalidates the namespace makes every cached result unreachable. A result of
    ``None``, ``0`` or ``[]`` is cached like any other; it must be plain data (``remember``).
    """

    def decorator(fn: Callable[P, R]) -> Callable[P, R]:
        name = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            parts = ("fn", name, args, sorted(kwargs.items()))
            return remember(namespace, parts, lambda: fn(*args, **kwargs), ttl=ttl)

        return wrapper

    return decorator
