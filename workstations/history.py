"""Who changed what in the inventory, and when: the change history of every write.

django-auditlog keeps it: one table for every object (so one query answers "what changed
since", whatever the object), each field's value before and after, and the admin page that
shows them. It records a ``save()`` or ``delete()`` of a registered model from its signals; the
services record what signals never see (``QuerySet.update()``, ``bulk_create``) with
``record_bulk``, one entry per object, so every write through them leaves a record.

Who acted comes from ``acting_as``, which the services enter with the ``actor`` their caller
passes (the request's user for the API and the admin). A write outside any such block is the
process's own: a management command by its name and the OS user who ran it (``process_actor``).
auditlog's own ``set_actor`` is not used: it takes users only, and a nested block ends the
outer one's (its receiver is dropped on exit), while services call services.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from auditlog.context import disable_auditlog
from auditlog.diff import model_instance_diff
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.signals import pre_save
from django.utils import timezone
from django.utils.text import capfirst

from .choices import ObjectType

Action = LogEntry.Action

#: Fields every entry would show and none would tell anything by: the database sets them (the
#: id is the entry's object id already).
UNTRACKED_FIELDS = ["id", "created_at", "updated_at"]
#: The kinds of objects with a history, as the API names them (``object_type``).
OBJECT_TYPES = tuple(ObjectType.values)
#: How an entry's action is named in the API.
ACTION_NAMES = {Action.CREATE: "create", Action.UPDATE: "update", Action.DELETE: "delete"}


@dataclass(frozen=True)
class Actor:
    """Who makes the writes of a block: a user (API, admin), or a process (a command)."""

    #: As the history shows it: a username, or "command seed_demo (OS user ops)".
    label: str
    user: AbstractBaseUser | None = None
    #: What the entries of the block record besides the changes: a check-out's note.
    context: Mapping[str, Any] = field(default_factory=dict)


_current: ContextVar[Actor | None] = ContextVar("workstations_history_actor", default=None)

ActorLike = AbstractBaseUser | AnonymousUser | Actor | str | None


def as_actor(actor: ActorLike) -> Actor | None:
    """An ``Actor`` from what callers hold: a user, a label, or ``None`` (nobody named)."""
    if actor is None or isinstance(actor, Actor):
        return actor
    if isinstance(actor, str):
        return Actor(label=actor)
    if not actor.is_authenticated or actor.pk is None:
        return None
    return Actor(label=actor.get_username(), user=actor)


@contextmanager
def acting_as(actor: ActorLike = None, **context: Any) -> Iterator[Actor]:
    """Record the writes made inside the block as ``actor``'s, with ``context`` (``note=...``).

    ``None`` keeps the actor of an enclosing block (or the process's): a service that calls
    another service keeps who acted, and adds its own context to the entries."""
    outer = current_actor()
    inner = as_actor(actor) or outer
    if context:
        inner = Actor(label=inner.label, user=inner.user, context={**outer.context, **context})
    token = _current.set(inner)
    try:
        yield inner
    finally:
        _current.reset(token)


def command_actor(command: str) -> Actor:
    """A management command, by its name and the OS user who ran it."""
    return Actor(label=f"command {command} (OS user {_os_user()})")


def process_actor() -> Actor:
    """Who writes when nobody was named: the command this process runs (``manage.py NAME``),
    or the program itself, with the OS user."""
    argv = sys.argv or [""]
    program = os.path.basename(argv[0])
    if program in ("manage.py", "django-admin", "django-admin.py") and len(argv) > 1:
        return command_actor(argv[1])
    return Actor(label=f"process {program or 'python'} (OS user {_os_user()})")


def current_actor() -> Actor:
    """The actor of the innermost ``acting_as`` block, else the process's."""
    return _current.get() or process_actor()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (containers)
        return str(os.getuid())


def _stamp(sender: type, instance: LogEntry, raw: bool = False, **kwargs: Any) -> None:
    """Every entry, however auditlog makes it, says who acted and in what context."""
    if raw or instance.pk is not None:
        return
    _fill(instance, current_actor())


def _fill(entry: LogEntry, actor: Actor) -> None:
    if entry.actor_id is None and actor.user is not None:
        entry.actor = actor.user
    entry.additional_data = {**(entry.additional_data or {}), "actor": actor.label, **actor.context}


def register(*models_: type[models.Model]) -> None:
    """Record every save and delete of ``models_`` (from ``AppConfig.ready``)."""
    for model in models_:
        if not auditlog.contains(model):
            auditlog.register(model, exclude_fields=list(UNTRACKED_FIELDS))
    pre_save.connect(_stamp, sender=LogEntry, dispatch_uid="workstations.history.stamp")


# What signals do not see ---------------------------------------------------------------------


def record_bulk(
    action: int,
    pairs: Iterable[tuple[models.Model | None, models.Model | None]],
    *,
    actor: ActorLike = None,
    force: bool = False,
    fields: Sequence[str] | None = None,
) -> list[LogEntry]:
    """One entry per object for a write signals never saw, as auditlog would have made it:
    ``pairs`` are (before, after), ``None`` for an object that did not exist or no longer does.
    An object whose fields did not change gets no entry (as a ``save()`` that changed nothing),
    unless ``force``: an event worth recording by itself (a check-out with its note).
    ``fields``: the only fields compared (a save's ``update_fields``), all of them if ``None``."""
    who = as_actor(actor) or current_actor()
    now = timezone.now()
    entries = []
    for before, after in pairs:
        instance = after if after is not None else before
        changes = model_instance_diff(
            before, after, fields_to_check=fields, use_json_for_changes=True
        )
        if changes is None and action != Action.DELETE and not force:
            continue
        entry = LogEntry(
            content_type=ContentType.objects.get_for_model(instance),
            object_pk=str(instance.pk),
            object_id=instance.pk,
            object_repr=str(instance)[:200],
            action=action,
            changes=changes,
            timestamp=now,
        )
        _fill(entry, who)
        entries.append(entry)
    return LogEntry.objects.bulk_create(entries, batch_size=500)


def save_changed(
    instance: models.Model, before: models.Model, *, update_fields: Sequence[str]
) -> None:
    """Save ``instance``, the row ``before`` changed (as read, locked, for this change), and
    record the change from the two: auditlog's own receiver, which would read the row again
    for its "before", stays out of it."""
    with disable_auditlog():
        instance.save(update_fields=update_fields)
    record_bulk(Action.UPDATE, [(before, instance)], fields=update_fields)


def load_related(instances: Sequence[models.Model], *names: str) -> None:
    """Fill the named relations of ``instances`` with one query per relation, so that their
    names in the history (``AUDITLOG_USE_FK_STRING_REPRESENTATION``) cost no query per row."""
    if not instances:
        return
    model = type(instances[0])
    for name in names:
        relation = model._meta.get_field(name)
        missing = {
            getattr(obj, relation.attname)
            for obj in instances
            if getattr(obj, relation.attname) is not None and not relation.is_cached(obj)
        }
        found = relation.related_model._default_manager.in_bulk(missing) if missing else {}
        for obj in instances:
            value = getattr(obj, relation.attname)
            if not relation.is_cached(obj):
                relation.set_cached_value(obj, found.get(value) if value is not None else None)


# Reading it ----------------------------------------------------------------------------------


def entry_actor(entry: LogEntry) -> str:
    """Who made an entry, as the history shows it."""
    label = (entry.additional_data or {}).get("actor")
    if label:
        return str(label)
    return entry.actor.get_username() if entry.actor is not None else "unknown"


#: How an empty value is shown in the admin's diff.
NO_VALUE = "—"


def field_changes(entry: LogEntry) -> list[tuple[str, str, str]]:
    """An entry's changes as people read them: (field label, before, after), choices by their
    labels ("In stock", not "in_stock"), no value as a dash."""
    model = entry.content_type.model_class()
    rows = []
    for name, pair in meaningful_changes(entry.changes_dict).items():
        try:
            model_field = model._meta.get_field(name) if model is not None else None
        except FieldDoesNotExist:
            model_field = None
        label = capfirst(getattr(model_field, "verbose_name", name))
        choices = dict(getattr(model_field, "flatchoices", None) or ())
        before, after = (_shown(value, choices) for value in pair)
        if before != after:  # "" and null are both no value
            rows.append((label, before, after))
    return rows


def meaningful_changes(changes: Mapping[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """The changes that change something people see: null and "" are both no value (a new
    object's empty fields are no news)."""
    return {
        name: (pair[0], pair[1])
        for name, pair in sorted((changes or {}).items())
        if isinstance(pair, list | tuple)
        and len(pair) == 2
        and not (pair[0] in (None, "") and pair[1] in (None, ""))
    }


def _shown(value: Any, choices: Mapping[Any, Any]) -> str:
    if value is None or value == "":
        return NO_VALUE
    return str(choices.get(value, value))
