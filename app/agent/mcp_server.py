"""`oppen mcp`: Oppen's agent tools over the Model Context Protocol (stdio), so another agent
(Claude Code, kubectl-ai, any MCP client) can drive Oppen.

The tools are the chat agent's own (app.tools), over the same operations: the local database,
or a server's when OPPEN_SERVER_URL is set (then the token's role applies to every call, as
for the CLI). Spending and destructive tools keep the agent's approval rule: each takes an
extra ``confirm`` argument and refuses, changing nothing, unless it is true, which a client
must only send after a person approved that exact call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
from langchain_core.tools import BaseTool
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from app.api.operations import Operations
from app.tools import SPENDING_OR_DESTRUCTIVE, build_tools

CONFIRM = "confirm"
CONFIRM_SCHEMA = {"type": "boolean", "default": False,
                  "description": "Set true only after a person approved this exact call. "
                                 "Without it the call is refused and nothing changes."}
INSTRUCTIONS = ("Oppen queues, budgets and watches PPO training jobs for cluster-scheduling "
                "policies. Read tools answer at once. Tools that spend money or destroy work "
                f"refuse unless called with {CONFIRM}=true, which you may send only after a "
                "person approved that exact call; show them every argument first.")


def describe(tool: BaseTool) -> types.Tool:
    """One tool as MCP lists it: its argument schema, plus ``confirm`` where it spends or
    destroys, and the read-only or destructive hint."""
    schema: dict[str, Any] = tool.args_schema.model_json_schema()  # type: ignore[union-attr]
    schema.setdefault("properties", {})
    gated = tool.name in SPENDING_OR_DESTRUCTIVE
    if gated:
        schema["properties"][CONFIRM] = CONFIRM_SCHEMA
    schema.pop("title", None)
    return types.Tool(
        name=tool.name, description=tool.description + (
            f" Needs {CONFIRM}=true after a person approved it." if gated else ""),
        input_schema=schema,
        annotations=types.ToolAnnotations(read_only_hint=not gated, destructive_hint=gated))


def call(tools: dict[str, BaseTool], name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """Runs one call (synchronously: the operations are blocking)."""
    tool = tools.get(name)
    if tool is None:
        return _error(f"error: no tool called {name!r}; list_tools names them")
    args = dict(arguments)
    confirmed = args.pop(CONFIRM, False)
    if name in SPENDING_OR_DESTRUCTIVE and confirmed is not True:
        shown = json.dumps(args, sort_keys=True, default=str)
        return _error(f"refused: {name} spends or destroys, so it runs only with "
                      f"{CONFIRM}=true after a person approved it. Nothing changed. Ask them "
                      f"about {name}({shown}).")
    message = tool.invoke({"type": "tool_call", "name": name, "args": args, "id": "mcp"})
    content = [types.TextContent(text=str(message.content))]
    failed = getattr(message, "status", "success") == "error"
    data = getattr(message, "artifact", None)
    return types.CallToolResult(content=content, is_error=failed,
                                structured_content=data if isinstance(data, dict) else None)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


def build_server(ops: Operations) -> Server[Any]:
    tools = {t.name: t for t in build_tools(ops)}
    listed = [describe(t) for t in tools.values()]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        run: Callable[[], types.CallToolResult] = \
            lambda: call(tools, params.name, params.arguments or {})  # noqa: E731
        return await anyio.to_thread.run_sync(run)

    from importlib.metadata import version

    return Server("oppen", version=version("oppen"), instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


def serve_stdio(ops: Operations) -> None:
    """Serves until the client closes stdin."""
    server = build_server(ops)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
