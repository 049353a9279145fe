"""Alembic migrations of Oppen's database; applied by :func:`app.core.db.init_db`."""
