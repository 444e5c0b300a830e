"""What the service asks of Redis beyond Django's cache API, in django-redis's client classes.

The Redis backend runs on one of two clients, chosen from its configuration: django-redis's
``DefaultClient`` (one server, or a primary and its replicas as a ``LOCATION`` list) or its
``SentinelClient`` (Sentinel names the primary and the replicas), each with the service's own
operations (``InventoryClientMixin``), in one round trip each —

- ``incr``: an increment of an existing key in one script, whose refusal fails like any write;
- ``read``: values (the generations) and request rates, in one script (``rates``);
- ``scan`` / ``unlink_matching``: this service's keys, in chunks, never ``KEYS``;
- the statistics every process publishes into a shared hash (``publish``, ``counters``);
- ``server_info``: the figures of ``INFO`` the console shows;
- where a read goes: what read-your-writes depends on to the primary, entries addressed by a
  generation to any server (docs/design.md, "Redis deployments").

It also decides which errors mean "the cache is not answering" (``is_outage``), the policy the
backend's circuit breaker applies. The backend, ``InstrumentedRedisCache``, stays a thin facade
that counts (``backends``), guards (``breaker``) and delegates to the client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, default_key_func
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_redis.cache import RedisCache
from django_redis.client import DefaultClient, SentinelClient
from django_redis.client.default import glob_escape
from django_redis.compressors.identity import IdentityCompressor
from django_redis.exceptions import CompressorError, ConnectionInterrupted
from django_redis.pool import SentinelConnectionFactory
from django_redis.util import CacheKey
from redis import ConnectionPool
from redis import exceptions as redis_errors
from redis._parsers.helpers import parse_info
from redis.commands.core import Script

from performance.turns import waiting, waiting_for

from .backends import (
    SERIALIZER,
    InstrumentedCacheMixin,
    Lookup,
    PageEntry,
    Pending,
    count_found,
    internal_key,
    remember_plan,
)
from .breaker import CacheUnavailable, make_guard
from .generations import PAGE_GENERATION_TTL
from .hot import HotEntries
from .keys import (
    RATE_NAMESPACE,
    applied_key,
    generation_key,
    layout_scope,
    listings_key,
    namespace_of,
    recent_key,
)
from .rates import ALLOWED, RateCheck, Verdict
from .state import CacheState, state_for

try:
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis is a dependency; redis-py packs without it
    _pack_command = None

logger = logging.getLogger(__name__)

_INCR_EXISTING = Script(
    None,
    b"""
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return false
""",
)

# KEYS: the n keys to read, then the m rate histories (sorted sets of timestamps; anything else
# there, or a time beyond the window ahead, is not a history and goes).
# ARGV: n, m, the index among the read keys whose value must equal ARGV[4] for the rates to be
# counted (0: always), that value, then for each rate: limit, window in seconds, now, member.
_READ_AND_RATE = Script(
    None,
    b"""
local n, m, cond = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local values = {}
if n > 0 then values = redis.call('MGET', unpack(KEYS, 1, n)) end
if m == 0 or (cond > 0 and values[cond] ~= ARGV[4]) then return {values, false} end
local verdicts = {}
for i = 1, m do
  local key, base = KEYS[n + i], 4 + (i - 1) * 4
  local limit, window, now = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]),
    tonumber(ARGV[base + 3])
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', key) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', key, string.format('(%.17g', now + window), '+inf')
  local count, allowed = redis.call('ZCARD', key), 0
  if count < limit then
    redis.call('ZADD', key, now, ARGV[base + 4])
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
    count, allowed = count + 1, 1
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or false
  verdicts[i] = {allowed, count, oldest}
end
return {values, verdicts}
""",
)

# KEYS: for each step of ``generations.advance``, its generation key, its applied key, then the
# generations an ``objects`` step bumps (``Step.scopes``), then — when it names objects whose
# pages it bumps (``Step.listed``) — the namespace's pages (a hash: the objects whose pages are
# noted, each in a set of the pages' generation keys under the hash's key + ":" + object), its
# layout's generation, bumped instead when a note is gone, and its latest changes (a list,
# newest first: "to from object object ..."). The last ARGV: how long a page's generation
# lives (ms): gone, it is seeded anew, and the page is a miss.
# ARGV: for each step, its mode, the database version ('' for none), the lowest generation the
# process accepts, the version an ``objects`` step expects taken in ('' for none), how many
# generations it bumps, how many objects' pages, then those objects. A generation moves to
# max(current + 1, this server's clock in microseconds, floor + 1): a counter that went back
# jumps past every value it gave out.
# (``generations.apply_step`` is the same in Python, for the other caches.)
_ADVANCE = Script(
    None,
    b"""
local RECENT, PAGE_TTL = 256, tonumber(ARGV[#ARGV])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function bump(key, floor)
  local current = redis.pcall('GET', key)
  current = (type(current) == 'string' and tonumber(current)) or 0
  local new = math.max(current + 1, now, floor + 1)
  redis.call('SET', key, string.format('%.0f', new))
  return new
end
local out = {}
local k, a = 1, 1
while a < #ARGV do  -- (the last: PAGE_TTL)
  local gen_key, applied_key = KEYS[k], KEYS[k + 1]
  local mode, version, floor = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local since, scopes, listed = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]),
    tonumber(ARGV[a + 5])
  local first, ids, pages_key, layout_key, recent_key = k + 2, a + 6, nil, nil, nil
  if listed > 0 then
    pages_key, layout_key = KEYS[k + 2 + scopes], KEYS[k + 3 + scopes]
    recent_key = KEYS[k + 4 + scopes]
  end
  k = k + 2 + scopes
  if listed > 0 then k = k + 3 end
  a = a + 6 + listed
  local recorded = redis.pcall('GET', applied_key)
  local known = type(recorded) == 'string'
  recorded = (known and tonumber(recorded)) or 0
  local result = nil
  if mode == 'objects' and known and since and since <= recorded and recorded < version then
    local before = tonumber(redis.pcall('GET', KEYS[first]) or '') or 0
    local collections = nil
    for j = first, first + scopes - 1 do
      local new = bump(KEYS[j], 0)
      collections = collections or new
    end
    if recent_key then
      -- This change in place, for a page computed meanwhile (``store_page``): the collections'
      -- generation it moved to and from, the objects.
      if redis.call('TYPE', recent_key)['ok'] ~= 'list' then redis.call('DEL', recent_key) end
      redis.call('LPUSH', recent_key,
        string.format('%.0f %.0f ', collections, before) ..
        table.concat(ARGV, ' ', ids, ids + listed - 1))
      redis.call('LTRIM', recent_key, 0, RECENT - 1)
    end
    if pages_key and redis.call('TYPE', pages_key)['ok'] ~= 'hash' then
      -- Gone (evicted, expired), or overwritten by another program: which pages show the
      -- objects is not known, and every page goes.
      redis.call('DEL', pages_key)
      bump(layout_key, 0)
    elseif pages_key then
      for j = ids, ids + listed - 1 do
        if redis.call('HEXISTS', pages_key, ARGV[j]) == 1 then
          local set_key = pages_key .. ':' .. ARGV[j]
          if redis.call('TYPE', set_key)['ok'] ~= 'set' then
            bump(layout_key, 0)  -- its pages were noted, and the note is gone: every page goes
          else
            for _, page in ipairs(redis.call('SMEMBERS', set_key)) do
              bump(page, 0)
              redis.call('PEXPIRE', page, PAGE_TTL)
            end
          end
          redis.call('DEL', set_key)
          redis.call('HDEL', pages_key, ARGV[j])
        end
      end
    end
    redis.call('SET', applied_key, string.format('%.0f', version))
    result = -2
  end
  if result == nil and (mode == 'sync' or mode == 'objects') then
    local wanted = version or 0
    if recorded == wanted then result = 0 elseif recorded > wanted then result = -1
    elseif not known and redis.call('EXISTS', gen_key) == 0 then
      -- No generation: nothing is reachable that the version could have changed.
      redis.call('SET', applied_key, string.format('%.0f', wanted))
      result = 0
    end
  end
  if result == nil then
    result = bump(gen_key, floor)
    if version and not (mode == 'write' and recorded > version) then
      redis.call('SET', applied_key, string.format('%.0f', version))
    end
  end
  out[#out + 1] = result
end
return out
""",
)

# KEYS: a list page's entry, the generation it is stored unless changed, the namespace's pages
# (``keys.listings_key``), the layout's generation, the latest changes (``keys.recent_key``),
# and the stampede lock the page was computed under, if any (deleted first, stored or not).
# ARGV: the encoded entry, its time to live in ms ('' for none), the generation's expected
# value, the page's generation key, how many pages may note one object, and the objects the
# page shows, separated by spaces (one argument, where fifty would cost the client fifty
# encodings). The hash of pages lives at least as long as every entry noted in it;
# an object shown by more pages than it may note (clients choose their query strings) ends
# them all: the hash goes, the layout moves on.
_STORE_PAGE = Script(
    None,
    b"""
if KEYS[6] then redis.call('DEL', KEYS[6]) end  -- the lock taken to compute it
local objects = {}
for object in string.gmatch(ARGV[6], '%S+') do objects[#objects + 1] = object end
local current = redis.call('GET', KEYS[2])
if current ~= ARGV[3] then
  -- Changes were taken in since the page's generations were read: it is kept if none of them
  -- changed an object it shows: each move of the collections' generation since accounted for
  -- by a change in place noted in the latest (``to from object ...``), newest first.
  if redis.call('TYPE', KEYS[5])['ok'] ~= 'list' then return 0 end
  local shows, since, at = {}, tonumber(ARGV[3]), tonumber(current or '')
  for _, object in ipairs(objects) do shows[object] = true end
  local covered = false
  for _, change in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
    local words = {}
    for word in string.gmatch(change, '%S+') do words[#words + 1] = word end
    if tonumber(words[1]) ~= at then return 0 end  -- a move no change in place noted
    for i = 3, #words do if shows[words[i]] then return 0 end end
    at = tonumber(words[2])
    if at == since then covered = true break end
  end
  if not covered then return 0 end
end
local ttl, most = tonumber(ARGV[2]), tonumber(ARGV[5])
local kind = redis.call('TYPE', KEYS[3])['ok']
if kind ~= 'hash' and kind ~= 'none' then
  -- Not ours (another program wrote it): what it noted is lost, and every page goes.
  redis.call('DEL', KEYS[3])
  local t = redis.call('TIME')
  local current = tonumber(redis.pcall('GET', KEYS[4]) or '0') or 0
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('SET', KEYS[4], string.format('%.0f', math.max(current + 1, now)))
  return 0
end
-- Each key noted lives at least as long as the entry.
local function outlive(key)
  if not ttl then redis.call('PERSIST', key) return end
  local left = redis.call('PTTL', key)
  if left == -1 or (left >= 0 and left < ttl) then redis.call('PEXPIRE', key, ttl) end
end
local noted = {}
local function note()
  if #noted > 0 then redis.call('HSET', KEYS[3], unpack(noted)) end
end
for _, object in ipairs(objects) do
  local set_key = KEYS[3] .. ':' .. object
  local added = redis.pcall('SADD', set_key, ARGV[4])
  if type(added) == 'table' and added.err then
    -- Not a set (another program wrote it): what it noted is lost; noted anew. Any other
    -- refusal (a full Redis) ends the script as it came: nothing noted is dropped.
    if string.sub(added.err, 1, 9) ~= 'WRONGTYPE' then return redis.error_reply(added.err) end
    redis.call('DEL', set_key)
    added = redis.call('SADD', set_key, ARGV[4])
  end
  local size = added == 1 and redis.call('SCARD', set_key) or 0
  if size > most then
    -- Clients choose their query strings, so how many pages show an object is theirs: beyond
    -- the bound, its pages are forgotten and every page goes (the layout moves on).
    redis.call('DEL', set_key)
    note()
    redis.call('HDEL', KEYS[3], object)
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local current = tonumber(redis.pcall('GET', KEYS[4]) or '0') or 0
    redis.call('SET', KEYS[4], string.format('%.0f', math.max(current + 1, now)))
    return 0
  end
  if size == 1 and ttl then
    redis.call('PEXPIRE', set_key, ttl)  -- a new set: no expiry yet
  else
    outlive(set_key)
  end
  -- Named in the hash on every store, not only when new to its set: a hash lost (evicted,
  -- deleted, expired) while sets stay is named again by the next page that shows them.
  noted[#noted + 1] = object
  noted[#noted + 1] = 1
end
note()
if ttl then redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else redis.call('SET', KEYS[1], ARGV[1]) end
if redis.call('EXISTS', KEYS[3]) == 1 then outlive(KEYS[3]) end
return 1
""",
)

# KEYS: a response's entry, its stampede lock, a generation to seed if ARGV[3] is not '', then
# the keys read ahead. ARGV: the lock's time to live (ms), its value, the seed, its time to live
# (ms, '' for none). With a seed: if another value is there (or the seed is refused), -1 and
# that value (false: none), nothing more. Then the entry when there is one (anything but a string
# value is none); else whether the lock was taken — refused where Redis refuses writes (a
# read-only replica, a full Redis): the caller then waits for another's result, or computes —
# and the keys ahead.
_LOOKUP = Script(
    None,
    b"""
local first = 3
if ARGV[3] ~= '' then
  first = 4
  local set
  if ARGV[4] ~= '' then set = redis.pcall('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[4])
  else set = redis.pcall('SET', KEYS[3], ARGV[3], 'NX') end
  if not (type(set) == 'table' and set.ok == 'OK') then
    local there = redis.pcall('GET', KEYS[3])
    if type(there) ~= 'string' then there = false end
    return {false, -1, there}
  end
end
local entry = redis.pcall('GET', KEYS[1])
if type(entry) == 'string' then return {entry} end
local locked = redis.pcall('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1])
locked = (type(locked) == 'table' and locked.ok == 'OK') and 1 or 0
local ahead = {}
if #KEYS >= first then ahead = redis.call('MGET', unpack(KEYS, first)) end
return {false, locked, ahead}
""",
)

#: How many pages may note that they show one object (``store_page``), about: beyond, every
#: page goes. Clients choose their query strings, so how many pages show an object is theirs.
MAX_PAGES_PER_OBJECT = 1000

#: Fields of ``INFO`` the console shows.
INFO_FIELDS = (
    "redis_version",
    "used_memory",
    "used_memory_human",
    "maxmemory",
    "maxmemory_human",
    "maxmemory_policy",
    "evicted_keys",
    "expired_keys",
    "keyspace_hits",
    "keyspace_misses",
    "connected_clients",
    "uptime_in_seconds",
    "role",
    "connected_slaves",
)
#: Seconds the per-minute statistics are kept.
HISTORY_TTL = 2 * 3600


def read_from_primary(logical_key: str) -> bool:
    """Whether a read of ``logical_key`` must go to the primary (docs/design.md, "Redis
    deployments"): the cache layer's own keys (``_``: generations, the purge epoch, locks,
    memos, health probes) and the request rates. A replica may lag; what these keys say decides
    which entry a request may serve, so a lagging copy of them could serve a stale one. Every
    other key embeds the generation read from the primary, so a lagging replica can only miss.
    """
    namespace = namespace_of(logical_key)
    return namespace.startswith("_") or namespace == RATE_NAMESPACE


class InventoryClientMixin:
    """The service's own operations (see the module), on a django-redis client whose
    ``get_client(write=True)`` is the primary and ``get_client(write=False)`` any server."""

    scan_count = 1000
    delete_chunk = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: ``read_values``'s plans: where each set of keys is read, and its packed MGET.
        self._read_plans: dict[tuple[str, ...], tuple[bool, list[bytes]]] = {}
        #: Whether values are compressed (``decode``): without a compressor, nothing is tried.
        self._decompresses = type(self._compressor) is not IdentityCompressor

    def redis(self) -> Any:
        """The connection to the primary: everything read-your-writes depends on is read there."""
        return self.get_client(write=True)

    def connect(self, index: int = 0) -> Any:
        """django-redis's connection, with the primary's new connections fenced: each asks who
        the server is, so a failover or a restart is noticed before anything is read from it
        (``fence``)."""
        client = super().connect(index)
        state = getattr(self._backend, "state", None)
        if index == 0 and state is not None:
            fence(client.connection_pool).watch(state)
        return client

    def read_values(self, keys: tuple[str, ...], peek: str | None = None) -> dict[str, Any]:
        """``get_many(keys)`` for the few keys every warm hit reads (the generations), with less
        in between: the MGET is made and packed once per set of keys and sent as ``exchange``
        sends, without the layers a general command crosses (django-redis's key making,
        redis-py's command dispatch). ``peek``: one more key in the same MGET (a warm hit's
        entry, which each page has its own of: not planned)."""
        if peek is not None:
            keys = (*keys, peek)
            plan = self._read_plan(keys, remember=False)
        else:
            plan = self._read_plans.get(keys)
            if plan is None:
                plan = self._read_plan(keys)
        on_primary, packed = plan
        client = self.redis() if on_primary else self.get_client(write=False)
        try:
            raw = self.exchange(client, packed)
        except redis_errors.ResponseError as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return self._decoded(keys, raw)

    def exchange(self, client: Any, packed: list[bytes], replies: int = 1) -> Any:
        """A command, ``packed`` as the pool sends it, sent to ``client``'s server and its
        answer read back — or several, pipelined, and their ``replies`` answers as a list, a
        refusal among them as its exception (as redis-py's pipeline gives them with
        ``raise_on_error=False``) — on this thread's connection of the pool (``_Held``: no
        hand-over, its lock, readiness poll and accounting, for every request), or one the
        pool hands out as for any command. A connection the server has closed is connected
        anew, and fenced (``connect``); the connection's retry policy applies, as for any
        command. What fails after the retries is the caller's (the breaker's), as an outage is
        (``ConnectionInterrupted``); the server's refusal of a single command
        (``ResponseError``) is raised as it comes."""
        pool = client.connection_pool
        held = _Held.of(pool)
        connection = held.connection if held is not None else pool.get_connection()

        def round_trip() -> Any:
            if connection._sock is None:  # connected first, outside the turn: the fence's
                with waiting():  # round trips, a server that does not answer
                    connection.connect()
            connection.send_packed_command(packed)
            if replies == 1:
                with waiting_for(connection._sock):
                    return connection.read_response()
            answers: list[Any] = []
            for _ in range(replies):  # (every answer read: the connection stays in step)
                try:
                    answers.append(connection.read_response())
                except redis_errors.ResponseError as exc:
                    answers.append(exc)
            return answers

        def failed(exc: BaseException) -> None:
            connection.disconnect()
            if isinstance(exc, ServerChanged):
                raise exc  # never sent again past the fence

        try:
            try:
                # The connection's retry policy, as for any command.
                return connection.retry.call_with_retry(round_trip, failed)
            except redis_errors.ConnectionError as exc:
                # A kept connection the server has closed meanwhile (its idle ``timeout``, a
                # restart, a proxy): connected again, as the pool's hand-over does for one it
                # finds closed — fenced, and a new server's refusal is not sent again.
                if held is None or isinstance(exc, ServerChanged):
                    raise
                connection.disconnect()
                return round_trip()
        except _CONNECTION_ERRORS as exc:
            connection.disconnect()
            raise ConnectionInterrupted(connection=client) from exc
        finally:
            if held is None:
                pool.release(connection)

    def _decoded(self, keys: Iterable[str], raw: Sequence[Any]) -> dict[str, Any]:
        """``keys`` with the values an MGET answered for them, those present and readable."""
        values = {}
        for key, value in zip(keys, raw, strict=True):
            if value is not None:
                value = self.decode(value)
                if value is not _UNREADABLE:
                    values[key] = value
        return values

    def _read_plan(self, keys: Sequence[str], *, remember: bool = True) -> tuple[bool, list[bytes]]:
        """Where ``keys`` are read (``reader``) and their MGET, packed as the pool sends it;
        remembered (``remember``) for a few keys."""
        client = self.reader(keys)
        made = self._made_keys(keys)
        if _pack_command is not None:  # (hiredis: what redis-py packs with when it has it)
            packed = [_pack_command(("MGET", *made))]
        else:
            pool = client.connection_pool
            connection = pool.get_connection()  # borrowed to pack as it would: never one more
            try:
                packed = connection.pack_command("MGET", *made)
            finally:
                pool.release(connection)
        plan = (client is self.redis(), packed)
        if remember:
            remember_plan(self._read_plans, tuple(keys), plan)
        return plan

    def _made_keys(self, keys: Sequence[str]) -> list[str]:
        """``make_key`` of each of ``keys``, as plain strings: with Django's key function, the
        prefix and version joined once rather than per key (a cold page reads a hundred)."""
        backend = self._backend
        if backend.key_func is default_key_func:
            head = f"{backend.key_prefix}:{backend.version}:"
            return [head + key for key in keys]
        return [str(self.make_key(key)) for key in keys]

    def identity(self) -> tuple[str, str]:
        """Who the primary is: its ``run_id`` (new at each start) and ``master_replid`` (new when
        a replica is promoted, or a primary restarts)."""
        pipe = self.redis().pipeline(transaction=False)
        pipe.info("server")
        pipe.info("replication")
        server, replication = pipe.execute()
        return str(server.get("run_id", "")), str(replication.get("master_replid", ""))

    def reader(self, keys: Iterable[Any]) -> Any:
        """The connection to read ``keys`` from, in one round trip: the primary when any of
        them must be read there (``read_from_primary``), else the one django-redis picks
        (a replica, when there are)."""
        for key in keys:
            # A key already made (django-redis's CacheKey): its logical key, if it can be told.
            logical = self.logical(key) if isinstance(key, CacheKey) else str(key)
            if logical is None or read_from_primary(logical):
                return self.redis()
        return self.get_client(write=False)

    # A value this service cannot read is a missing one -----------------------------------------

    def decode(self, value: bytes | int | str) -> Any:
        try:
            if type(value) is bytes:
                if value.lstrip(b"-").isdigit():
                    return int(value)  # (django-redis writes integers as their digits)
                # Not an integer: what django-redis's decode does after int() has refused it,
                # without the exception.
                if self._decompresses:
                    with contextlib.suppress(CompressorError):
                        value = self._compressor.decompress(value)
                return self._serializer.loads(value)
            return super().decode(value)
        except Exception:  # not written by this service: the serializer or compressor refused it
            logger.warning("a cache value could not be read: treated as missing")
            return _UNREADABLE

    def get(
        self, key: str, default: Any = None, version: int | None = None, client: Any = None
    ) -> Any:
        client = client or self.reader((key,))
        try:
            value = super().get(key, default, version, client)
        except ConnectionInterrupted as exc:
            if not _wrong_type(exc.__cause__):
                raise
            logger.warning("cache key %s holds a value of another type: treated as missing", key)
            return default
        return default if value is _UNREADABLE else value

    def get_many(self, keys: Any, version: int | None = None, client: Any = None) -> dict:
        keys = list(keys)
        found = super().get_many(keys, version, client or self.reader(keys))
        return {key: value for key, value in found.items() if value is not _UNREADABLE}

    def has_key(self, key: str, version: int | None = None, client: Any = None) -> bool:
        return super().has_key(key, version, client or self.reader((key,)))

    # One round trip each ---------------------------------------------------------------------

    def incr(
        self,
        key: str,
        delta: int = 1,
        version: int | None = None,
        client: Any = None,
        ignore_key_check: bool = False,
    ) -> int:
        """INCRBY of an existing key, in one atomic script.

        django-redis answers a script that Redis refuses (full with ``noeviction``, a read-only
        replica) with a read-modify-write of its own: TTL, GET, SET. That races every other
        writer, and a key deleted between its GET and SET (``generations._forget`` in another
        process) turns into a ``TypeError``. A refusal fails here like any other refused write;
        django-redis keeps the values its script cannot add to (beyond 64 bits, pickled).
        """
        if ignore_key_check:
            return super().incr(key, delta, version, client, ignore_key_check=True)
        client = client or self.redis()
        try:
            value = _INCR_EXISTING(keys=[self.make_key(key, version)], args=[delta], client=client)
        except redis_errors.ResponseError as exc:
            if is_outage(exc):
                raise
            return super().incr(key, delta, version, client)
        except _CONNECTION_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def advance(self, steps: Sequence[Any]) -> list[int]:
        """``generations.advance``, atomically on the primary (one script)."""
        keys: list[str] = []
        args: list[Any] = []
        for step in steps:
            scopes, listed = step.scopes(), step.listed()
            keys += [
                self.make_key(generation_key(step.namespace)),
                self.make_key(applied_key(step.namespace)),
                *(self.make_key(generation_key(scope)) for scope in scopes),
            ]
            if listed:
                keys += [
                    self.make_key(listings_key(step.namespace)),
                    self.make_key(generation_key(layout_scope(step.namespace))),
                    self.make_key(recent_key(step.namespace)),
                ]
            args += [
                step.mode,
                "" if step.version is None else step.version,
                step.floor,
                "" if step.since is None else step.since,
                len(scopes),
                len(listed),
                *listed,
            ]
        client = self.redis()
        try:
            args.append(PAGE_GENERATION_TTL * 1000)
            return [int(value) for value in _ADVANCE(keys=keys, args=args, client=client)]
        except _CONNECTION_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc

    def store_page(self, entry: PageEntry, pending: Pending | None = None) -> bool:
        """The backend's ``store_page``, in one script on the primary, after the ``pending``
        writes (in the same round trip)."""
        key, value, timeout, unless_changed, page, shows, release = entry
        client = self.redis()
        namespace = namespace_of(key)
        ttl = "" if timeout is None else int(timeout * 1000)
        keys = [
            self.make_key(key),
            self.make_key(unless_changed[0]),
            self.make_key(listings_key(namespace)),
            self.make_key(generation_key(layout_scope(namespace))),
            self.make_key(recent_key(namespace)),
            *([self.make_key(release)] if release is not None else []),
        ]
        args = [
            self.encode(value),
            ttl,
            str(unless_changed[1]),
            str(self.make_key(page)),
            MAX_PAGES_PER_OBJECT,
            " ".join(shows),
        ]
        if not pending:
            return bool(self._script(_STORE_PAGE, client, keys, args))
        writes = self._writes(pending)
        if writes is not None:
            # The writes, then the script by its digest, in one round trip; a server without
            # the script yet gets it (the writes are made: the script is run again alone).
            script = ("EVALSHA", _STORE_PAGE.sha, len(keys), *map(str, keys), *args)
            answers = self._exchange_all(client, [*writes, script])
            if isinstance(answers[-1], redis_errors.NoScriptError):
                return bool(self._loading(_STORE_PAGE, client, keys, args))
            if isinstance(answers[-1], Exception):
                raise answers[-1]
            return bool(answers[-1])
        try:
            # The script by its digest on the pipeline (redis-py's Script would first ask, in a
            # round trip of its own, whether the server has it).
            pipe = self._pipeline_of(client, pending)
            pipe.execute_command("EVALSHA", _STORE_PAGE.sha, len(keys), *keys, *args)
            stored = pipe.execute(raise_on_error=False)[-1]
            if isinstance(stored, redis_errors.NoScriptError):  # (a server without it yet)
                stored = _STORE_PAGE(keys=keys, args=args, client=client)
            elif isinstance(stored, Exception):
                raise stored
        except _CONNECTION_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return bool(stored)

    def store(
        self, key: str, value: Any, timeout: Any, release: str | None, pending: Pending
    ) -> bool:
        """``SET`` of ``key`` (``timeout`` as django-redis's ``set`` takes it) and ``DEL`` of
        the lock ``release``, after the ``pending`` writes, pipelined on the primary: the
        backend's ``store``."""
        client = self.redis()
        writes, own = self._writes(pending), self._writes({key: (value, timeout)})
        if writes is not None and own is not None:
            if release is not None:
                own.append(("DEL", str(self.make_key(release))))
            answers = self._exchange_all(client, [*writes, *own])
            for answer in answers:
                if isinstance(answer, Exception):
                    raise answer
            return bool(answers[len(writes)])
        pipe = self._pipeline_of(client, pending)
        self.set(key, value, timeout, client=pipe)
        if release is not None:
            pipe.delete(self.make_key(release))
        try:
            *_, stored = pipe.execute()[: len(pending) + 1]
        except _CONNECTION_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return bool(stored)

    def set_each(self, pending: Pending) -> None:
        """``pending``'s writes (key -> (value, timeout)), pipelined on the primary."""
        client = self.redis()
        writes = self._writes(pending)
        if writes is not None:
            for answer in self._exchange_all(client, writes):
                if isinstance(answer, Exception):
                    raise answer
            return
        try:
            self._pipeline_of(client, pending).execute()
        except _CONNECTION_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc

    def _writes(self, pending: Pending) -> list[tuple] | None:
        """The ``SET`` django-redis's ``set`` sends for each of ``pending``'s writes (key ->
        (value, timeout), the timeout as ``set`` reads it), for ``_exchange_all``; ``None``
        without hiredis, or where ``set`` would do something else (a timeout of zero or less
        deletes the key): then redis-py's pipeline makes them."""
        if _pack_command is None:
            return None
        writes = []
        for key, (value, timeout) in pending.items():
            if timeout is DEFAULT_TIMEOUT:
                timeout = self._backend.default_timeout
            command: tuple = ("SET", str(self.make_key(key)), _argument(self.encode(value)))
            if timeout is not None:
                milliseconds = int(timeout * 1000)
                if milliseconds <= 0:
                    return None
                command += ("PX", milliseconds)
            writes.append(command)
        return writes

    def _exchange_all(self, client: Any, commands: list[tuple]) -> list[Any]:
        """``commands`` in one round trip (``exchange``), packed by hiredis: their answers, a
        refusal as its exception."""
        return self.exchange(client, [_pack_command(c) for c in commands], len(commands))

    def _pipeline_of(self, client: Any, pending: Pending) -> Any:
        pipe = client.pipeline(transaction=False)
        for key, (value, timeout) in pending.items():
            self.set(key, value, timeout, client=pipe)
        return pipe

    def lookup(
        self, key: str, lock: str, lock_timeout: int, ahead: Sequence[str], seed: Any = None
    ) -> Lookup:
        """The backend's ``lookup``, in one script on the primary (which holds the lock and
        the generations)."""
        client = self.redis()
        keys = [self.make_key(key), self.make_key(lock)]
        args: list[Any] = [int(lock_timeout * 1000), self.encode(1), "", ""]
        if seed is not None:
            keys.append(self.make_key(seed.key))
            lives = "" if seed.lives is None else int(seed.lives * 1000)
            args[2:] = [self.encode(seed.value), lives]
        raw = self._script(_LOOKUP, client, [*keys, *map(self.make_key, ahead)], args)
        if raw[0] is None and raw[1] == -1:  # the seed was not stored: what is there instead
            there = None if raw[2] is None else self.decode(raw[2])
            return Lookup(None, False, {}, None if there is _UNREADABLE else there)
        seeded = None if seed is None else True
        if raw[0] is not None:
            value = self.decode(raw[0])
            return Lookup(None if value is _UNREADABLE else value, False, {}, seeded)
        read = self._decoded(ahead, raw[2]) if ahead else {}
        return Lookup(None, raw[1] == 1, {name: read.get(name) for name in ahead}, seeded)

    def _script(self, script: Script, client: Any, keys: list[Any], args: list[Any]) -> Any:
        """``script`` run on ``client``'s server by its digest, sent as ``exchange`` sends: a
        miss runs one or two (its lookup, its page's store), and redis-py's way hands out a
        connection from the pool for each, and encodes each argument in Python. A server
        that has not seen the script yet gets it (redis-py's ``Script`` loads it)."""
        if _pack_command is None:  # (without hiredis: redis-py's way)
            packed = None
        else:
            packed = [
                _pack_command(
                    ("EVALSHA", script.sha, len(keys), *map(str, keys), *map(_argument, args))
                )
            ]
        if packed is not None:
            with contextlib.suppress(redis_errors.NoScriptError):
                return self.exchange(client, packed)
        return self._loading(script, client, keys, args)

    def _loading(self, script: Script, client: Any, keys: list[Any], args: list[Any]) -> Any:
        """``script`` run the way redis-py runs it: loaded first where the server lacks it."""
        try:
            return script(keys=keys, args=args, client=client)
        except _CONNECTION_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc

    def add_many(self, data: Mapping[str, Any], timeout: int | None) -> dict[str, Any]:
        """``SET NX`` of each key, then an ``MGET`` of them all, pipelined on the primary: the
        backend's ``add_many``."""
        client = self.redis()
        made = [self.make_key(key) for key in data]
        pipe = client.pipeline(transaction=False)
        for key, value in zip(made, data.values(), strict=True):
            pipe.set(
                key, self.encode(value), nx=True, px=None if timeout is None else timeout * 1000
            )
        pipe.mget(made)
        try:
            *_, raw = pipe.execute()
        except _CONNECTION_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return self._decoded(data, raw)

    def read(
        self,
        keys: Sequence[str],
        rates: Sequence[RateCheck] = (),
        rates_if: tuple[str, Any] | None = None,
    ) -> tuple[dict[str, Any], list[Verdict] | None]:
        """The values of ``keys`` (those present) and, unless ``rates_if`` names one of them
        whose value is not the one given, the verdicts of ``rates``: one round trip."""
        client = self.redis()
        made = [self.make_key(key) for key in keys]
        condition, expected = 0, ""
        if rates_if is not None:
            condition, expected = keys.index(rates_if[0]) + 1, str(rates_if[1])
        args: list[Any] = [len(keys), len(rates), condition, expected]
        for check in rates:
            args += [check.limit, check.duration, repr(check.now), uuid.uuid4().hex[:16]]
        try:
            raw, verdicts = self._script(
                _READ_AND_RATE,
                client,
                [*made, *(self.make_key(check.key) for check in rates)],
                args,
            )
        except redis_errors.ResponseError as exc:
            if not is_outage(exc):
                raise
            # A Redis that answers but refuses writes (a read-only replica after a failover, a
            # full one): the values still read; no rate can be counted, so every request passes.
            values = self.get_many(keys, client=client)
            if rates_if is not None and values.get(rates_if[0]) != rates_if[1]:
                return values, None
            return values, [ALLOWED] * len(rates)
        except _CONNECTION_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc
        found = zip(keys, raw, strict=True)
        values = {key: self.decode(value) for key, value in found if value is not None}
        values = {key: value for key, value in values.items() if value is not _UNREADABLE}
        if not verdicts:
            return values, None
        return values, [
            Verdict(bool(allowed), int(count), float(oldest) if oldest else None)
            for allowed, count, oldest in verdicts
        ]

    # This service's keys only -------------------------------------------------------------------

    def pattern(self, logical: str, *, every_version: bool = False) -> str:
        """The glob of the Redis keys whose logical key matches the glob ``logical``: made by
        the cache's KEY_FUNCTION, prefix and version escaped (django-redis's ``make_pattern``),
        so it reaches this cache's keys only, however they are laid out."""
        if every_version:
            return self._backend.key_func(logical, glob_escape(self._backend.key_prefix), "*")
        return str(self.make_pattern(logical))

    def logical(self, raw: bytes | str) -> str | None:
        """The logical key of one of this cache's Redis keys, of its current version: through
        its REVERSE_KEY_FUNCTION when one is set, else from where its KEY_FUNCTION puts the key
        (Django's and most key functions keep it whole); ``None`` when neither can tell."""
        text = _text(raw)
        if self._params.get("REVERSE_KEY_FUNCTION"):
            try:
                return self.reverse_key(text)
            except Exception:  # a key the user's function was not written for
                return None
        backend = self._backend
        made = str(backend.key_func("\0", backend.key_prefix, backend.version))
        head, marked, tail = made.partition("\0")
        if not marked or len(text) < len(head) + len(tail):
            return None
        if not (text.startswith(head) and text.endswith(tail)):
            return None
        return text[len(head) : len(text) - len(tail)]

    def scan(self, match: str) -> Iterator[bytes]:
        return self.redis().scan_iter(match=match, count=self.scan_count)

    def unlink_matching(
        self, match: str, *, dry_run: bool, skip: Callable[[bytes], bool] | None = None
    ) -> int:
        """UNLINK the keys matching the glob ``match`` (whole Redis keys), in chunks."""
        redis = self.redis()
        count, chunk = 0, []
        for key in self.scan(match):
            if skip is not None and skip(key):
                continue
            count += 1
            if dry_run:
                continue
            chunk.append(key)
            if len(chunk) >= self.delete_chunk:
                redis.unlink(*chunk)
                chunk = []
        if chunk:
            redis.unlink(*chunk)
        return count

    # Statistics shared by every process ---------------------------------------------------------

    def publish(
        self,
        stats_key: str,
        minute_key: Callable[[int], str],
        pending: Mapping[str, Mapping[str, int]],
        minutes: Mapping[int, Mapping[str, int]],
    ) -> None:
        """Add this process's counters to the shared hashes, in one pipeline."""
        pipe = self.redis().pipeline(transaction=False)
        for ns, counter in pending.items():
            for name, value in counter.items():
                pipe.hincrby(stats_key, f"{ns}|{name}", value)
        for minute, counter in minutes.items():
            key = minute_key(minute)
            for name, value in counter.items():
                pipe.hincrby(key, name, value)
            pipe.expire(key, HISTORY_TTL)
        pipe.execute()

    def counters(
        self, stats_key: str, minute_key: Callable[[int], str], minutes: Sequence[int]
    ) -> tuple[dict[str, dict[str, int]], dict[int, dict[str, int]], float | None]:
        """The fleet's counters per namespace, per minute, and when they were last reset."""
        redis = self.redis()
        per_ns: dict[str, Counter[str]] = {}
        reset_at = None
        for field, value in redis.hgetall(stats_key).items():
            name = _text(field)
            if name == "_reset_at":
                reset_at = float(value)
                continue
            ns, _, counter = name.rpartition("|")
            per_ns.setdefault(ns, Counter())[counter] = int(value)
        pipe = redis.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(minute_key(minute))
        history = {
            minute: {_text(k): int(v) for k, v in counts.items()}
            for minute, counts in zip(minutes, pipe.execute(), strict=True)
            if counts
        }
        return {ns: dict(c) for ns, c in per_ns.items()}, history, reset_at

    def reset_counters(self, stats_key: str, reset_at: float) -> None:
        pipe = self.redis().pipeline(transaction=True)
        pipe.delete(stats_key)
        pipe.hset(stats_key, "_reset_at", repr(reset_at))
        pipe.execute()

    def server_info(self) -> dict[str, Any]:
        redis = self.redis()
        server = redis.info()
        info = {key: server.get(key) for key in INFO_FIELDS}
        info["db_keys"] = redis.dbsize()
        return info


class InventoryRedisClient(InventoryClientMixin, DefaultClient):
    """One server, or a primary and its replicas (``LOCATION`` list, the primary first)."""


class InventorySentinelClient(InventoryClientMixin, SentinelClient):
    """The primary and the replicas Sentinel names (``OPTIONS["SENTINELS"]``); django-redis's
    ``SentinelConnectionFactory`` asks Sentinel again after a failover."""


_UNREADABLE = object()


def _argument(value: Any) -> bytes | str | int | float:
    """A script's argument as hiredis packs it (``InventoryClientMixin._script``): what redis-py
    would send for it, without its encoder (a bool is refused there, and here)."""
    if isinstance(value, bytes | str | int | float) and not isinstance(value, bool):
        return value
    raise redis_errors.DataError(f"a script argument of type {type(value).__name__}")


class _Held:
    """The connection a thread keeps for the warm read (``read_values``), one per thread: every
    request's read saves the pool's hand-over (its lock, its readiness poll, its accounting).

    Given back to its pool when the thread ends (a thread-local's values go with their thread),
    or when the thread reads through another pool. Only from a plain pool (not Sentinel's,
    whose connections follow the primary when it moves) and only in the process that took it.
    A connection the server closed is connected anew on the next send, and fenced, as a pooled
    one is (``Fence``); one that failed is disconnected before it is kept."""

    __slots__ = ("connection", "pid", "pool")
    _local = threading.local()
    #: This process's id, set again in a forked child (asked once, not on every read).
    _pid = os.getpid()

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = _Held._pid
        self.connection = pool.get_connection()

    @classmethod
    def of(cls, pool: Any) -> _Held | None:
        """This thread's connection from ``pool``, taken now if need be; ``None`` where one is
        not kept (another kind of pool)."""
        held = getattr(cls._local, "held", None)
        if held is not None and held.pool is pool and held.pid == cls._pid:
            return held
        if type(pool) is not ConnectionPool:
            return None
        if held is not None and held.pid != cls._pid:
            held.pid = None  # a forked child's copy: the parent's connection, not to release
        cls._local.held = held = cls(pool)  # (the one held before, if any, is released)
        return held

    @classmethod
    def forked(cls) -> None:
        cls._pid = os.getpid()

    def __del__(self) -> None:
        if self.pid == _Held._pid:
            with contextlib.suppress(Exception):  # (at exit, the pool may be gone already)
                self.pool.release(self.connection)


os.register_at_fork(after_in_child=_Held.forked)


class ServerChanged(redis_errors.ConnectionError):
    """A new connection found a server other than the one this process knew (``Fence``): the
    call fails open, as in an outage, but the server answers, so it is no failure of the kind
    that opens the breaker (``is_unreachable``)."""


class Fence:
    """Installed on the primary's connection pool: every new connection asks the server who it
    is (``INFO``) before it is used. When the answer changed since a process last asked — a
    failover behind a managed endpoint, a replica promoted, a restart, maybe from an older
    snapshot — the server may hold older generations than the ones this process served under,
    so the connection refuses the call it was made for (which falls back to the database, as in
    an outage) and the process re-seeds every generation and applies the database's versions
    before it reads from the cache again (``sync``). The states are held weakly: a cache made
    again (tests, settings changes) lets go of its old one."""

    def __init__(self) -> None:
        self.states: weakref.WeakSet[CacheState] = weakref.WeakSet()
        #: The server's identity as the pool's last new connection saw it.
        self.identity: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def watch(self, state: CacheState) -> None:
        with self._lock:
            # A cache made again (settings changed) reuses the pool's open connections: it
            # knows the server the pool knows.
            if state.identity is None:
                state.identity = self.identity
            self.states.add(state)

    def __call__(self, connection: Any) -> None:
        connection.on_connect()
        try:
            identity = _identity_over(connection)
        except redis_errors.ResponseError:
            return  # INFO refused (renamed away on some managed servers): nothing to compare
        with self._lock:
            self.identity = identity
            changed = [state for state in self.states if noticed(state, identity)]
        if changed:
            raise ServerChanged(
                "the Redis server changed (a failover or a restart): re-seeding the generations"
            )


def noticed(state: CacheState, identity: tuple[str, str]) -> bool:
    """Record ``identity`` as the server's; True when it differs from the one known before, in
    which case the process re-seeds its generations before reading again."""
    known, state.identity = state.identity, identity
    if known is None or known == identity:
        return False
    logger.warning(
        "the Redis server is not the one this process knew (run_id %s, replication id %s): "
        "re-seeding every generation",
        identity[0][:8],
        identity[1][:8],
    )
    state.reseed = True
    if state.guard is not None:
        state.guard.needs_replay = True
    return True


def _identity_over(connection: Any) -> tuple[str, str]:
    connection.send_command("INFO", "server")
    server = parse_info(connection.read_response())
    connection.send_command("INFO", "replication")
    replication = parse_info(connection.read_response())
    return str(server.get("run_id", "")), str(replication.get("master_replid", ""))


def fence(pool: Any) -> Fence:
    """The pool's fence, installed on its first use."""
    with _fences_lock:
        installed = pool.connection_kwargs.get("redis_connect_func")
        if isinstance(installed, Fence):
            return installed
        made = pool.connection_kwargs["redis_connect_func"] = Fence()
        return made


_fences_lock = threading.Lock()


def _wrong_type(exc: BaseException | None) -> bool:
    return isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("WRONGTYPE")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_CONNECTION_ERRORS = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    socket.timeout,
    ConnectionError,
)


def is_unreachable(exc: BaseException) -> bool:
    """Outages that trip the breaker: Redis does not answer (refused, reset, timed out).

    A Redis that answers but refuses an operation (full with noeviction, loading, read-only)
    fails that operation open without tripping the breaker: its reads still work, and so do the
    deletes that make a refused invalidation take effect (``generations._forget``). Nor does
    the refusal of a connection that found a new server (``ServerChanged``): the process
    re-seeds and uses the cache again at once, where an open breaker would keep it away for a
    whole reset timeout, its writes bumping nothing.
    """
    return (
        is_outage(exc)
        and not isinstance(exc, redis_errors.ResponseError)
        and not found_a_new_server(exc)
    )


def found_a_new_server(exc: BaseException) -> bool:
    """``exc`` is, or was raised from, the refusal of a connection that found a new server."""
    cause: BaseException | None = exc
    while cause is not None:  # django-redis raises ConnectionInterrupted from redis-py's error
        if isinstance(cause, ServerChanged):
            return True
        cause = cause.__cause__
    return False


def is_outage(exc: BaseException) -> bool:
    """Errors that mean "the cache is not answering", as opposed to programming errors."""
    if isinstance(
        exc,
        ConnectionInterrupted
        | redis_errors.ConnectionError
        | redis_errors.TimeoutError
        | socket.timeout
        | ConnectionError
        # redis-py maps these replies to their own classes and strips the prefix ("OOM ...")
        # from the message; django-redis re-raises them as they are.
        | redis_errors.OutOfMemoryError
        | redis_errors.BusyLoadingError
        | redis_errors.ReadOnlyError
        | redis_errors.MasterDownError,
    ):
        return True
    if isinstance(exc, redis_errors.ResponseError):
        message = str(exc)
        return message.startswith(("OOM", "LOADING", "BUSY", "MASTERDOWN", "READONLY"))
    return False


def redact(location: Any) -> str:
    """Every Redis URL of ``location`` (a URL, comma-separated URLs, or a list of them: the
    primary first) with its passwords hidden, in the user part or the query."""
    urls = location if isinstance(location, list | tuple) else str(location).split(",")
    return ", ".join(_redact_url(str(url).strip()) for url in urls)


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{f'[{host}]' if ':' in host else host}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        hidden = [(name, "***" if name == "password" else value) for name, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)


#: The clients the Redis backend runs on, by the ``CLIENT_CLASS`` values that ask for them.
REDIS_CLIENT = "performance.cache.redis.InventoryRedisClient"
SENTINEL_CLIENT = "performance.cache.redis.InventorySentinelClient"
_CLIENTS = {
    "django_redis.client.DefaultClient": REDIS_CLIENT,
    "django_redis.client.default.DefaultClient": REDIS_CLIENT,
    REDIS_CLIENT: REDIS_CLIENT,
    "django_redis.client.SentinelClient": SENTINEL_CLIENT,
    "django_redis.client.sentinel.SentinelClient": SENTINEL_CLIENT,
    SENTINEL_CLIENT: SENTINEL_CLIENT,
}
_SUPPORTED = (
    "django_redis.client.DefaultClient (one server, or a LOCATION list: the primary, then its "
    "replicas) or django_redis.client.SentinelClient (OPTIONS SENTINELS, with "
    "django_redis.pool.SentinelConnectionFactory)"
)
_REFUSED = {
    "ShardClient": "it spreads keys over several servers, and a request reads its "
    "generations, rates and entries together, in one script on one primary",
    "HerdClient": "it stores values wrapped in its own envelope, which the service's scripts "
    "cannot read, and cannot increment the generations; the service has its own stampede lock",
}


def client_class(options: Mapping[str, Any]) -> str:
    """The client the backend runs on for ``options``; ``ImproperlyConfigured`` (naming what is
    supported) for a configuration it cannot run on, so that start-up fails, not a request."""
    asked = options.get("CLIENT_CLASS", "django_redis.client.DefaultClient")
    chosen = _CLIENTS.get(asked)
    if chosen is None:
        why = next((why for name, why in _REFUSED.items() if str(asked).endswith(name)), "")
        raise ImproperlyConfigured(
            f"The Redis cache's CLIENT_CLASS {asked!r} is not supported"
            + (f": {why}" if why else "")
            + f". Use {_SUPPORTED}."
        )
    if chosen == SENTINEL_CLIENT:
        factory = options.get("CONNECTION_FACTORY") or getattr(
            settings, "DJANGO_REDIS_CONNECTION_FACTORY", ""
        )
        if not options.get("SENTINELS"):
            raise ImproperlyConfigured(
                "The Redis cache's SentinelClient needs OPTIONS['SENTINELS']: the (host, port) "
                "of each Sentinel (REDIS_SENTINELS)."
            )
        if not factory or not issubclass(import_string(factory), SentinelConnectionFactory):
            raise ImproperlyConfigured(
                "The Redis cache's SentinelClient needs OPTIONS['CONNECTION_FACTORY'] = "
                "'django_redis.pool.SentinelConnectionFactory', which asks Sentinel where the "
                "primary is."
            )
    return chosen


def unusable_cache(alias: str = "default") -> str | None:
    """Why the cache ``alias`` cannot be built from its settings (a client the backend refuses,
    a missing prefix...), or ``None``. Builds a backend of its own, which connects to nothing."""
    try:
        caches.create_connection(alias).close()
    except ImproperlyConfigured as exc:
        return str(exc)
    return None


class InstrumentedRedisCache(InstrumentedCacheMixin, RedisCache):
    """django-redis, counted; counters are flushed to Redis so they add up across the fleet.

    Every call goes through the process's circuit breaker; after an outage, the invalidations
    the cache missed are replayed before anything is read from it again.
    """

    stats_scope = "fleet"
    #: Seconds between two flushes of this process's counters.
    flush_interval = 1.0

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        options = params.setdefault("OPTIONS", {})
        chosen = client_class(options)
        # Plain data unless configured otherwise: django-redis would pickle (see SERIALIZER).
        options.setdefault("SERIALIZER", SERIALIZER)
        super().__init__(server, params)
        # Django's options as they are (not a copy): django-redis's client reads them live.
        self._client_cls = import_string(chosen)
        if not self.key_prefix:
            raise ImproperlyConfigured(
                "The Redis cache needs a KEY_PREFIX: it scopes clear and patterns."
            )
        # As django-redis reads LOCATION: a list, or comma-separated URLs; the primary first.
        servers = server if isinstance(server, list | tuple) else str(server).split(",")
        sentinels = options.get("SENTINELS") or ()
        self._location = redact(servers)
        if sentinels:
            self._location += " (Sentinel " + ", ".join(f"{h}:{p}" for h, p in sentinels) + ")"
        # One state per cache in this process, whichever way its servers are written.
        self.state = state_for(
            "redis", (tuple(servers), tuple(sentinels)), self.key_prefix, self._new_state
        )
        # Django makes a backend per thread: the trial call may use any of them.
        self.state.guard.probe = self._ping

    def _new_state(self) -> CacheState:
        from .sync import sync

        return CacheState(
            copies=HotEntries(getattr(settings, "CACHE_HOT_BYTES", 0), self.default_timeout),
            guard=make_guard(
                f"{self._location}|{self.key_prefix}",
                trips=is_unreachable,
                is_outage=is_outage,
                probe=self._ping,
                replay=lambda: sync(ask_server=False),
            ),
            last_flush=time.monotonic(),
        )

    @property
    def guard(self) -> Any:
        return self.state.guard

    def _ping(self) -> Any:
        return self.client.redis().ping()

    def _call_backend(self, fn: Callable[[], Any], *, short: bool = False) -> Any:
        if short and not self.guard.needs_replay:
            # (``exchange`` gives the turn away if the answer is slow to come, or to connect;
            # a replay of missed invalidations, which may wait on another thread's, is made
            # without the turn — but for one that begins between this check and the call)
            return self.guard.run(fn)
        with waiting():
            return self.guard.run(fn)

    def _advance(self, steps: Sequence[Any], now: int) -> list[int]:
        return self.client.advance(steps)

    def _store_page(self, entry: PageEntry, pending: Pending) -> bool:
        return self.client.store_page(entry, pending)

    def _set_each(self, pending: Pending) -> None:
        self.client.set_each(pending)

    def _add_many(self, data: Mapping[str, Any], timeout: int | None) -> dict[str, Any]:
        return self.client.add_many(data, timeout)

    def _store(
        self, key: str, value: Any, timeout: Any, release: str | None, pending: Pending
    ) -> bool:
        return self.client.store(key, value, timeout, release, pending)

    def _lookup(
        self,
        key: str,
        lock: str,
        lock_timeout: int,
        ahead: Callable[[], Sequence[str]],
        seed: Any,
    ) -> Lookup:
        return self.client.lookup(key, lock, lock_timeout, list(ahead()), seed)

    def server_changed(self) -> bool | None:
        """Ask the primary who it is (the sweep does, in every process); True when it is not
        the server this process knew, which then re-seeds its generations (``sync``); ``None``
        when it does not answer."""
        try:
            identity = self._call_backend(self.client.identity)
        except CacheUnavailable as exc:
            # The new connection this call made found a new server: it is re-seeding.
            return True if found_a_new_server(exc) else None
        return noticed(self.state, identity)

    def invalidation_missed(self) -> None:
        """An invalidation could not reach the cache: read nothing from it until replayed."""
        self.guard.needs_replay = True

    def breaker_state(self) -> dict[str, Any] | None:
        return self.guard.state()

    def reachable(self) -> bool:
        return self.guard.closed and not self.guard.needs_replay

    # Reads and rates in one round trip -------------------------------------------------------

    def read(
        self,
        keys: Sequence[str],
        *,
        rates: Sequence[RateCheck] = (),
        rates_if: tuple[str, Any] | None = None,
        peek: str | None = None,
    ) -> tuple[dict[str, Any], list[Verdict] | None]:
        if not rates:
            return self.read_values(tuple(keys), peek), None
        names = tuple(keys) if peek is None else (*keys, peek)
        outcome = self._run_many(
            [*names, *(check.key for check in rates)],
            lambda: self.client.read(names, rates, rates_if),
            fallback=({}, [ALLOWED] * len(rates)),
            count=lambda key, result: count_found(key, result[0]) if key in keys else None,
        )
        return outcome

    def _values(self, keys: tuple[str, ...], peek: str | None) -> dict[str, Any]:
        return self.client.read_values(keys, peek)

    def rate_hits(self, checks: Sequence[RateCheck]) -> list[Verdict]:
        _, verdicts = self.read((), rates=checks)
        return verdicts or []  # an unreachable cache answers every rate ALLOWED

    # Shared statistics -----------------------------------------------------------------------

    @property
    def _stats_key(self) -> str:
        return f"{self.key_prefix}#stats"

    def _minute_key(self, minute: int) -> str:
        return f"{self.key_prefix}#stats:m:{minute}"

    def _after_operation(self) -> None:
        if time.monotonic() - self.state.last_flush >= self.flush_interval:
            self.flush_stats()

    def flush_stats(self) -> None:
        state = self.state
        if not state.flush_lock.acquire(blocking=False):
            return  # another thread of this process is flushing
        try:
            state.last_flush = time.monotonic()
            pending, minutes = self.recorder.drain()
            if not pending and not minutes:
                return
            try:
                self.client.publish(self._stats_key, self._minute_key, pending, minutes)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.recorder.restore(pending, minutes)
        finally:
            state.flush_lock.release()

    def stats_snapshot(self) -> dict[str, Any]:
        self.flush_stats()
        snapshot = {
            "per_namespace": {},
            "history": {},
            "evictions": None,
            "reset_at": self.recorder.reset_at,
        }
        now_minute = int(self.recorder.clock() // 60)
        minutes = list(range(now_minute - 59, now_minute + 1))
        try:
            per_ns, history, reset_at = self.client.counters(
                self._stats_key, self._minute_key, minutes
            )
        except Exception as exc:
            if not is_outage(exc):
                raise
            snapshot["unavailable"] = True
            return snapshot
        snapshot.update(per_namespace=per_ns, history=history)
        if reset_at is not None:
            snapshot["reset_at"] = reset_at
        return snapshot

    def reset_stats(self) -> None:
        self.recorder.reset()
        self.client.reset_counters(self._stats_key, self.recorder.reset_at)

    # Keys of this service only ---------------------------------------------------------------

    def logical_keys(self, pattern: str = "*") -> Iterator[str]:
        client = self.client
        for raw in client.scan(client.pattern(pattern)):
            key = client.logical(raw)
            if key is not None:
                yield key

    def delete_logical(self, pattern: str, *, dry_run: bool = False) -> int:
        """Delete this service's keys whose logical name matches ``pattern`` (SCAN + UNLINK)."""
        client = self.client

        def internal(raw: bytes) -> bool:
            key = client.logical(raw)
            return key is not None and internal_key(key, pattern)

        return client.unlink_matching(client.pattern(pattern), dry_run=dry_run, skip=internal)

    def clear(self) -> None:
        """Remove this service's keys, every version, but the clients' request rates; never
        ``FLUSHDB`` a shared Redis."""
        client = self.client

        def rate(raw: bytes) -> bool:
            key = client.logical(raw)  # rates are kept under the current version
            return key is not None and namespace_of(key) == RATE_NAMESPACE

        self._run(
            "default",
            lambda: client.unlink_matching(
                client.pattern("*", every_version=True), dry_run=False, skip=rate
            ),
            fallback=None,
        )

    def server_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": "redis", "location": self._location}
        try:
            info.update(self.client.server_info())
        except Exception as exc:
            if not is_outage(exc):
                raise
            info["unavailable"] = True
        return info
