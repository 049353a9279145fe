"""Conversations that outlive the process: LangGraph's SQLite saver in OPPEN_HOME, or its
PostgreSQL saver when Oppen's database is PostgreSQL. A session is a LangGraph thread; its
id is what /sessions lists and /resume takes."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from app.core.errors import ConfigError, DependencyError

SESSIONS_FILE = "chat_sessions.sqlite"


@dataclass(frozen=True)
class SessionInfo:
    id: str
    updated_at: str
    turns: int
    first_request: str


def new_session_id() -> str:
    return uuid.uuid4().hex[:12]


def open_saver(home: Path, database_url: str | None) -> BaseCheckpointSaver[Any]:
    """The saver for these settings: PostgreSQL's when the database is PostgreSQL, else a
    SQLite file in ``home``."""
    if database_url and database_url.startswith("postgresql"):
        try:
            import psycopg
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:
            raise DependencyError(f"PostgreSQL sessions need langgraph-checkpoint-postgres "
                                  f"({exc})") from None
        url = "postgresql://" + database_url.split("://", 1)[1]
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0)
        saver: BaseCheckpointSaver[Any] = PostgresSaver(conn)  # type: ignore[arg-type]
        saver.setup()  # type: ignore[attr-defined]
        return saver
    from langgraph.checkpoint.sqlite import SqliteSaver

    home.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(home / SESSIONS_FILE), check_same_thread=False)
    sqlite_saver = SqliteSaver(conn)
    sqlite_saver.setup()
    return sqlite_saver


def list_sessions(saver: BaseCheckpointSaver[Any], limit: int = 20) -> list[SessionInfo]:
    """Sessions, most recently used first: the latest checkpoint of each thread."""
    latest: dict[str, Any] = {}
    for item in saver.list(None):
        thread = item.config["configurable"]["thread_id"]
        if thread not in latest or item.checkpoint["ts"] > latest[thread].checkpoint["ts"]:
            latest[thread] = item
    rows = []
    for thread, item in latest.items():
        messages = item.checkpoint.get("channel_values", {}).get("messages", [])
        asked = [m for m in messages if isinstance(m, HumanMessage)]
        if not asked:
            continue
        rows.append(SessionInfo(thread, item.checkpoint["ts"], len(asked),
                                str(asked[0].content)[:60]))
    rows.sort(key=lambda r: r.updated_at, reverse=True)
    return rows[:limit]


def find_session(saver: BaseCheckpointSaver[Any], prefix: str) -> str:
    """The session whose id starts with ``prefix`` (unique), or a ConfigError."""
    matches = [s.id for s in list_sessions(saver, limit=10_000) if s.id.startswith(prefix)]
    if not matches:
        raise ConfigError(f"no session {prefix!r}; /sessions lists them")
    if len(matches) > 1:
        raise ConfigError(f"{prefix!r} names {len(matches)} sessions; give more of the id")
    return matches[0]


def when(ts: str) -> str:
    return datetime.fromisoformat(ts).strftime("%Y-%m-%d %H:%M")
