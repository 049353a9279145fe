"""Shared fixtures: an isolated OPPEN_HOME per test and a real PostgreSQL server per session
(per xdist worker). Helpers that tests import live in tests/support/."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.db import init_db, make_engine
from app.core.executors.runner import THREAD_VARIABLES
from app.core.queue import QueueService
from app.core.settings import load_settings
from app.services import Services, build_queue
from tests.support.postgres import fresh_postgres_database, missing_binaries, postgres_server


@pytest.fixture(scope="session")
def shared_warm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One warm-start server per test process (per xdist worker), which every test's home
    shares (OPPEN_WARM_SOCKET_PATH): local jobs and foreground `oppen train` fork from it, as
    they do by default in use, instead of importing PyTorch and MLflow again per job (about
    10 s of CPU each, a sixth of the suite's). It leaves with this process. Jobs asked for
    while it still imports start cold. tests/core/test_warm_start.py and test_resume.py test
    servers of their own; the tests that must start cold say --cold or OPPEN_WARM_START."""
    from app.core.executors import warm
    from app.services import WARM_ENTRY, WARM_PRELOAD, WARM_UP

    folder = tmp_path_factory.mktemp("warm")
    # Where a home there keeps its socket (in the temporary folder if the path is too long).
    path = load_settings(home=folder, warm_socket_path=None).warm_socket
    warm.launch_server(path, WARM_ENTRY, WARM_PRELOAD, {}, sys.executable,
                       idle_s=24 * 3600.0, log=folder / "warm-server.log", warmup=WARM_UP,
                       owner_pid=os.getpid())
    try:
        yield path
    finally:
        warm.stop_server(path)


@pytest.fixture
def oppen_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               shared_warm_server: Path) -> Path:
    home = tmp_path / "oppen-home"
    for var in [v for v in os.environ if v.startswith("OPPEN_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("OPPEN_HOME", str(home))
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "WARNING")
    # Tests tick the dispatcher quickly so jobs finish within seconds.
    monkeypatch.setenv("OPPEN_DISPATCH_INTERVAL_S", "0.5")
    monkeypatch.setenv("OPPEN_WARM_SOCKET_PATH", str(shared_warm_server))
    return home


@pytest.fixture
def services(oppen_home: Path) -> Services:
    return Services(load_settings())


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Services]]:
    """The API server on a loopback port over a fresh home, for a module's tests: its URL, a
    submitter token of team alpha, and the services behind it."""
    from app.api.tokens import TokenService
    from tests.support.live_server import live_server
    from tests.support.processes import free_port

    services = Services(load_settings(home=tmp_path_factory.mktemp("oppen-home")))
    token = TokenService(services.engine).create("alpha", "submitter")[1]
    with live_server(services, free_port()) as url:
        yield url, token, services


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server on a loopback port, for the whole test session."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"PostgreSQL server binaries not on PATH: {', '.join(missing)}")
    base = tmp_path_factory.mktemp("pg")
    with postgres_server(base) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueService]:
    """The queue service, wired as the composition root wires it (training options checked,
    jobs priced, budgets enforced), on a fresh SQLite or PostgreSQL database."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    else:
        engine = make_engine(fresh_postgres_database(request.getfixturevalue("postgres_url")))
    init_db(engine)
    yield build_queue(engine)
    engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker's share of the CPUs for its thread pools (PyTorch's,
    OpenMP's, rayon's in simrs), passed on to the processes its tests start: at least one
    thread each. Left at their defaults, two workers on two cores each started a pool per core
    and both slowed down: the shipped hierarchical policy's test took 194 s that way in CI,
    against 54 s with one thread per worker (2026-12-07). A variable already set in the
    environment wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if not workers:
        return
    share = str(max(1, len(os.sched_getaffinity(0)) // workers))
    for name in THREAD_VARIABLES:  # the pools a job's runner sizes, the same list
        os.environ.setdefault(name, share)
    import torch

    threads = os.environ["OMP_NUM_THREADS"]
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else int(share))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``) the Terraform apply and destroy, minutes of
    the AWS provider's own polling, run in one worker while the others take everything
    else."""
    for item in items:
        if "tests/infra/" in item.nodeid or item.nodeid.startswith("infra/"):
            item.add_marker(pytest.mark.xdist_group("terraform"))
