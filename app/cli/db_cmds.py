"""`oppen db status|upgrade`: the database schema, upgraded explicitly on a shared database."""

from __future__ import annotations

import click

from app.cli import common


@click.group(cls=common.OppenGroup)
def db() -> None:
    """The database's schema: where it is, and upgrading it."""


def _engine():  # type: ignore[no-untyped-def]
    from app.core.db import make_engine
    from app.core.settings import load_settings

    common.local_only("oppen db")
    settings = load_settings()
    settings.resolved_home.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.resolved_database_url)


@db.command("status")
@click.option("--json", "as_json", is_flag=True)
def db_status(as_json: bool) -> None:
    """The schema revision the database is at and the one this Oppen needs."""
    from app.core.db import schema_status

    status = schema_status(_engine())
    if as_json:
        common.emit_json(status)
        return
    current = status["current"] or "empty"
    verdict = "up to date" if status["current"] == status["head"] else "needs `oppen db upgrade`"
    click.echo(f"schema {current}, this Oppen needs {status['head']}: {verdict}")


@db.command("upgrade")
def db_upgrade() -> None:
    """Upgrades the schema to what this Oppen needs (other Oppen processes wait meanwhile).
    Automatic for the embedded SQLite database; explicit, once, for a shared PostgreSQL."""
    from app.core.db import init_db, schema_status

    engine = _engine()
    before = schema_status(engine)["current"]
    init_db(engine, upgrade=True)
    after = schema_status(engine)["current"]
    click.echo(f"schema {before or 'empty'} -> {after}" if before != after
               else f"schema {after}: already up to date")
