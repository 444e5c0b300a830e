"""What the database says changed: a version per cached namespace, counted by triggers.

Any committed change to a table a namespace depends on must reach every cache, whoever made it:
the service, the admin, a ``manage.py shell``, ``QuerySet.update()``, raw SQL, another
application on the same database. Django's signals see only the first few of those, so the
database counts them itself: a trigger on each watched table adds one to the version of every
namespace that depends on it (``NamespaceVersion``), in the same transaction as the change. A
change that rolls back counts nothing; one that commits cannot be missed.

Server processes compare these versions with the ones their cache last applied and bump the
generations that are behind (``sync``). One row per namespace, updated in place: on PostgreSQL,
concurrent writers to tables of one namespace queue on that row until they commit (a
transaction counts once per namespace, however many rows it writes), which keeps versions in
commit order — a log with a sequence would not be (a transaction can commit after one that
took a later number).

The triggers are (re)installed after every ``migrate`` (``install_triggers``, from
``post_migrate``): SQLite drops a table's triggers when a migration rebuilds the table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import F, Model

logger = logging.getLogger(__name__)

#: Every trigger this module installs starts with this; the others are never touched.
TRIGGER_PREFIX = "wsinv_chg_"
_FUNCTION = "wsinv_note_change"
_VENDORS = frozenset({"sqlite", "postgresql"})

#: db_table -> the namespaces its changes invalidate.
_watched: dict[str, set[str]] = {}
#: db_table -> the models that declared it (for column names), one per table.
_models: dict[str, type[Model]] = {}
#: db_table -> columns whose change alone changes nothing cached (a user's last login).
_ignored: dict[str, set[str]] = {}


def watch(namespace: str, models: Iterable[type[Model]]) -> None:
    """Count every committed change to ``models``' tables (and their many-to-many tables, if
    listed) as a change of ``namespace``."""
    for model in models:
        table = model._meta.db_table
        _watched.setdefault(table, set()).add(namespace)
        _models.setdefault(table, model)


def ignore_columns(model: type[Model], *fields: str) -> None:
    """Updates that change only these fields of ``model`` count as no change."""
    columns = {model._meta.get_field(name).column for name in fields}
    _ignored.setdefault(model._meta.db_table, set()).update(columns)


def watched() -> dict[str, set[str]]:
    """The watched tables and the namespaces each one invalidates."""
    return {table: set(names) for table, names in _watched.items()}


def namespaces() -> set[str]:
    """Every namespace some table's changes invalidate."""
    return set().union(*_watched.values()) if _watched else set()


def _model():
    from performance.models import NamespaceVersion

    return NamespaceVersion


# Reading and counting ---------------------------------------------------------------------


def versions(
    names: Iterable[str] | None = None, *, using: str = DEFAULT_DB_ALIAS
) -> dict[str, int]:
    """The committed version of each namespace (0 for one nothing has changed yet)."""
    rows = _model().objects.using(using)
    wanted = None if names is None else list(dict.fromkeys(names))
    if wanted is not None:
        rows = rows.filter(namespace__in=wanted)
    found = dict(rows.values_list("namespace", "version"))
    for name in wanted if wanted is not None else namespaces():
        found.setdefault(name, 0)
    return found


def count(*names: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Count a change of ``names`` by hand, as a trigger would: for an invalidation asked for
    by a process that cannot reach the server's cache (a shell, with the local-memory cache),
    which every server process then applies like any other change."""
    model = _model()
    with transaction.atomic(using=using):
        for name in dict.fromkeys(names):
            updated = (
                model.objects.using(using).filter(namespace=name).update(version=F("version") + 1)
            )
            if not updated:
                model.objects.using(using).get_or_create(namespace=name, defaults={"version": 1})


# Triggers ---------------------------------------------------------------------------------


def install_triggers(using: str = DEFAULT_DB_ALIAS, **_: Any) -> int:
    """Install (or replace) the triggers of every watched table that exists; returns how many
    tables are watched. Safe to run again: it first drops the triggers it installed before."""
    connection = connections[using]
    if connection.vendor not in _VENDORS:
        logger.warning(
            "changes on %s are not counted by the database: only writes through the service "
            "invalidate the cache",
            connection.vendor,
        )
        return 0
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
    if _model()._meta.db_table not in existing:
        return 0  # before the migration that makes the table
    tables = {table: names for table, names in _watched.items() if table in existing}
    statements = list(_drop_statements(connection))
    make = _sqlite_triggers if connection.vendor == "sqlite" else _postgresql_triggers
    if connection.vendor == "postgresql":
        statements.append(_POSTGRESQL_FUNCTION.format(function=_FUNCTION, table=_table()))
    for table, names in sorted(tables.items()):
        statements.extend(make(connection, table, sorted(names)))
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return len(tables)


def _table() -> str:
    return _model()._meta.db_table


def _drop_statements(connection: Any) -> Iterable[str]:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
                [TRIGGER_PREFIX + "%"],
            )
            return [f"DROP TRIGGER IF EXISTS {quote(name)}" for (name,) in cursor.fetchall()]
        cursor.execute(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND t.tgname LIKE %s AND pg_table_is_visible(c.oid)",
            [TRIGGER_PREFIX + "%"],
        )
        return [
            f"DROP TRIGGER IF EXISTS {quote(name)} ON {quote(table)}"
            for name, table in cursor.fetchall()
        ]


def _changed_columns(connection: Any, table: str, distinct: str) -> str:
    """``OLD.a <distinct> NEW.a OR ...`` over the table's columns but the ignored ones."""
    quote = connection.ops.quote_name
    ignored = _ignored.get(table, set())
    columns = [
        field.column
        for field in _models[table]._meta.local_concrete_fields
        if field.column not in ignored
    ]
    return " OR ".join(f"OLD.{quote(c)} {distinct} NEW.{quote(c)}" for c in columns)


def _literal(name: str) -> str:
    if "'" in name or "\\" in name:  # namespace names are checked when registered
        raise ValueError(f"Invalid namespace name {name!r}.")
    return f"'{name}'"


def _sqlite_triggers(connection: Any, table: str, names: list[str]) -> Iterable[str]:
    quote = connection.ops.quote_name
    counted = " ".join(
        f"INSERT INTO {quote(_table())} (namespace, version) VALUES ({_literal(name)}, 1) "
        f"ON CONFLICT (namespace) DO UPDATE SET version = version + 1;"
        for name in names
    )
    for event, short, when in (
        ("INSERT", "ins", ""),
        ("DELETE", "del", ""),
        ("UPDATE", "upd", f"WHEN ({_changed_columns(connection, table, 'IS NOT')}) "),
    ):
        name = quote(f"{TRIGGER_PREFIX}{table}_{short}")
        yield (
            f"CREATE TRIGGER {name} AFTER {event} ON {quote(table)} FOR EACH ROW {when}"
            f"BEGIN {counted} END"
        )


_POSTGRESQL_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    name text;
    this_xact bigint := pg_current_xact_id()::text::bigint;
BEGIN
    FOREACH name IN ARRAY TG_ARGV LOOP
        INSERT INTO {table} AS counted (namespace, version, xact) VALUES (name, 1, this_xact)
        ON CONFLICT (namespace) DO UPDATE
            SET version = counted.version + 1, xact = EXCLUDED.xact
            WHERE counted.xact IS DISTINCT FROM EXCLUDED.xact;
    END LOOP;
    RETURN NULL;
END
$$
"""


def _postgresql_triggers(connection: Any, table: str, names: list[str]) -> Iterable[str]:
    quote = connection.ops.quote_name
    arguments = ", ".join(_literal(name) for name in names)
    call = f"EXECUTE FUNCTION {_FUNCTION}({arguments})"
    changed = _changed_columns(connection, table, "IS DISTINCT FROM")
    for event, short, level in (
        ("INSERT", "ins", "FOR EACH ROW"),
        ("DELETE", "del", "FOR EACH ROW"),
        ("UPDATE", "upd", f"FOR EACH ROW WHEN ({changed})"),
        ("TRUNCATE", "trn", "FOR EACH STATEMENT"),
    ):
        name = quote(f"{TRIGGER_PREFIX}{table}_{short}")
        yield f"CREATE TRIGGER {name} AFTER {event} ON {quote(table)} {level} {call}"
