"""Is each part of Oppen working: database, MLflow, dispatcher lease, executor."""

from __future__ import annotations

import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.core.timeutil import as_utc, utcnow


@dataclass
class Check:
    component: str
    status: str  # ok | warn | error
    detail: str


def database(engine: Any) -> Check:
    start = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return Check("database", "error", f"{type(exc).__name__}: {exc}"[:200])
    ms = (time.perf_counter() - start) * 1000
    return Check("database", "ok" if ms < 200 else "warn",
                 f"{engine.dialect.name}, {ms:.1f} ms")


def tracking(uri: str) -> Check:
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).expanduser()
        if path.exists():
            return Check("mlflow", "ok", f"SQLite store {path.name}")
        return Check("mlflow", "warn", "SQLite store not created yet (first run creates it)")
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=1.5) as reply:
                ok = reply.status == 200
        except OSError as exc:
            return Check("mlflow", "error", f"server {uri} unreachable: {exc}"[:200])
        return Check("mlflow", "ok" if ok else "error", f"server {uri}")
    return Check("mlflow", "ok", uri)


def lease(current: Any, ttl_s: float, busy: bool) -> Check:
    if current is None:
        return Check("dispatcher", "error" if busy else "warn", "no dispatcher is running")
    age = (utcnow() - as_utc(current.heartbeat_at)).total_seconds()
    if as_utc(current.expires_at) < utcnow():
        return Check("dispatcher", "error" if busy else "warn",
                     f"lease expired {age:.0f} s after the last heartbeat of {current.holder}")
    if getattr(current, "degraded", None):
        return Check("dispatcher", "warn", f"degraded: {current.degraded} ({current.holder}, "
                                           f"heartbeat {age:.0f} s ago)")
    return Check("dispatcher", "ok", f"{current.holder}, heartbeat {age:.0f} s ago "
                                     f"(lease {ttl_s:g} s)")


def executor(name: str, logs_dir: Path | None, probe: Any = None) -> Check:
    if name == "local":
        if logs_dir is None or not logs_dir.exists():
            return Check("executor", "warn", "local; logs folder not created yet")
        ok = os.access(logs_dir, os.W_OK)
        return Check("executor", "ok" if ok else "error", f"local, logs in {logs_dir}")
    try:
        if probe is not None:
            probe()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return Check("executor", "error", f"{name}: {type(exc).__name__}: {exc}"[:200])
    return Check("executor", "ok", name)
