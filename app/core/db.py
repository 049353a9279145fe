"""Engine construction and schema creation for SQLite (embedded) or PostgreSQL (by URL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlmodel import create_engine

from app.core import models  # noqa: F401  (registers the tables)
from app.core.errors import ConfigError


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the dashboard read while the dispatcher writes; the busy timeout waits for a
    # writer instead of failing at once. synchronous=NORMAL (SQLite's advice for WAL) syncs at
    # checkpoints, not at every commit: a committed job survives any crash of any process,
    # and only an OS crash or power cut can roll back the last commits before a checkpoint.
    # It is what lets one server take hundreds of submissions a second; PostgreSQL, the
    # database for shared deployments, keeps its own full durability.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        # A server connection can drop while pooled; a SQLite file cannot, so only servers
        # are pinged before use.
        engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError(f"cannot use database URL {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration's revision. A database already there is opened without loading
# Alembic, which costs about 0.2 s of CPU in every process that opens the database (every
# CLI command, the dispatcher, each job). tests/core/test_schema.py holds it to Alembic's head.
SCHEMA_HEAD = "0010"
# The schema before migrations existed; a database made by it is stamped, then upgraded.
BASELINE_REVISION = "0001"


def _alembic_config(connection):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def init_db(engine: Engine, upgrade: bool | None = None) -> None:
    """Brings the schema to the newest migration (creating it on an empty database).

    Every process opening the database calls this, often at the same moment (the dispatcher,
    its jobs, concurrent submitters), so migrating is serialised: a file lock beside a SQLite
    database, an advisory lock on PostgreSQL.

    Upgrading an existing schema is automatic only for the embedded SQLite default
    (``upgrade`` None); a shared PostgreSQL database is upgraded by `oppen db upgrade`
    (``upgrade=True``), once, while other Oppen processes wait. A database already past what
    this Oppen knows (written by a newer release) is refused, never touched.
    """
    if _stamped_at_head(engine):
        return
    try:
        current, head = schema_revision(engine), _head_revision()
        if current == head:
            return
        if current is not None and current not in _known_revisions():
            raise ConfigError(f"the database's schema is at revision {current}, newer than this "
                              f"Oppen knows (up to {head}): upgrade Oppen to use it")
        automatic = engine.dialect.name == "sqlite" or current is None
        if not (automatic if upgrade is None else upgrade):
            raise ConfigError(f"the database's schema is at revision {current}; this Oppen "
                              f"needs {head}. Run `oppen db upgrade` once (with "
                              "OPPEN_DATABASE_URL set) to upgrade it")
        with _migration_lock(engine), engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727001)")
            _upgrade(connection)
    except OperationalError as exc:
        raise ConfigError(f"cannot open the database: {exc.orig}") from None


def _stamped_at_head(engine: Engine) -> bool:
    """Whether the database's one stamped revision is SCHEMA_HEAD, read with plain SQL; any
    other answer (no version table, an unreachable server) is for Alembic to judge."""
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except DBAPIError:
        return False
    return [tuple(row) for row in rows] == [(SCHEMA_HEAD,)]


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {r.revision for r in ScriptDirectory.from_config(_alembic_config(None)).walk_revisions()}


def schema_status(engine: Engine) -> dict[str, str | None]:
    """Where the schema is and where this Oppen would take it."""
    return {"current": schema_revision(engine), "head": _head_revision()}


def _upgrade(connection) -> None:  # type: ignore[no-untyped-def]
    from alembic import command
    from sqlalchemy import inspect

    tables = set(inspect(connection).get_table_names())
    config = _alembic_config(connection)
    if "jobs" in tables and "alembic_version" not in tables:
        command.stamp(config, BASELINE_REVISION)
    command.upgrade(config, "head")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(f"{database}.migrate.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
