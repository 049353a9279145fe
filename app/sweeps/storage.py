"""Optuna's RDB storage on Oppen's own database (SQLite by default, PostgreSQL in
production), so studies survive restarts and every dispatcher, server and trial shares them.

Optuna's tables (studies, trials, trial_values, ...) sit beside Oppen's; none of their names
clash. Oppen's migrations own the database's alembic history, so Optuna's storage is opened
without its own version stamp and this module checks Optuna's schema version instead."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.core.errors import ConfigError

_lock = threading.Lock()
_storages: dict[str, Any] = {}


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Wait for the dispatcher's or a trial's write instead of failing at once.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


def _open(url: str, create: bool) -> Any:
    from optuna.storages import RDBStorage

    return RDBStorage(url, engine_kwargs=_engine_kwargs(url), skip_compatibility_check=True,
                      skip_table_creation=not create)


def storage(url: str) -> Any:
    """The storage for ``url``, made (tables included) on first use in this process."""
    with _lock:
        if url in _storages:
            return _storages[url]
        logging.getLogger("optuna").setLevel(logging.WARNING)
        try:
            try:
                found = _open(url, create=True)
            except SQLAlchemyError:
                # Another process made the tables at the same moment: open them as they are.
                found = _open(url, create=False)
        except SQLAlchemyError as exc:
            raise ConfigError(f"cannot open the sweep storage: {exc}") from None
        _check_schema(found)
        _storages[url] = found
        return found


def _check_schema(found: Any) -> None:
    from optuna.storages._rdb import models

    with found.engine.connect() as connection:
        row = connection.exec_driver_sql("SELECT schema_version, library_version "
                                         "FROM version_info").first()
    if row is not None and row[0] != models.SCHEMA_VERSION:
        raise ConfigError(f"the sweep tables were made by Optuna {row[1]} (schema {row[0]}); "
                          f"this Optuna needs schema {models.SCHEMA_VERSION}")
