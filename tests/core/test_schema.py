"""Schema upgrades that cannot corrupt: automatic for the embedded SQLite database, explicit
(`oppen db upgrade`) for a shared PostgreSQL one, and a database written by a newer Oppen is
refused with a clear message instead of being touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from app.core.db import _alembic_config, init_db, make_engine, schema_status
from app.core.errors import ConfigError
from tests.support.postgres import fresh_database, fresh_postgres_database
from tests.support.processes import oppen_cmd

OLDER = "0006"


def _at(url: str, revision: str):  # type: ignore[no-untyped-def]
    """A database migrated only up to ``revision``, as an older Oppen left it."""
    engine = make_engine(url)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)
    return engine


def _oppen(url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPEN_")}
    env.update(OPPEN_HOME=str(home), OPPEN_DATABASE_URL=url)
    return subprocess.run(oppen_cmd(*args), capture_output=True, text=True, env=env,
                          timeout=120)


def test_sqlite_is_upgraded_automatically(tmp_path: Path) -> None:
    engine = _at(f"sqlite:///{tmp_path / 'old.db'}", OLDER)
    init_db(engine)
    status = schema_status(engine)
    assert status["current"] == status["head"] != OLDER


def test_postgresql_is_upgraded_only_when_asked(postgres_url: str, tmp_path: Path) -> None:
    url = fresh_postgres_database(postgres_url)
    engine = _at(url, OLDER)
    with pytest.raises(ConfigError, match="Run `oppen db upgrade`"):
        init_db(engine)
    assert schema_status(engine)["current"] == OLDER  # untouched
    listed = _oppen(url, tmp_path, "queue", "list")
    assert listed.returncode == 2 and "oppen db upgrade" in listed.stderr
    assert "unexpected" not in listed.stderr and "Traceback" not in listed.stderr
    upgraded = _oppen(url, tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"schema {OLDER} -> " in upgraded.stdout
    assert _oppen(url, tmp_path, "queue", "list").returncode == 0
    again = _oppen(url, tmp_path, "db", "status")
    assert "up to date" in again.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_from_a_newer_oppen_is_refused_untouched(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = fresh_database(backend, tmp_path / "new.db", request)
    engine = make_engine(url)
    init_db(engine)
    with engine.begin() as connection:  # as a later release would leave it
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigError, match="newer than this Oppen knows"):
        init_db(engine)
    assert schema_status(engine)["current"] == "9999"
    listed = _oppen(url, tmp_path, "queue", "list")
    assert listed.returncode == 2 and "upgrade Oppen" in listed.stderr
    assert "unexpected" not in listed.stderr and "Traceback" not in listed.stderr


def test_the_schema_head_constant_is_alembics_head() -> None:
    """SCHEMA_HEAD lets an up-to-date database open without Alembic; a migration added
    without moving it would let a database one step behind skip its upgrade."""
    from app.core.db import SCHEMA_HEAD, _head_revision

    assert SCHEMA_HEAD == _head_revision()


def test_an_up_to_date_database_opens_without_loading_alembic(tmp_path: Path) -> None:
    """The fast path is taken: a process opening a current database never imports Alembic."""
    url = f"sqlite:///{tmp_path / 'current.db'}"
    init_db(make_engine(url))
    probe = ("import sys; from app.core.db import init_db, make_engine; "
             f"init_db(make_engine({url!r})); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
