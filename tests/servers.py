"""Throwaway PostgreSQL and Redis servers on loopback for the test session.

Hand-written rather than pytest-postgresql/pytest-redis: CI runs as root, PostgreSQL refuses to
run as root, and those plugins cannot start the server as another user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class ServerMissing(RuntimeError):
    """Raised when a server binary is not installed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise ServerMissing(f"PostgreSQL's {name} is not installed")
    return found


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    pwd.getpwnam("postgres")  # KeyError when the user is missing: a clear failure
    return ["runuser", "-u", "postgres", "--", *cmd]


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


class PgServer:
    """A throwaway PostgreSQL cluster (as the ``postgres`` user when running as root).

    ``primary``: a streaming replica of that server, copied by ``pg_basebackup -R``.
    """

    def __init__(self, primary: PgServer | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ecert-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.pg_ctl = _pg_bin("pg_ctl")
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        if primary is not None:
            self._copy(primary)
            return
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "ecert",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def _copy(self, primary: PgServer) -> None:
        # -R writes primary_conninfo and standby.signal: started, it streams from the primary.
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_basebackup"),
                    *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "ecert"),
                    *("-D", str(self.data), "-R", "-X", "stream", "-c", "fast"),
                ]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://ecert@127.0.0.1:{self.port}/ecert"

    def _ctl(self, *args: str) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200 "
            # More server options for a look inside (docs/performance.md: pg_stat_statements).
            + os.environ.get("TEST_PG_OPTIONS", "")
        )
        subprocess.run(
            _as_postgres(
                [
                    self.pg_ctl,
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    *args,
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._ctl("start")
        _wait_port(self.port)

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def signal(self, number: int) -> None:
        """Signal the postmaster and every process it forked (SIGSTOP: a hung server)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/stat")
            if _parent(stat) == postmaster
        ]
        for pid in [postmaster, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)

    def restart(self) -> None:
        self._ctl("-m", "fast", "restart")
        _wait_port(self.port)

    def create_database(self) -> None:
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "ecert",
                    "ecert",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def destroy(self) -> None:
        subprocess.run(
            _as_postgres([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _parent(stat: Path) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        # The name in parentheses may hold spaces: the fields after the last ")" are fixed.
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    return 0


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    """Start PostgreSQL on a temporary data folder and a loopback port, with database ``ecert``."""
    server = PgServer()
    try:
        server.start()
        server.create_database()
        yield server
    finally:
        server.destroy()


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """Start PostgreSQL on loopback and yield an asyncpg URL."""
    with postgres_server() as server:
        yield server.url


@contextlib.contextmanager
def redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start redis-server on a loopback port, no persistence; yield its URL and process."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerMissing("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def postgres_with_replica() -> Iterator[tuple[PgServer, PgServer]]:
    """A primary with database ``ecert`` and one streaming replica of it, on loopback."""
    with postgres_server() as primary:
        replica = PgServer(primary)
        try:
            replica.start()
            yield primary, replica
        finally:
            replica.destroy()


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port > 55_000:
            continue
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.bind(("127.0.0.1", port + 10_000))
            return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class RedisCluster:
    """Three masters (no replicas) on loopback; ``url`` is ecert's ``redis+cluster://``."""

    ports: list[int]
    processes: list[subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def info(self, port: int) -> str:
        return subprocess.run(
            [_redis_bin("redis-cli"), "-p", str(port), "cluster", "info"],
            check=True,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout

    def wait_state(self, state: str, ports: list[int], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(f"cluster_state:{state}" in self.info(p) for p in ports):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the cluster did not reach state {state}")


def _redis_bin(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ServerMissing(f"{name} is not installed")
    return found


@contextlib.contextmanager
def redis_cluster(node_timeout_ms: int = 1000) -> Iterator[RedisCluster]:
    """Start three ``redis-server --cluster-enabled yes`` and join them with
    ``redis-cli --cluster create``; a node silent for ``node_timeout_ms`` is marked failed."""
    server, cli = _redis_bin("redis-server"), _redis_bin("redis-cli")
    folder = Path(tempfile.mkdtemp(prefix="ecert-redis-cluster-"))
    cluster = RedisCluster([], [])
    try:
        for _ in range(3):
            port = _cluster_port()
            cluster.ports.append(port)
            cluster.processes.append(
                subprocess.Popen(
                    [
                        *(server, "--port", str(port), "--bind", "127.0.0.1"),
                        *("--save", "", "--appendonly", "no", "--dir", str(folder)),
                        *("--cluster-enabled", "yes"),
                        *("--cluster-config-file", f"nodes-{port}.conf"),
                        *("--cluster-node-timeout", str(node_timeout_ms)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in cluster.ports:
            _wait_port(port)
        subprocess.run(
            [
                *(cli, "--cluster", "create"),
                *(f"127.0.0.1:{p}" for p in cluster.ports),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        cluster.wait_state("ok", cluster.ports)
        yield cluster
    finally:
        for process in cluster.processes:
            process.kill()
            process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
