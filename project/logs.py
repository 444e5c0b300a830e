"""What the service's log lines are made of: one line per record, whoever chose its text.

Two things a client controls reach the logs: the path of a request (the request log writes it
on every line) and the ``Host`` it sends (Django's security log names it). Neither may decide
what the log looks like to the person or the program reading it:

- ``PlainFormatter`` writes control characters of a message as escapes (``%0A`` in a URL is a
  newline in ``request.path``, and would start a forged line); ``LOG_FORMAT=json`` escapes them
  already, as JSON strings must.
- ``DisallowedHostFilter`` turns Django's ERROR with a traceback for each request with a host
  not in ``ALLOWED_HOSTS`` into one WARNING line per host per minute.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections import OrderedDict

#: C0 and C1 controls, DEL, and the two Unicode separators some readers split lines on.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with each control character written as a Python escape (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


class PlainFormatter(logging.Formatter):
    """``logging.Formatter`` whose message is one line whatever its arguments hold.

    Only the message is escaped: a traceback appended to it is the program's own text.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        escaped = escape_controls(message)
        if escaped != message:
            # A copy: other handlers (the JSON one, a test's) format the record as it came.
            record = copy.copy(record)
            record.msg, record.args = escaped, None
        return super().format(record)


class DisallowedHostFilter(logging.Filter):
    """One line per host per ``interval`` for ``django.security.DisallowedHost``.

    Django logs every request whose ``Host`` is not served as an ERROR with the exception's
    traceback: twenty requests make three hundred lines, and a client decides how many. A host
    nobody serves is the client's mistake, not the service's: a WARNING naming the host (escaped)
    once a minute says as much. The hosts seen are bounded (``max_hosts``, oldest first out), so
    a client that varies its ``Host`` costs memory it cannot grow.
    """

    #: The clock, as an attribute so that a test can set the time.
    timer = staticmethod(time.monotonic)

    def __init__(self, interval: float = 60.0, max_hosts: int = 1024) -> None:
        super().__init__()
        self.interval = interval
        self.max_hosts = max_hosts
        self._last: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        meta = getattr(request, "META", {})
        host = str(meta.get("HTTP_HOST") or meta.get("SERVER_NAME") or "")
        now = self.timer()
        with self._lock:
            last = self._last.get(host)
            if last is not None and now - last < self.interval:
                return False
            self._last[host] = now
            self._last.move_to_end(host)
            while len(self._last) > self.max_hosts:
                self._last.popitem(last=False)
        record.msg = "refused a request for host '%s': not in ALLOWED_HOSTS (logged once a minute)"
        record.args = (escape_controls(host),)
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info, record.exc_text = None, None
        return True
