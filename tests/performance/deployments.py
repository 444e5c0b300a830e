"""Private Redis deployments for tests: a primary with a replica, and a Sentinel watching them.

Built on ``servers.RedisServer`` (each on a free port, in a temporary directory, without
persistence); every process is stopped by ``Deployment.stop()``. The shared Redis on port 6379 is
never touched.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .servers import REDIS_SERVER, RedisServer, free_port, wait_for


def info(server: RedisServer, section: str = "replication") -> dict:
    with server.client() as client:
        return client.info(section)


def replicate(replica: RedisServer, primary: RedisServer, timeout: float = 15) -> None:
    """``REPLICAOF`` the primary; return once the link is up and the data set loaded."""
    with replica.client() as client:
        client.execute_command("REPLICAOF", "127.0.0.1", primary.port)

    def linked() -> bool:
        state = info(replica)
        return state.get("master_link_status") == "up" and not state.get("master_sync_in_progress")

    if not wait_for(linked, timeout, interval=0.05):
        raise RuntimeError(f"replica on {replica.port} did not sync with {primary.port}")


def cut_link(replica: RedisServer) -> None:
    """Stop replication, keeping the replica's (now aging) data set and its read-only role:
    it replicates from a port where nothing listens."""
    with replica.client() as client:
        client.execute_command("REPLICAOF", "127.0.0.1", free_port())


def synced(primary: RedisServer, replicas: int = 1, timeout_ms: int = 5000) -> None:
    """Wait until every write made so far on the primary reached ``replicas`` replicas."""
    with primary.client(timeout=timeout_ms / 1000 + 2) as client:
        acknowledged = client.execute_command("WAIT", replicas, timeout_ms)
    if acknowledged < replicas:
        raise RuntimeError(f"only {acknowledged} replica(s) acknowledged the writes")


class SentinelServer:
    """A private ``redis-server --sentinel`` monitoring ``primary`` as ``service`` (quorum 1).

    Each one names its primary differently: django-redis keeps its connection pools per process
    by URL (``redis://<master>/<db>``), so two deployments under one name, one after the other in
    a test process, would share the first one's pool.
    """

    def __init__(self, directory: Path, primary: RedisServer) -> None:
        assert REDIS_SERVER, "redis-server is not on PATH"
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.service = f"inventory-{self.port}"
        self.address = ("127.0.0.1", self.port)
        config = directory / "sentinel.conf"  # Sentinel rewrites its file: one of its own
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {directory}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 5000\n"
        )
        log = (directory / "sentinel.log").open("ab")
        self.process = subprocess.Popen(
            [REDIS_SERVER, str(config), "--sentinel"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            if not wait_for(lambda: self.master() == ("127.0.0.1", primary.port), timeout=10):
                raise RuntimeError(f"sentinel on {self.port} does not know its primary")
        except BaseException:
            self.stop()  # whatever went wrong, no process outlives its test
            raise

    def client(self) -> redis.Redis:
        return redis.Redis(
            *self.address, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )

    def master(self) -> tuple[str, int] | None:
        """Where Sentinel says the primary is."""
        if self.process.poll() is not None:
            return None
        try:
            with self.client() as client:
                found = client.sentinel_get_master_addr_by_name(self.service)
        except redis.RedisError:
            return None
        return (found[0], int(found[1])) if found else None

    def knows_replicas(self, count: int) -> bool:
        """Sentinel lists ``count`` replicas of the primary, connected, linked to it and not
        down: replicas it would read from, and promote."""
        try:
            with self.client() as client:
                replicas = client.sentinel_slaves(self.service)
        except redis.RedisError:
            return False
        healthy = [
            r
            for r in replicas
            if not (r.get("is_sdown") or r.get("is_odown") or r.get("is_disconnected"))
            and r.get("master-link-status") == "ok"
        ]
        return len(healthy) >= count

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class Deployment:
    """A primary and one replica; with ``sentinel``, a Sentinel in front of them."""

    primary: RedisServer
    replica: RedisServer
    sentinel: SentinelServer | None = None
    _stopped: list = field(default_factory=list)

    @classmethod
    def start(cls, directory: Path, *, sentinel: bool = False) -> Deployment:
        primary = RedisServer(directory / "primary")
        started: list = [primary]
        try:
            replica = RedisServer(directory / "replica")
            started.append(replica)
            replicate(replica, primary)
            watcher = None
            if sentinel:
                watcher = SentinelServer(directory / "sentinel", primary)
                started.append(watcher)
                if not wait_for(lambda: watcher.knows_replicas(1), timeout=15, interval=0.1):
                    raise RuntimeError("sentinel did not discover the replica")
        except BaseException:
            for process in reversed(started):
                process.stop()
            raise
        return cls(primary, replica, watcher)

    def write_on_replica(self, key: bytes, value: bytes) -> None:
        """Store ``value`` on the replica only (it stops refusing writes for this): what the
        replica answers then differs from the primary, so a read shows where it went."""
        with self.replica.client() as client:
            client.config_set("replica-read-only", "no")
            client.set(key, value)

    def stop(self) -> None:
        for process in (self.sentinel, self.replica, self.primary):
            if process is not None:
                process.stop()
