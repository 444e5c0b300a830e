"""Real processes for the outage and coherence tests: private redis-servers (primary, replica,
snapshots), gunicorn servers, ``manage.py`` commands, a load driver.

Every process started here is stopped by its owner's ``stop()`` (the fixtures call it in a
finalizer); every wait has a deadline. The shared Redis on port 6379 is never touched: each
test runs its own ``redis-server`` on a free port, in a temporary directory, writing a snapshot
only when the test asks for one (``snapshot``).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
REDIS_SERVER = shutil.which("redis-server")

SEED = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from workstations.models import Workstation
user = get_user_model().objects.create_superuser("root", "root@example.com", "unused-password")
pks = [
    Workstation.objects.create(
        asset_tag=f"AT-{n}", hostname=f"ws-{n:02d}", serial_number=f"SN-{n}", notes="v0"
    ).pk
    for n in range(COUNT)
]
print(json.dumps({"token": Token.objects.create(user=user).key, "pks": pks}))
"""


def free_port() -> int:
    """A port nothing listens on now, and never handed out before by this process.

    Asking the system for a free port finds one nobody has bound: two servers started side by
    side could both be given the same one, the first not having bound it yet when the second's
    is chosen. The second then fails to bind and exits, while the first answers on the port for
    both (a full run saw the "B" server of an outage test never start, and the test wait for
    its breaker in vain).
    """
    with _ports_lock:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _ports_given:
                _ports_given.add(port)
                return port


_ports_given: set[int] = set()
_ports_lock = threading.Lock()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# Redis -------------------------------------------------------------------------------------


class RedisServer:
    """A private ``redis-server``: kill, restart on the same port (empty or from a snapshot),
    pause, fill to maxmemory, replicate another, be cut off from it, be promoted."""

    #: The file ``SAVE`` writes and a start loads, in ``directory``.
    DUMP = "dump.rdb"

    def __init__(self, directory: Path) -> None:
        assert REDIS_SERVER, "redis-server is not on PATH"
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.address = ("127.0.0.1", self.port)
        self.process: subprocess.Popen | None = None
        self.stopped = False
        self.start()

    def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                # No automatic snapshot: a file is written only by an explicit SAVE
                # (``snapshot``), and a start loads one only when a test put it there.
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--dbfilename",
                self.DUMP,
                # A replica's first sync starts at once (Redis waits 5 s for more replicas).
                "--repl-diskless-sync-delay",
                "0",
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if not wait_for(self._answers, timeout=10):
            self.stop()
            raise RuntimeError(f"redis-server on port {self.port} did not start")

    def client(self, timeout: float = 2.0) -> redis.Redis:
        # No retries: a test must see an outage as it is, not hidden behind back-offs.
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            return False
        client = self.client(timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    # Outages ---------------------------------------------------------------------------------

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self, *, snapshot: Path | None = None) -> None:
        """Start again on the same port: empty, or with the data of ``snapshot`` (``snapshot``
        returned it), as a server restored from an older backup would."""
        dump = self.directory / self.DUMP
        dump.unlink(missing_ok=True)
        if snapshot is not None:
            shutil.copyfile(snapshot, dump)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self.stopped = False

    def client_pause(self, milliseconds: int = 5_000) -> None:
        with self.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", milliseconds, "ALL")

    def client_unpause(self) -> None:
        # Redis 7.0 postpones CLIENT UNPAUSE itself (like every command of a normal client)
        # until a PAUSE ... ALL ends: this returns when the pause is over.
        with self.client(timeout=15) as admin:
            admin.execute_command("CLIENT", "UNPAUSE")

    def fill_to_maxmemory(self, limit: str = "2mb") -> int:
        """Refuse writes (OOM) while answering reads: noeviction at a small maxmemory."""
        with self.client() as admin:
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", limit)
            junk = b"x" * 10_000
            for n in range(10_000):
                try:
                    admin.set(f"junk:{n}", junk)
                except redis.ResponseError as exc:
                    assert str(exc).startswith(("OOM", "command not allowed")), exc
                    return n
        raise AssertionError("maxmemory was never reached")

    def raise_maxmemory(self) -> None:
        with self.client(timeout=5) as admin:
            admin.config_set("maxmemory", "0")
            keys = list(admin.scan_iter(match="junk:*", count=1000))
            if keys:
                admin.delete(*keys)

    # Snapshots and replication ---------------------------------------------------------------

    def snapshot(self, target: Path) -> Path:
        """``SAVE`` the data set now and keep a copy of the file at ``target``."""
        with self.client(timeout=10) as admin:
            admin.save()
        shutil.copyfile(self.directory / self.DUMP, target)
        return target

    def info(self, section: str = "replication") -> dict[str, Any]:
        with self.client() as admin:
            return admin.info(section)

    def replicate(self, primary: RedisServer, timeout: float = 10) -> None:
        """Become a replica of ``primary`` (``REPLICAOF``) and wait until the link is up and
        every write the primary had made is here."""
        with self.client() as admin:
            admin.execute_command("REPLICAOF", "127.0.0.1", primary.port)
        if not wait_for(lambda: self.info().get("master_link_status") == "up", timeout):
            raise RuntimeError(f"replica on {self.port} did not connect to {primary.port}")
        self.wait_synced(primary, timeout)

    def wait_synced(self, primary: RedisServer, timeout: float = 10) -> None:
        """Wait until this replica has applied everything ``primary`` had written so far."""
        target = primary.info()["master_repl_offset"]
        if not wait_for(lambda: self.info().get("slave_repl_offset", -1) >= target, timeout):
            raise RuntimeError(f"replica on {self.port} did not catch up with {primary.port}")

    def cut_replication(self) -> None:
        """Stop receiving the primary's writes, keeping the data set as it is.

        ``REPLICAOF`` to a port where nothing listens: the replica drops its link, keeps
        its data (it is replaced only by a successful sync, which never comes) and keeps
        answering reads (``replica-serve-stale-data``), as a replica cut off by a partition.
        """
        with self.client() as admin:
            admin.execute_command("REPLICAOF", "127.0.0.1", free_port())
        if not wait_for(lambda: self.info().get("master_link_status") == "down", 10):
            raise RuntimeError(f"replica on {self.port} kept its link")

    def promote(self) -> None:
        """``REPLICAOF NO ONE``: a primary from now on, with the data it has."""
        with self.client() as admin:
            admin.execute_command("REPLICAOF", "NO", "ONE")
        if not wait_for(lambda: self.info().get("role") == "master", 10):
            raise RuntimeError(f"replica on {self.port} was not promoted")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.kill(self.process.pid, signal.SIGCONT)  # a stopped process cannot act on TERM
        except ProcessLookupError:
            return
        self.process.kill()
        self.process.wait(timeout=10)


# gunicorn ----------------------------------------------------------------------------------


def database_url(database: Path | str) -> str:
    """A SQLite file's URL, or the URL given (PostgreSQL)."""
    return database if isinstance(database, str) else f"sqlite:///{database}"


def site_env(database: Path | str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a server or command on ``database`` (a SQLite file or a URL)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_ENV", "DEBUG", "CACHE_WARM_ON_START", "REDIS_URL"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": database_url(database),
            "VAR_DIR": str(var_dir),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def manage(
    env: dict[str, str], *args: str, timeout: float = 60, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` as an operator would, in a process of its own; output captured."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        timeout=timeout,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n"
            f"{result.stderr}"
        )
    return result


def migrated_site(
    directory: Path, count: int, database: Path | str | None = None
) -> dict[str, Any]:
    """A migrated database with a superuser token and ``count`` workstations (notes "v0"):
    a SQLite file in ``directory`` unless ``database`` names another (a file or a URL)."""
    database = directory / "template.sqlite3" if database is None else database
    env = site_env(database, directory / "var")
    manage(env, "migrate", "--noinput", "-v", "0", timeout=120)
    result = manage(env, "shell", "-c", SEED.replace("COUNT", str(count)))
    seeded = json.loads(result.stdout.strip().splitlines()[-1])
    return {"database": database, **seeded}


def probe(port: int, token: str, timeout: float = 5.0) -> tuple[int | None, float]:
    """One normal request (a page of five workstations) on a new connection: its status
    (``None``: not answered within ``timeout``) and the seconds it took."""
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "GET",
            "/api/workstations/?page_size=5",
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - start
    except (OSError, http.client.HTTPException):
        return None, time.monotonic() - start
    finally:
        connection.close()


def copy_database(template: Path, target: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{template}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{target}{suffix}")
    return target


class Gunicorn:
    """One gunicorn server; ``request`` is safe from several threads (a connection each)."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        logs: Path,
        workers: int | None = 1,
        port: int | None = None,
    ) -> None:
        """``workers``: ``None`` leaves the count to the configuration's default."""
        self.name = name
        #: Chosen by the caller when a setting must name it (the Host the warmer fills for).
        self.port = free_port() if port is None else port
        self.log = logs / f"gunicorn-{name}.log"
        env = {**env, "BIND": f"127.0.0.1:{self.port}"}
        env.pop("WEB_CONCURRENCY", None)
        if workers is not None:
            env["WEB_CONCURRENCY"] = str(workers)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                # The configuration gives each instance a control socket of its own (under
                # VAR_DIR, named by its address): servers side by side never share one.
                [str(GUNICORN), "-c", "project/gunicorn.conf.py"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._local = threading.local()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server {self.name} exited:\n{self.log_text()[-3000:]}")
            try:
                status, _, _ = self.request("GET", "/api/workstations/", timeout=2)
            except OSError:
                time.sleep(0.1)
                continue
            if status == 401:  # up, and refusing anonymous readers
                return
        raise RuntimeError(f"server {self.name} not ready in time:\n{self.log_text()[-3000:]}")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        timeout: float = 10,
        accept: str = "application/json",
    ) -> tuple[int, dict[str, str], Any]:
        try:
            return self._request(method, path, body, token, timeout, accept, fresh=False)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # gunicorn closed an idle keep-alive connection (keepalive = 5 s): the request
            # never reached a worker, so sending it again on a new connection is safe.
            return self._request(method, path, body, token, timeout, accept, fresh=True)

    def _request(
        self,
        method: str,
        path: str,
        body: Any,
        token: str | None,
        timeout: float,
        accept: str,
        *,
        fresh: bool,
    ) -> tuple[int, dict[str, str], Any]:
        connection = getattr(self._local, "connection", None)
        if connection is None or fresh:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            self._local.connection = connection
        connection.timeout = timeout
        headers = {"Accept": accept}
        if token:
            headers["Authorization"] = f"Token {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, payload, headers)
            response = connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise
        try:
            data = json.loads(content) if content else None
        except ValueError:
            data = content.decode(errors="replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def terminate(self) -> None:
        """Ask the server to shut down (gracefully), without waiting: several stop together."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def breaker_opened(server: Gunicorn) -> bool:
    """The worker logged that its circuit breaker opened (``performance.cache.breaker``)."""
    return "cache circuit breaker opened" in server.log_text()


# Load --------------------------------------------------------------------------------------


def version(notes: str) -> int:
    assert notes.startswith("v"), notes
    return int(notes[1:])


@dataclass
class Sample:
    server: str
    kind: str  # "list", "detail", "write"
    start: float
    end: float
    status: int | None
    error: str = ""
    stale: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Register:
    """What each workstation's notes may read: one writer, versions that only go up.

    A read that starts after a write was acknowledged must show that write or a later one
    (``acked`` before the request); it may show a write in flight (``started`` after it).
    """

    pks: list[int]
    started: dict[int, int] = field(default_factory=dict)
    acked: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_version: int = 0

    def __post_init__(self) -> None:
        self.started = dict.fromkeys(self.pks, 0)
        self.acked = dict.fromkeys(self.pks, 0)

    def snapshot(self, which: str) -> dict[int, int]:
        with self.lock:
            return dict(getattr(self, which))


class Load:
    """A bounded mixed load: readers (list and detail) and one writer, over several servers.

    Stops at ``max_requests`` or when ``stop()`` is called; every request has a timeout. Each
    answer is checked against the register: wrong data is recorded as an error, stale data
    (older than a write acknowledged before the request started) as stale.
    """

    def __init__(
        self,
        servers: list[Gunicorn],
        token: str,
        register: Register,
        *,
        readers: int = 3,
        read_pause: float = 0.05,
        write_pause: float = 0.15,
        max_requests: int = 400,
        request_timeout: float = 10,
    ) -> None:
        self.servers = servers
        self.token = token
        self.register = register
        self.readers = readers
        self.read_pause = read_pause
        self.write_pause = write_pause
        self.max_requests = max_requests
        self.request_timeout = request_timeout
        self.samples: list[Sample] = []
        self._samples_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # Control -----------------------------------------------------------------------------

    def start(self) -> Load:
        self._threads = [
            threading.Thread(target=self._reader, args=(n,), daemon=True)
            for n in range(self.readers)
        ]
        self._threads.append(threading.Thread(target=self._writer, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "load threads did not stop"

    def _running(self) -> bool:
        return not self._stop.is_set() and len(self.samples) < self.max_requests

    def _record(self, sample: Sample) -> None:
        with self._samples_lock:
            self.samples.append(sample)

    # One write, one read -------------------------------------------------------------------

    def write(self, server: Gunicorn, pk: int) -> Sample:
        with self.register.lock:
            self.register.last_version += 1
            n = self.register.last_version
            self.register.started[pk] = n
        start = time.monotonic()
        try:
            status, _, body = server.request(
                "PATCH",
                f"/api/workstations/{pk}/",
                {"notes": f"v{n}"},
                token=self.token,
                timeout=self.request_timeout,
            )
        except (OSError, http.client.HTTPException) as exc:
            return Sample(server.name, "write", start, time.monotonic(), None, repr(exc))
        sample = Sample(server.name, "write", start, time.monotonic(), status)
        if status != 200 or not isinstance(body, dict) or body.get("notes") != f"v{n}":
            sample.error = f"write answered {status}: {str(body)[:200]}"
        else:
            with self.register.lock:
                self.register.acked[pk] = max(self.register.acked[pk], n)
        return sample

    def read(self, server: Gunicorn, pk: int | None) -> Sample:
        kind = "list" if pk is None else "detail"
        path = "/api/workstations/" if pk is None else f"/api/workstations/{pk}/"
        floor = self.register.snapshot("acked")
        start = time.monotonic()
        try:
            status, _, body = server.request(
                "GET", path, token=self.token, timeout=self.request_timeout
            )
        except (OSError, http.client.HTTPException) as exc:
            return Sample(server.name, kind, start, time.monotonic(), None, repr(exc))
        sample = Sample(server.name, kind, start, time.monotonic(), status)
        ceiling = self.register.snapshot("started")
        if status != 200 or not isinstance(body, dict):
            sample.error = f"read answered {status}: {str(body)[:200]}"
            return sample
        rows = body.get("results", []) if pk is None else [body]
        seen = {row["id"]: version(row["notes"]) for row in rows if row.get("id") in floor}
        if pk is None and set(seen) != set(floor):
            sample.error = f"list is missing workstations: {sorted(set(floor) - set(seen))}"
        for row_pk, n in seen.items():
            if n > ceiling[row_pk]:
                sample.error = f"{row_pk}: v{n} was never written"
            elif n < floor[row_pk]:
                sample.stale = True
        return sample

    def _reader(self, index: int) -> None:
        rng = random.Random(index)
        while self._running():
            server = rng.choice(self.servers)
            pk = None if rng.random() < 0.4 else rng.choice(self.register.pks)
            self._record(self.read(server, pk))
            self._stop.wait(self.read_pause * (0.5 + rng.random()))

    def _writer(self) -> None:
        rng = random.Random(99)
        turn = 0
        while self._running():
            server = self.servers[turn % len(self.servers)]
            turn += 1
            self._record(self.write(server, rng.choice(self.register.pks)))
            self._stop.wait(self.write_pause)


def p99(samples: list[Sample]) -> float | None:
    """The 99th percentile of the durations, in seconds (nearest rank)."""
    if not samples:
        return None
    durations = sorted(s.seconds for s in samples)
    rank = max(0, -(-99 * len(durations) // 100) - 1)
    return durations[rank]
