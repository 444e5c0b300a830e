"""Where django-redis's own suite passes on its backend and fails on ours, by design, and why.

A test listed here must differ between the two backends in every configuration it runs in; one
that stops differing fails the run (the list is stale), and so does a difference not listed.
Names are upstream's test ids under ``tests/``, without the configuration: a test parametrized by
upstream's ``cache_settings`` is expected in every configuration ``runner`` runs — unless the
name ends with ``[configuration]``: then it is expected in that configuration only.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Upstream test → why it cannot pass on our backend.
DIFFERENCES: dict[str, str] = {
    "test_cache_options.py::test_custom_key_function": (
        "the test expects the whole database to hold exactly its two keys, unprefixed; our "
        'backend needs a KEY_PREFIX, and never runs FLUSHDB (docs/design.md, "Invariants", 6): '
        "clear() removes this cache's keys only, so other prefixes' keys stay, and so does the "
        "fleet's statistics hash (<prefix>#stats). Its own keys are found and deleted through "
        "the custom key function (tests/performance/test_key_functions.py)"
    ),
    "test_cache_options.py::test_get_django_omit_exceptions_priority_2": (
        "with IGNORE_EXCEPTIONS off the test expects an unreachable Redis to raise; ours answers "
        "a miss: the cache is an optimisation, never a dependency, so every call fails open "
        'through the circuit breaker (docs/design.md, "Invariants", 4)'
    ),
    # The configurations that name no serializer: django-redis pickles, ours stores MessagePack
    # (plain data, never pickles: docs/design.md, "Invariants", 4), which gives an IntEnum back
    # as the int it is. The json and msgpack configurations agree with ours.
    **{
        f"test_backend.py::TestDjangoRedisCache::test_intenum[{config}]": (
            "with no SERIALIZER configured our backend stores MessagePack, never pickles (a "
            "Redis may be shared, and a pickle runs code when read): an IntEnum comes back as "
            "its int, as it does from django-redis's own msgpack and json configurations"
        )
        for config in ("sqlite", "sqlite_gzip")
    },
}

#: Upstream tests not parametrized by configuration: they run once per run, under their name.
UNPARAMETRIZED = {"test_cache_options.py::test_get_django_omit_exceptions_priority_2"}


def expected_for(configs: Iterable[str]) -> dict[str, str]:
    """The test ids that must differ when ``configs`` run, each with its reason."""
    expected = {}
    configs = list(configs)
    for name, reason in DIFFERENCES.items():
        if name.endswith("]"):
            if name[name.rindex("[") + 1 : -1] in configs:
                expected[name] = reason
        elif name in UNPARAMETRIZED:
            expected[name] = reason
        else:
            expected.update({f"{name}[{config}]": reason for config in configs})
    return expected
