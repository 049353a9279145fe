"""For a busy SQLite writer (the API server): checkpoint the write-ahead log from a background
thread instead of inside whichever commit crosses SQLite's threshold. That commit otherwise
copies the log into the database and waits for an fsync, and every request queued behind
it waits too (the load test saw stalls of several hundred milliseconds)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


class WalCheckpointer:
    def __init__(self, engine: Engine, every_s: float = 1.0) -> None:
        self.engine = engine
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine.dialect.name != "sqlite":
            return  # only SQLite checkpoints in its writers' commits

        def no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        event.listen(self.engine, "connect", no_autocheckpoint)
        self.engine.dispose()  # pooled connections reopen with the setting
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                with self.engine.connect() as conn:
                    # PASSIVE: copies what it can without waiting for (or blocking) writers.
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # noqa: BLE001 - the next round retries; SQLite stays correct
                log.exception("WAL checkpoint failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
