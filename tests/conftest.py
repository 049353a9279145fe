"""Shared fixtures: an isolated OPPEN_HOME per test and a real PostgreSQL server per session."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.core.db import init_db, make_engine
from app.core.queue import QueueService
from app.core.services import Services
from app.core.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO.parent / "shared" / "traces"

# The plain-Python reference simulator's speed on the VM where the tests' timing bars were
# set (docs/simulator.md, 2026-11-23). VMs of this kind are lent at very different speeds:
# on 2026-12-01 the same code ran it at 5,163-6,832 steps/s.
REFERENCE_PYTHON_STEPS_PER_S = 10_844


@functools.cache
def machine_slowdown() -> float:
    """How many times slower than that VM this machine runs Python now (at least 1): timing
    bars are stretched by it, so a slow VM fails only a slow change, not its own day."""
    from app.bench.sim import python_speed

    return max(1.0, REFERENCE_PYTHON_STEPS_PER_S / python_speed())


@pytest.fixture
def oppen_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "oppen-home"
    for var in [v for v in os.environ if v.startswith("OPPEN_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("OPPEN_HOME", str(home))
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "WARNING")
    # Tests tick the dispatcher quickly so jobs finish within seconds.
    monkeypatch.setenv("OPPEN_DISPATCH_INTERVAL_S", "0.5")
    return home


@pytest.fixture
def services(oppen_home: Path) -> Services:
    return Services(load_settings())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; drop to the postgres account when we are root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server on a loopback port, for the whole test session."""
    missing = [b for b in ("initdb", "pg_ctl", "postgres") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"PostgreSQL server binaries not on PATH: {', '.join(missing)}")
    base = tmp_path_factory.mktemp("pg")
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        os.chmod(base, 0o755)
        for parent in base.parents:  # the postgres account must reach the data directory
            if str(parent).startswith(str(tmp_path_factory.getbasetemp().parent)):
                os.chmod(parent, os.stat(parent).st_mode | 0o711)
    subprocess.run(_as_postgres_user(["initdb", "-D", str(data), "-U", "oppen", "-A", "trust",
                                      "--no-sync"]), check=True, capture_output=True)
    port = _free_port()
    log = base / "server.log"
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_postgres_user(["pg_ctl", "-D", str(data), "-l", str(log), "-o", opts,
                                      "-w", "start"]), check=True, capture_output=True)
    try:
        url = f"postgresql+psycopg://oppen@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run(_as_postgres_user(["pg_ctl", "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)


def oppen_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "app", *args]


def run_in_processes(target, argument_tuples) -> None:  # type: ignore[no-untyped-def]
    """Runs ``target`` once per argument tuple, each in its own spawned process, all at once;
    fails if any of them fails."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=target, args=args) for args in argument_tuples]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
        assert w.exitcode == 0, f"a worker process failed (exit code {w.exitcode})"


def fresh_postgres_database(server_url: str) -> str:
    """Creates an empty database on the test server; returns its URL."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueService]:
    """The queue service on a fresh SQLite or PostgreSQL database."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    else:
        engine = make_engine(fresh_postgres_database(request.getfixturevalue("postgres_url")))
    init_db(engine)
    yield QueueService(engine)
    engine.dispose()
