"""The namespaces of cached entries: what each holds, how to warm it, which tables it shows.

Each part of the service registers its namespaces (``register_namespace``, from its app's
``ready``); the cache layer knows nothing else of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from django.db.models import Model

from . import changes


class UnknownNamespace(ValueError):
    """A namespace no part of the service registered."""


@dataclass
class Namespace:
    name: str
    description: str = ""
    warmers: list[Callable[[], int]] = field(default_factory=list)
    #: Whether it holds responses (``responses.CachedResponseMixin``): its hits and misses are
    #: then responses, and they make the response cache's hit rate.
    responses: bool = False


#: What a namespace holds, as the statistics tell them apart (docs/design.md, "Invariants", 7).
RESPONSES, BOOKKEEPING, INTERNAL = "responses", "bookkeeping", "internal"


_registry: dict[str, Namespace] = {}


def register_namespace(
    name: str,
    *,
    description: str = "",
    warmer: Callable[[], int] | None = None,
    tables: Iterable[type[Model]] = (),
    objects: Mapping[type[Model], str] | None = None,
    shown: Mapping[type[Model], Iterable[str]] | None = None,
    listed: tuple[type[Model], Iterable[str]] | None = None,
    responses: bool = False,
) -> None:
    """Declare a namespace of cached entries: optionally how to warm it, and the models whose
    tables its responses show — any committed change to them, by any path, invalidates it
    (``changes``: counted by database triggers, applied by ``sync``). ``objects``: the models
    among them whose rows each belong to one object of the namespace, and the field that names
    it: a change to such a row invalidates that object's responses and the namespace's
    collections only (``CachedResponseMixin.cache_object_id``). ``shown``: of a model, the only
    fields the namespace's responses show (a count per location shows where each workstation
    is, nothing else of it): an update of its other fields does not invalidate the namespace.
    ``listed``: the model (among ``objects``) the namespace's lists list, and the fields that
    decide which of its objects a list holds and in which order: a change of another field
    invalidates only the list pages that show the object (``ABOUT_PAGE``).
    ``responses``: it holds
    API responses, whose hit rate is the one the console and Prometheus lead with; token
    lookups and other bookkeeping are counted apart."""
    if not name or ":" in name or name.startswith("_"):
        raise ValueError(f"Invalid namespace name {name!r}.")
    changes.watch(name, tables, objects, shown, listed)
    entry = _registry.setdefault(name, Namespace(name, description))
    if description:
        entry.description = description
    if responses:
        entry.responses = True
    if warmer is not None and warmer not in entry.warmers:
        entry.warmers.append(warmer)


def namespaces() -> dict[str, str]:
    """Registered namespaces and what they hold."""
    return {name: ns.description for name, ns in sorted(_registry.items())}


def kind_of(namespace: str) -> str:
    """``internal`` (the cache layer's own, ``_``), ``responses`` (registered as holding
    responses) or ``bookkeeping`` (token lookups, request rates, anything else)."""
    if namespace.startswith("_"):
        return INTERNAL
    entry = _registry.get(namespace)
    return RESPONSES if entry is not None and entry.responses else BOOKKEEPING


def response_namespaces() -> list[str]:
    """The registered namespaces that hold responses, by name."""
    return sorted(name for name, entry in _registry.items() if entry.responses)


def validate_namespace(namespace: str) -> str:
    namespace = (namespace or "").strip()
    if namespace not in _registry:
        known = ", ".join(sorted(_registry)) or "none"
        raise UnknownNamespace(f"Unknown namespace {namespace!r}; known namespaces: {known}.")
    return namespace
