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

For the tables a namespace keys by object (``watch(..., objects=...)``: a workstation's row,
its history entries), the triggers also note which object each change touched
(``ObjectChange``); every other change is noted as touching every object. ``object_changes``
reads them back for the versions a cache has not taken in yet, so that a write to one object
invalidates that object's responses and the namespace's collections only (``sync``;
docs/design.md, "Invariants", 6).

The triggers are (re)installed after every ``migrate`` (``install_triggers``, from
``post_migrate``): SQLite drops a table's triggers when a migration rebuilds the table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
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
#: db_table -> namespace -> the only columns whose update changes what the namespace shows.
_shown: dict[str, dict[str, set[str]]] = {}
#: db_table -> namespace -> the columns the namespace's lists filter, search or order by, for
#: the table whose rows they list.
_layout: dict[str, dict[str, list[str]]] = {}
#: db_table -> namespace -> the column naming the object a change of a row touches.
_objects: dict[str, dict[str, str]] = {}

#: The namespaces some of whose tables' changes touch one object at a time.
_keyed: set[str] = set()
#: The namespaces whose changes say if they may move an object in its lists.
_listed: set[str] = set()

#: At most this many objects in the versions taken in at once are invalidated one by one;
#: beyond, the whole namespace is (one bump, whatever the number).
MAX_OBJECTS = 64


def watch(
    namespace: str,
    models: Iterable[type[Model]],
    objects: Mapping[type[Model], str] | None = None,
    shown: Mapping[type[Model], Iterable[str]] | None = None,
    listed: tuple[type[Model], Iterable[str]] | None = None,
) -> None:
    """Count every committed change to ``models``' tables (and their many-to-many tables, if
    listed) as a change of ``namespace``. ``objects``: the models (among ``models``) whose rows
    each belong to one object of the namespace, with the field naming it (the primary key of
    the object's own table, the object's key in its history); a change to them touches that
    object only. A change to any other table touches every object. ``shown``: of a model, the
    only fields the namespace's responses depend on — an update that changes none of them is
    not a change of the namespace (an insert or a delete always is). ``listed``: the model whose
    rows the namespace's lists list (among ``objects``), and the fields those lists filter,
    search or order by: a change of one of its rows that inserts, deletes or changes one of
    them is noted as one that may move the object (``ObjectChange.moved``)."""
    objects = dict(objects or {})
    for model in [*models, *objects, *(shown or {})]:
        table = model._meta.db_table
        _watched.setdefault(table, set()).add(namespace)
        _models.setdefault(table, model)
    for model, fields in (shown or {}).items():
        columns = {model._meta.get_field(name).column for name in fields}
        _shown.setdefault(model._meta.db_table, {})[namespace] = columns
    if listed is not None:
        model, fields = listed
        columns = sorted({model._meta.get_field(name).column for name in fields})
        _layout.setdefault(model._meta.db_table, {})[namespace] = columns
        _listed.add(namespace)
    for model, name in objects.items():
        column = model._meta.get_field(name).column
        _objects.setdefault(model._meta.db_table, {})[namespace] = column
        _keyed.add(namespace)


def keyed_by_object(namespace: str) -> bool:
    """Whether some table's changes touch one object of ``namespace`` at a time."""
    return namespace in _keyed


def has_layout(namespace: str) -> bool:
    """Whether the changes of ``namespace`` say if they may move an object in its lists."""
    return namespace in _listed


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


def _log():
    from performance.models import ObjectChange

    return ObjectChange


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
            rows = model.objects.using(using).select_for_update().filter(namespace=name)
            updated = rows.update(version=F("version") + 1)
            if not updated:
                model.objects.using(using).get_or_create(namespace=name, defaults={"version": 1})
            version = rows.values_list("version", flat=True).get()
            # Nothing says which objects it touched: every one (``object_changes``).
            notes = _log().objects.using(using)
            notes.filter(namespace=name, version__gte=version).delete()
            notes.create(namespace=name, version=version, object_id="")


def object_changes(
    namespace: str, after: int, upto: int, *, using: str = DEFAULT_DB_ALIAS
) -> dict[str, bool] | None:
    """The objects the versions ``after < v <= upto`` of ``namespace`` touched, each with
    whether a change may have moved it in, out of or within a list (``ObjectChange.moved``),
    when each of those versions touched at most a few objects (``MAX_OBJECTS`` in all);
    ``None`` when one of them may have touched every object — a change to another table, a
    version without rows (counted by hand, or pruned), too many objects — and the whole
    namespace must go."""
    if not after < upto or upto - after > MAX_OBJECTS:
        return None
    rows = list(
        _log()
        .objects.using(using)
        .filter(namespace=namespace, version__gt=after, version__lte=upto)
        .values_list("version", "object_id", "moved")[: MAX_OBJECTS + 1]
    )
    return _objects_of(rows, after, upto)


def _objects_of(rows: list[tuple[int, str, bool]], after: int, upto: int) -> dict[str, bool] | None:
    """``object_changes``' answer from the notes of the versions after ``after`` (at most
    ``MAX_OBJECTS + 1`` of them, in the order of their versions)."""
    if not after < upto or upto - after > MAX_OBJECTS:
        return None
    rows = [row for row in rows if row[0] <= upto]
    objects: dict[str, bool] = {}
    for _, object_id, moved in rows:
        objects[object_id] = objects.get(object_id, False) or bool(moved)
    if len(rows) > MAX_OBJECTS or "" in objects:
        return None
    if {version for version, _, _ in rows} != set(range(after + 1, upto + 1)):
        return None
    return objects


def versions_since(
    names: Iterable[str] | None,
    taken: Mapping[str, int],
    *,
    using: str = DEFAULT_DB_ALIAS,
) -> tuple[dict[str, int], dict[str, dict[str, bool] | None]]:
    """``versions(names)`` and, for each namespace of ``taken`` (name -> the version a cache
    took in last), ``object_changes`` after that version up to the one read: in one statement,
    one round trip to the database instead of one plus one per namespace. (One statement reads
    one snapshot: a version's notes are written with it, so none is newer than the version.)"""
    connection = connections[using]
    quote = connection.ops.quote_name
    versions_table, notes_table = _model()._meta, _log()._meta
    wanted = None if names is None else list(dict.fromkeys(names))
    if wanted == []:
        return {}, {}

    def column(meta: Any, name: str) -> str:
        return quote(meta.get_field(name).column)

    namespace, version = column(versions_table, "namespace"), column(versions_table, "version")
    parts = [
        f"SELECT 0, {namespace}, {version}, NULL, NULL FROM {quote(versions_table.db_table)}"
        + (f" WHERE {namespace} IN ({', '.join(['%s'] * len(wanted))})" if wanted else "")
    ]
    params: list[Any] = list(wanted or ())
    note_namespace, note_version = column(notes_table, "namespace"), column(notes_table, "version")
    for n, (name, after) in enumerate(taken.items()):
        parts.append(
            f"SELECT * FROM (SELECT 1, {note_namespace}, {note_version}, "
            f"{column(notes_table, 'object_id')}, {column(notes_table, 'moved')} "
            f"FROM {quote(notes_table.db_table)} "
            f"WHERE {note_namespace} = %s AND {note_version} > %s "
            f"ORDER BY {note_version} LIMIT {MAX_OBJECTS + 1}) AS notes_{n}"
        )
        params += [name, after]
    found: dict[str, int] = {}
    notes: dict[str, list[tuple[int, str, bool]]] = {name: [] for name in taken}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for kind, name, number, object_id, moved in cursor.fetchall():
            if kind == 0:
                found[name] = number
            else:
                notes[name].append((number, object_id, moved))
    for name in wanted if wanted is not None else namespaces():
        found.setdefault(name, 0)
    objects = {
        name: _objects_of(rows, taken[name], found.get(name, 0)) for name, rows in notes.items()
    }
    return found, objects


def prune(taken: Mapping[str, int], *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Forget the objects of the versions the cache has taken in (``taken``: namespace ->
    version); returns how many rows went. A process still behind finds none of them, and
    invalidates its whole namespace: the safe direction."""
    removed = 0
    for namespace, version in taken.items():
        removed += (
            _log().objects.using(using).filter(namespace=namespace, version__lte=version).delete()
        )[0]
    return removed


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
    if not {_model()._meta.db_table, _log()._meta.db_table} <= existing:
        return 0  # before the migrations that make the tables
    tables = {table: names for table, names in _watched.items() if table in existing}
    statements = list(_drop_statements(connection))
    make = _sqlite_triggers if connection.vendor == "sqlite" else _postgresql_triggers
    if connection.vendor == "postgresql":
        statements.append(
            _POSTGRESQL_FUNCTION.format(function=_FUNCTION, table=_table(), log=_log_table())
        )
    for table, names in sorted(tables.items()):
        statements.extend(make(connection, table, sorted(names)))
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return len(tables)


def _table() -> str:
    return _model()._meta.db_table


def _log_table() -> str:
    return _log()._meta.db_table


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


def _changed_columns(
    connection: Any, table: str, distinct: str, shown: frozenset[str] | None = None
) -> str:
    """``OLD.a <distinct> NEW.a OR ...`` over the table's columns but the ignored ones (of
    ``shown`` only, when given)."""
    quote = connection.ops.quote_name
    ignored = _ignored.get(table, set())
    columns = [
        field.column
        for field in _models[table]._meta.local_concrete_fields
        if field.column not in ignored and (shown is None or field.column in shown)
    ]
    return " OR ".join(f"OLD.{quote(c)} {distinct} NEW.{quote(c)}" for c in columns)


def _update_groups(
    table: str, names: list[str]
) -> list[tuple[str, frozenset[str] | None, list[str]]]:
    """The update triggers of ``table``: (name suffix, the columns whose change counts —
    ``None``: every column —, the namespaces counted), one per set of columns shown."""
    groups: dict[frozenset[str] | None, list[str]] = {}
    for name in names:
        shown = _shown.get(table, {}).get(name)
        groups.setdefault(None if shown is None else frozenset(shown), []).append(name)
    ordered = sorted(groups.items(), key=lambda item: (item[0] is not None, sorted(item[0] or ())))
    return [
        ("upd" if i == 0 else f"upd{i}", columns, members)
        for i, (columns, members) in enumerate(ordered)
    ]


def _literal(name: str) -> str:
    if "'" in name or "\\" in name:  # namespace names are checked when registered
        raise ValueError(f"Invalid namespace name {name!r}.")
    return f"'{name}'"


def _sqlite_triggers(connection: Any, table: str, all_names: list[str]) -> Iterable[str]:
    quote = connection.ops.quote_name
    columns = _objects.get(table, {})
    layouts = _layout.get(table, {})

    def counted(names: list[str], event: str) -> str:
        """Count a change of each namespace, and note the object(s) it touched."""
        statements = []
        for name in names:
            statements.append(
                f"INSERT INTO {quote(_table())} (namespace, version) VALUES ({_literal(name)}, 1) "
                f"ON CONFLICT (namespace) DO UPDATE SET version = version + 1;"
            )
            # Each row change counts a version of its own here: notes left under it (by a
            # counter that was reset) are not this change's.
            statements.append(
                f"DELETE FROM {quote(_log_table())} WHERE namespace = {_literal(name)} "
                f"AND version >= (SELECT version FROM {quote(_table())} "
                f"WHERE namespace = {_literal(name)});"
            )
            column = columns.get(name)
            if column is None:
                touched = [("''", "", "0")]
            else:
                rows = {"INSERT": ("NEW",), "DELETE": ("OLD",), "UPDATE": ("NEW", "OLD")}[event]
                # Of an update, the old row's object too when the change moved the row.
                moved_row = f" AND OLD.{quote(column)} IS NOT NEW.{quote(column)}"
                touched = [
                    (
                        f"COALESCE(CAST({row}.{quote(column)} AS TEXT), '')",
                        moved_row if i else "",
                        _sqlite_moved(connection, event, layouts.get(name)),
                    )
                    for i, row in enumerate(rows)
                ]
            for object_id, condition, moved in touched:
                statements.append(
                    f"INSERT INTO {quote(_log_table())} (namespace, version, object_id, moved) "
                    f"SELECT namespace, version, {object_id}, {moved} FROM {quote(_table())} "
                    f"WHERE namespace = {_literal(name)}{condition} "
                    f"ON CONFLICT (namespace, version, object_id) "
                    f"DO UPDATE SET moved = moved OR excluded.moved;"
                )
        return " ".join(statements)

    for event, short, changed, names in _trigger_events(connection, table, all_names, "IS NOT"):
        name = quote(f"{TRIGGER_PREFIX}{table}_{short}")
        when = f"WHEN ({changed}) " if changed else ""
        yield (
            f"CREATE TRIGGER {name} AFTER {event} ON {quote(table)} FOR EACH ROW {when}"
            f"BEGIN {counted(names, event)} END"
        )


def _trigger_events(
    connection: Any, table: str, names: list[str], distinct: str
) -> Iterable[tuple[str, str, str, list[str]]]:
    """Each row-level trigger of ``table``: its event, its name's suffix, the condition of an
    update (``OLD.a <distinct> NEW.a OR ...``; "" for none) and the namespaces it counts. An
    update counts for a namespace only when a column it shows changed (``_update_groups``)."""
    yield "INSERT", "ins", "", names
    yield "DELETE", "del", "", names
    for short, shown, members in _update_groups(table, names):
        changed = _changed_columns(connection, table, distinct, shown)
        if changed:  # (none: no update changes what these namespaces show)
            yield "UPDATE", short, changed, members


def _sqlite_moved(connection: Any, event: str, layout: list[str] | None) -> str:
    """Whether a change of a row (``event``) may move its object in a list: ``1`` or ``0``, or
    the expression that tells, for an update, from the ``layout`` columns."""
    if layout is None:
        return "0"  # not the listed table: its rows are in no list of the namespace
    if event != "UPDATE":
        return "1"
    if not layout:
        return "0"
    quote = connection.ops.quote_name
    differ = " OR ".join(f"OLD.{quote(c)} IS NOT NEW.{quote(c)}" for c in layout)
    return f"({differ})"


# Arguments: triples of a namespace, the column naming the object a row belongs to ('' when a
# change of the table touches every object of the namespace), and the columns (comma-separated)
# whose change may move the object in a list ('-': the table's rows are in no list).
_POSTGRESQL_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    i integer := 0;
    name text;
    col text;
    layout text;
    taken bigint;
    counting integer;
    moved boolean;
    this_xact bigint := pg_current_xact_id()::text::bigint;
BEGIN
    WHILE i < TG_NARGS LOOP
        name := TG_ARGV[i];
        col := TG_ARGV[i + 1];
        layout := TG_ARGV[i + 2];
        i := i + 3;
        INSERT INTO {table} AS counted (namespace, version, xact) VALUES (name, 1, this_xact)
        ON CONFLICT (namespace) DO UPDATE
            SET version = counted.version + 1, xact = EXCLUDED.xact
            WHERE counted.xact IS DISTINCT FROM EXCLUDED.xact;
        GET DIAGNOSTICS counting = ROW_COUNT;
        SELECT version INTO taken FROM {table} WHERE namespace = name;
        IF counting > 0 THEN
            -- This transaction's version, counted now: notes left under it (by a counter that
            -- was reset) are not its changes.
            DELETE FROM {log} WHERE namespace = name AND version >= taken;
        END IF;
        IF col = '' OR TG_LEVEL = 'STATEMENT' THEN
            INSERT INTO {log} (namespace, version, object_id, moved)
            VALUES (name, taken, '', false)
            ON CONFLICT DO NOTHING;
        ELSE
            moved := layout <> '-' AND (TG_OP <> 'UPDATE' OR EXISTS (
                SELECT 1 FROM unnest(string_to_array(layout, ',')) AS c
                WHERE (to_jsonb(OLD) -> c) IS DISTINCT FROM (to_jsonb(NEW) -> c)));
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO {log} AS noted (namespace, version, object_id, moved)
                VALUES (name, taken, COALESCE(to_jsonb(NEW) ->> col, ''), moved)
                ON CONFLICT (namespace, version, object_id)
                DO UPDATE SET moved = noted.moved OR EXCLUDED.moved;
            END IF;
            IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND
                   (to_jsonb(OLD) ->> col) IS DISTINCT FROM (to_jsonb(NEW) ->> col)) THEN
                INSERT INTO {log} AS noted (namespace, version, object_id, moved)
                VALUES (name, taken, COALESCE(to_jsonb(OLD) ->> col, ''), moved)
                ON CONFLICT (namespace, version, object_id)
                DO UPDATE SET moved = noted.moved OR EXCLUDED.moved;
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$
"""


def _postgresql_triggers(connection: Any, table: str, all_names: list[str]) -> Iterable[str]:
    quote = connection.ops.quote_name
    columns = _objects.get(table, {})

    layouts = _layout.get(table, {})

    def call(names: list[str]) -> str:
        arguments = ", ".join(
            f"{_literal(name)}, {_literal(columns.get(name, ''))}, "
            f"{_literal(','.join(layouts[name]) if name in layouts else '-')}"
            for name in names
        )
        return f"EXECUTE FUNCTION {_FUNCTION}({arguments})"

    events = [
        (event, short, f"FOR EACH ROW WHEN ({changed})" if changed else "FOR EACH ROW", names)
        for event, short, changed, names in _trigger_events(
            connection, table, all_names, "IS DISTINCT FROM"
        )
    ]
    events.append(("TRUNCATE", "trn", "FOR EACH STATEMENT", all_names))
    for event, short, level, names in events:
        name = quote(f"{TRIGGER_PREFIX}{table}_{short}")
        yield f"CREATE TRIGGER {name} AFTER {event} ON {quote(table)} {level} {call(names)}"
