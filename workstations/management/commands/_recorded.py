"""Commands whose writes the change history records as theirs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from workstations import history


class RecordedCommand(BaseCommand):
    """A command whose writes are recorded as "command NAME (OS user USER)".

    Run as ``manage.py NAME``, the history knows the command from the process anyway
    (``history.process_actor``); run through ``call_command`` (from code, from another command)
    it would not."""

    def execute(self, *args: Any, **options: Any) -> Any:
        name = type(self).__module__.rsplit(".", 1)[-1]
        with history.acting_as(history.command_actor(name)):
            return super().execute(*args, **options)
