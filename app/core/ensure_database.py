"""Creates a PostgreSQL database if it does not exist yet.

The platform's MLflow server keeps its tables in their own database on the same RDS instance
as Oppen's, and RDS creates only one database; this runs as MLflow's init container:

    python -m app.core.ensure_database postgresql://user:password@host:5432/mlflow
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit, urlunsplit


def ensure_database(url: str) -> bool:
    """Creates the database named in ``url``; returns True if it had to be created."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://", 1))
    name = parts.path.lstrip("/")
    if not name:
        raise ValueError("the URL names no database")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    # CREATE DATABASE cannot run inside a transaction block.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m app.core.ensure_database POSTGRESQL_URL", file=sys.stderr)
        return 2
    try:
        created = ensure_database(argv[0])
    except Exception as exc:  # noqa: BLE001 - one line for the pod's log, not a traceback
        print(f"ensure_database: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("created" if created else "exists")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
