"""Conversations kept across runs: LangGraph's SQLite saver in OPPEN_HOME, and its PostgreSQL
saver in Oppen's own database where that is PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.agent import sessions
from app.agent.agent import Agent
from app.api.operations import LocalOperations
from app.core.errors import ConfigError
from app.services import Services
from tests.support.postgres import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return fresh_postgres_database(request.getfixturevalue("postgres_url"))


def test_a_conversation_outlives_its_process(services: Services, oppen_home: Path,
                                             database_url: str | None) -> None:
    services.queue.submit("kept")
    saver = sessions.open_saver(oppen_home, database_url)
    first = Agent(LocalOperations(services), saver=saver, session_id="aaaa1111")
    first.ask("show job 1", approve=lambda _r: False)
    first.ask("what is the ETA of job 1", approve=lambda _r: False)
    Agent(LocalOperations(services), saver=saver, session_id="bbbb2222").ask(
        "status", approve=lambda _r: False)

    # A new saver, as the next run opens it: both sessions, newest first, with their turns.
    again = sessions.open_saver(oppen_home, database_url)
    listed = sessions.list_sessions(again)
    assert [(s.id, s.turns, s.first_request) for s in listed] == \
        [("bbbb2222", 1, "status"), ("aaaa1111", 2, "show job 1")]
    assert (oppen_home / sessions.SESSIONS_FILE).exists() is (database_url is None)
    # Resumed, the conversation goes on where it was.
    resumed = Agent(LocalOperations(services), saver=again,
                    session_id=sessions.find_session(again, "aaaa"))
    turn = resumed.ask("cancel job 1", approve=lambda _r: False)
    assert turn.refused == ["cancel_job"]
    state = resumed.graph.get_state({"configurable": {"thread_id": "aaaa1111"}}).values
    asked = [m.content for m in state["messages"] if m.type == "human"]
    assert asked == ["show job 1", "what is the ETA of job 1", "cancel job 1"]
    with pytest.raises(ConfigError, match="no session 'zzz'"):
        sessions.find_session(again, "zzz")
