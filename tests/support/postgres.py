"""A real PostgreSQL server on a loopback port, started by the tests, and fresh databases on
it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.support.processes import free_port

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def missing_binaries() -> list[str]:
    return [b for b in SERVER_BINARIES if shutil.which(b) is None]


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; drop to the postgres account when we are root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _let_postgres_reach(base: Path) -> None:
    """As root, the postgres account must reach the data directory through every folder
    above it that pytest made, from its private pytest-of-<user> folder down (xdist's
    per-worker folders are one level deeper than a plain run's)."""
    shutil.chown(base, "postgres")
    os.chmod(base, 0o755)
    for parent in base.parents:
        os.chmod(parent, os.stat(parent).st_mode | 0o711)
        if parent.name.startswith("pytest-of-"):
            break


@contextmanager
def postgres_server(base: Path) -> Iterator[str]:
    """Starts a server with its data under ``base``; yields its URL; stops it."""
    data = base / "data"
    if os.geteuid() == 0:
        _let_postgres_reach(base)
    subprocess.run(_as_postgres_user(["initdb", "-D", str(data), "-U", "oppen", "-A", "trust",
                                      "--no-sync"]), check=True, capture_output=True)
    port = free_port()
    log = base / "server.log"
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_postgres_user(["pg_ctl", "-D", str(data), "-l", str(log), "-o", opts,
                                      "-w", "start"]), check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"postgresql+psycopg://oppen@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres_user(["pg_ctl", "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)


def fresh_postgres_database(server_url: str) -> str:
    """Creates an empty database on the test server; returns its URL."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def fresh_database(backend: str, sqlite_path: Path, request: Any) -> str:
    """The URL of an empty database of ``backend``: a SQLite file at ``sqlite_path``, or a new
    database on the session's PostgreSQL test server (the ``postgres_url`` fixture)."""
    if backend == "sqlite":
        return f"sqlite:///{sqlite_path}"
    return fresh_postgres_database(request.getfixturevalue("postgres_url"))
