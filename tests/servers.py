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
    """A throwaway PostgreSQL cluster (as the ``postgres`` user when running as root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ecert-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.pg_ctl = _pg_bin("pg_ctl")
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
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

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://ecert@127.0.0.1:{self.port}/ecert"

    def _ctl(self, *args: str) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
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
