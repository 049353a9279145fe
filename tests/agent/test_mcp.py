"""`oppen mcp` through the mcp package's own client over stdio: the tools are listed, a
read tool answers, a spending tool refuses without confirm and runs with it; through a
server, the token's role applies."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from app.tools import SPENDING_OR_DESTRUCTIVE, TOOL_NAMES

pytestmark = pytest.mark.slow


def server(env: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "app", "mcp"],
                                 env={**os.environ, **env})


async def session(params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]
                  ) -> tuple[Any, list[Any]]:
    async with Client(params) as client:
        listed = await client.list_tools()
        results = [await client.call_tool(name, args) for name, args in calls]
    return listed, results


def test_tools_over_stdio_keep_the_approval_rule(oppen_home: Path) -> None:
    listed, (status, refused, queued, after) = anyio.run(session, server({}), [
        ("system_status", {}),
        ("queue_training_job", {"num_hosts": 8, "total_timesteps": 2048}),
        ("queue_training_job", {"num_hosts": 8, "total_timesteps": 2048, "confirm": True}),
        ("list_jobs", {}),
    ])
    by_name = {t.name: t for t in listed.tools}
    assert list(by_name) == list(TOOL_NAMES)
    for name, tool in by_name.items():
        gated = name in SPENDING_OR_DESTRUCTIVE
        assert ("confirm" in tool.input_schema["properties"]) is gated, name
        assert tool.annotations.destructive_hint is gated
        assert tool.annotations.read_only_hint is not gated
    assert by_name["queue_training_job"].input_schema["properties"]["num_hosts"]["maximum"] \
        == 4096

    assert not status.is_error
    assert status.content[0].text.startswith("0 queued, 0 running")
    assert refused.is_error
    assert refused.content[0].text.startswith("refused: queue_training_job spends or "
                                              "destroys, so it runs only with confirm=true")
    assert not queued.is_error
    assert queued.content[0].text.startswith("Queued job 1 'chat' (normal, 2,048 steps, "
                                             "8 hosts)")
    assert queued.structured_content["config"]["num_hosts"] == 8
    # Only the confirmed call queued anything.
    assert after.content[0].text.startswith("#1 'chat' [normal] queued, position 1")
    assert "#2" not in after.content[0].text


def test_bad_arguments_and_unknown_tools_are_clear_errors(oppen_home: Path) -> None:
    _, (bad, unknown, missing) = anyio.run(session, server({}), [
        ("job_details", {"job_id": -3}),
        ("drop_tables", {}),
        ("job_details", {"job_id": 7}),
    ])
    assert bad.is_error and "job_id" in bad.content[0].text
    assert unknown.is_error and "no tool called 'drop_tables'" in unknown.content[0].text
    assert missing.is_error and "no job with id 7" in missing.content[0].text


def test_through_a_server_the_tokens_role_applies(
        api_server: tuple[str, str, Any]) -> None:
    url, submitter_token, _ = api_server
    env = {"OPPEN_SERVER_URL": url, "OPPEN_TOKEN": submitter_token}
    _, (paused, queued) = anyio.run(session, server(env), [
        ("pause_admission", {"confirm": True}),
        ("queue_training_job", {"name": "via-mcp", "confirm": True}),
    ])
    assert paused.is_error and "needs the admin role" in paused.content[0].text
    assert not queued.is_error and "'via-mcp'" in queued.content[0].text
