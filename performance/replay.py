"""Warm hits answered again before Django: a request settled before, sent again, gets the bytes
Django answered it with last time, after the same one read that confirms them.

A warm hit's decisions are made once and kept (``responses.Settled``): who the token is, the
throttles' checks, the generations to read, the entry's key. What stays is one read, which
confirms that nothing those decisions read has changed, counts the throttles, and finds the
entry. Everything else Django does for the request — the request object, the middleware, the
URL, the view, the response object, its headers checked one by one — makes the same answer
again: the same request (method, path, query, every header, the client's address) under the
same settled decisions, answered with the same entry, has the same status, headers and body.

``ReplayingApplication`` wraps Django's WSGI application. When a warm hit was answered from a
settled request (``responses.SettledHit``), the answer as sent — status, headers, body — is
kept under the request as it came. The same request again is answered from it, after
``responses.settled_entry``, the same read, with the same checks, that the view would make:

- what the read found differs (a write, a revoked token, another user behind the token, a
  purge), the throttles refuse, the entry is gone or another: Django answers, with the read
  already made handed to the view (``responses.SETTLED_READ``), so nothing is read or counted
  twice;
- the request has a cookie or a body, or is not a GET or HEAD: Django answers, and nothing
  is kept.

The answer keeps what each request has of its own: its ``X-Request-ID``, its log line, its
metrics sample and its count as a hit (docs/design.md, "Invariants", 7). Nothing crosses a
boundary: the request it is kept under holds everything the first answer was made from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import metrics
from .cache import backend
from .cache.responses import SETTLED_READ, Settled, SettledHit, settled_entry
from .middleware import log_request, request_id_of

logger = logging.getLogger(__name__)

#: Answers kept, at most, per process (clients choose their requests), and the bytes of the
#: requests they are kept under, at most (a request's head may be tens of kilobytes of
#: headers nothing reads: kept by count alone, 4,096 of them would hold a quarter of a GB).
MAX_REPLAYS = 4096
MAX_KEPT_BYTES = 4 * 1024 * 1024
_SAFE = frozenset({"GET", "HEAD"})
#: What the server puts in the environment about the request (``PATH_INFO`` and the like),
#: besides its headers: everything Django may read. (Not the client's port: nothing reads it.)
_REQUEST_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "wsgi.url_scheme",
    "REMOTE_ADDR",
    "SERVER_NAME",
    "SERVER_PORT",
)
#: A header every request has its own of: the request id, answered back.
_OWN = "HTTP_X_REQUEST_ID"
_HIT = metrics.CACHE_OUTCOMES["HIT"]

StartResponse = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Replay:
    """An answer as Django sent it, and what its warm hit was settled under (``SettledHit``)."""

    settled_as: tuple
    settled: Settled
    generation_names: dict[str, str]
    namespace: str
    etag: str
    status: str
    code: int
    #: The headers as sent; the one at ``request_id_at`` is each request's own.
    headers: tuple[tuple[str, str], ...]
    request_id_at: int
    #: ``None``: the entry's bytes, read again (a 200); else the body sent (a 304's, empty).
    #: Not a copy of the entry: it would outlive it.
    body: bytes | None
    #: For the request's log line and metrics sample.
    endpoint: str
    user_id: Any
    path: str


_replays: dict[tuple, Replay] = {}
#: The paths of the requests answers are kept for (``PATH_INFO``): no other is looked up.
_kept_paths: set[str | None] = set()
#: What the answers kept are kept under, in bytes, about (their keys and headers).
_kept_bytes = 0


def _forget_all() -> None:
    global _kept_bytes
    _replays.clear()
    _kept_paths.clear()
    _kept_bytes = 0


def request_key(environ: dict[str, Any]) -> tuple | None:
    """The request as it came, but for its own id: ``None`` for one that is never replayed
    (a cookie may stand for a session, a body is read by nobody here)."""
    if environ.get("REQUEST_METHOD") not in _SAFE or environ.get("HTTP_COOKIE"):
        return None
    if environ.get("CONTENT_LENGTH") not in (None, "", "0"):
        return None
    return (
        *[environ.get(name) for name in _REQUEST_KEYS],
        *[item for item in environ.items() if item[0][:5] == "HTTP_" and item[0] != _OWN],
    )


class ReplayingApplication:
    """Django's WSGI application, with warm hits of settled requests answered again from
    their last answer (module docstring)."""

    def __init__(self, application: Callable[[dict[str, Any], StartResponse], Any]) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable:
        # (a path no answer was kept for costs nothing more: most of what a server answers)
        key = request_key(environ) if environ.get("PATH_INFO") in _kept_paths else None
        if key is not None:
            replay = _replays.get(key)
            if replay is not None:
                try:
                    answer = _answer(key, replay, environ, start_response)
                except Exception:
                    # Django answers, as it answers any request (its own error handling
                    # included): a replay is only ever a shorter way to the same answer.
                    logger.exception("replaying a warm hit failed: Django answers")
                    _replays.pop(key, None)
                    answer = None
                if answer is not None:
                    return answer
        response = self.application(environ, start_response)
        if hasattr(response, "logged_as"):
            if key is None:
                key = request_key(environ)
            if key is not None:
                _keep(key, response, environ.get("PATH_INFO"))
        return response


def _keep(key: tuple, response: Any, path: str | None) -> None:
    """Keep a settled hit's answer as Django sent it (``WSGIHandler``: its headers, then its
    cookies, which a kept answer has none of), when its body is the entry's or empty."""
    if response.streaming or response.cookies:
        return
    hit: SettledHit = response.settled_hit
    content = response.content
    if content == hit.body:
        body = None
    elif not content and response.status_code == 304:
        body = b""
    else:
        return  # (changed on its way out: not an answer a replay can make)
    headers = tuple(response.items())
    names = [name for name, _ in headers]
    if "X-Request-ID" not in names:
        return
    endpoint, user_id = response.logged_as
    size = _size(key) + _size(headers)
    if size > MAX_KEPT_BYTES // 256:
        return  # (a request as big as that is not worth keeping)
    global _kept_bytes
    if (
        len(_replays) >= MAX_REPLAYS
        or len(_kept_paths) >= MAX_REPLAYS
        or _kept_bytes + size > MAX_KEPT_BYTES
    ):
        _forget_all()
    _kept_bytes += size
    _kept_paths.add(path)
    _replays[key] = Replay(
        settled_as=hit.settled_as,
        settled=hit.settled,
        generation_names=hit.generation_names,
        namespace=hit.namespace,
        etag=hit.etag,
        status=f"{response.status_code} {response.reason_phrase}",
        code=response.status_code,
        headers=headers,
        request_id_at=names.index("X-Request-ID"),
        body=body,
        endpoint=endpoint,
        user_id=user_id,
        path=hit.settled_as[2],
    )


def _size(parts: Iterable[Any]) -> int:
    """The characters of a request's key or an answer's headers: text, and pairs of text."""
    size = 0
    for part in parts:
        if type(part) is tuple:
            size += len(part[0]) + len(part[1])
        elif type(part) is str:
            size += len(part)
    return size


def _answer(
    key: tuple, replay: Replay, environ: dict[str, Any], start_response: StartResponse
) -> list[bytes] | None:
    """The kept answer, after the read that confirms it; ``None`` when Django must answer."""
    start = time.perf_counter()
    cache = backend()
    settled_as = replay.settled_as
    state = getattr(cache, "state", None)  # (the cache may have been configured anew)
    if state is None or state.settled.get(settled_as) is not replay.settled:
        _replays.pop(key, None)  # decided again since (or the settings changed): kept anew
        return None
    entry, read = settled_entry(cache, settled_as, replay.settled, replay.generation_names)
    if entry is None or entry[1] != replay.etag:
        if read is not None:
            environ[SETTLED_READ] = (settled_as, read)
        return None
    cache.count_response(replay.namespace, hit=True)
    request_id = request_id_of(environ.get(_OWN, ""))
    headers = list(replay.headers)
    headers[replay.request_id_at] = ("X-Request-ID", request_id)
    duration = time.perf_counter() - start
    method = environ["REQUEST_METHOD"]
    metrics.count(replay.endpoint, method, str(replay.code), _HIT, duration)
    log_request(method, replay.path, replay.code, duration, request_id, replay.user_id, "HIT")
    start_response(replay.status, headers)  # (last: nothing can fail after it)
    # (the same ETag: the same bytes, which it is the hash of)
    return [entry[0] if replay.body is None else replay.body]
