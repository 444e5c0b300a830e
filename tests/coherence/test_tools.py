"""The tools the failover scenarios stand on do what those scenarios assume.

A proxy that kept an old connection open after a switch, or a replica that kept receiving
writes after its link was "cut", would make a failover scenario pass or fail for reasons of
its own: each behaviour the scenarios rely on is checked here, against real redis-servers.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.performance.servers import RedisServer

from .conftest import require_processes
from .proxy import TcpProxy

pytestmark = pytest.mark.redis


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    require_processes(redis=True)
    first = RedisServer(tmp_path / "first")
    try:
        second = RedisServer(tmp_path / "second")
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def _client(port: int, timeout: float = 0.5) -> redis.Redis:
    # No retries: what the proxy does must show on the first try.
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )


def _name(client: redis.Redis) -> int:
    """Which server answers: each test's servers tell themselves apart by their port."""
    return int(client.config_get("port")["port"])


def _raw(port: int) -> socket.socket:
    """A plain connection, to see what the proxy does to it (redis-py would reconnect)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.sendall(b"PING\r\n")
    assert sock.recv(64) == b"+PONG\r\n"
    return sock


def test_the_proxy_forwards_switches_and_drops_what_was_open(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    first, second = pair
    proxy = TcpProxy(first.address)
    try:
        client = _client(proxy.port)
        assert _name(client) == first.port
        opened = _raw(proxy.port)
        proxy.switch(second.address)
        assert opened.recv(64) == b""  # dropped: closed by the proxy
        opened.close()
        assert _name(client) == second.port  # a new connection reaches the new target
        kept = _raw(proxy.port)
        proxy.switch(first.address, drop_connections=False)
        kept.sendall(b"CONFIG GET port\r\n")
        assert str(second.port).encode() in kept.recv(256)  # kept open, to the old target
        kept.close()
        client.close()
        assert _name(_client(proxy.port)) == first.port
    finally:
        proxy.stop()


def test_a_blackholed_proxy_holds_or_resets(pair: tuple[RedisServer, RedisServer]) -> None:
    first, _ = pair
    proxy = TcpProxy(first.address)
    try:
        client = _client(proxy.port, timeout=0.3)
        assert client.ping()
        opened = _raw(proxy.port)
        proxy.blackhole(hold=True)
        assert opened.recv(64) == b""  # what was open is dropped
        opened.close()
        with pytest.raises(redis.TimeoutError):
            client.ping()  # a new connection is accepted, never answered
        proxy.blackhole(hold=False)
        with pytest.raises(redis.ConnectionError):
            client.ping()  # closed as soon as accepted
        client.close()
    finally:
        proxy.stop()
    with pytest.raises(redis.ConnectionError):
        _client(proxy.port).ping()  # stopped: nothing listens any more


def test_a_cut_replica_keeps_its_data_and_misses_later_writes(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = pair
    with primary.client() as writer:
        writer.set("k", "before")
    replica.replicate(primary)
    with replica.client() as reader:
        assert reader.get("k") == b"before"
    replica.cut_replication()
    with primary.client() as writer:
        writer.set("k", "after")
        writer.set("other", "after")
    replica.promote()
    with replica.client() as reader:
        assert reader.get("k") == b"before"
        assert reader.get("other") is None
        reader.set("k", "promoted")  # writable now
        assert reader.info("replication")["role"] == "master"


def test_a_restart_from_a_snapshot_goes_back_to_it(tmp_path: Path) -> None:
    require_processes(redis=True)
    server = RedisServer(tmp_path / "redis")
    try:
        with server.client() as client:
            client.set("k", "old")
        snapshot = server.snapshot(tmp_path / "old.rdb")
        with server.client() as client:
            client.set("k", "new")
        server.kill()
        server.restart(snapshot=snapshot)
        with server.client() as client:
            assert client.get("k") == b"old"
        server.kill()
        server.restart()  # without a snapshot: empty, as the outage tests expect
        with server.client() as client:
            assert client.get("k") is None
    finally:
        server.stop()
