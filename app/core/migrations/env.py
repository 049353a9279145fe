"""Alembic environment: runs on the connection that app.core.db hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from app.core import models  # noqa: F401  (registers the tables for autogenerate)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
