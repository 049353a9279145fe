"""`oppen ask` and `oppen chat`: talking to the agent."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from app.core.cli import common
from app.core.errors import OppenError
from app.core.settings import load_settings


def _approver(yes: bool, interactive: bool) -> Any:
    def approve(request: dict[str, Any]) -> bool:
        summary = f"{request['name']}({json.dumps(request['args'])})"
        if yes:
            return True
        if not interactive:
            click.echo(f"refused {summary}: it spends or destroys; re-run with --yes to allow",
                       err=True)
            return False
        return click.confirm(f"Run {summary}?", default=False)

    return approve


@click.command()
@click.argument("text")
@click.option("--yes", is_flag=True, help="Approve spending or destructive actions")
@click.option("--json", "as_json", is_flag=True)
def ask(text: str, yes: bool, as_json: bool) -> None:
    """One turn with the agent."""
    from app.core.agent.agent import Agent

    if not text.strip():
        raise OppenError("ask needs some text")
    result = Agent(common.operations(), load_settings().llm).ask(
        text, _approver(yes, sys.stdin.isatty() and not as_json))
    if as_json:
        common.emit_json({"answer": result.answer, "tool_calls": result.tool_calls,
                    "tool_results": result.tool_results, "refused": result.refused})
    else:
        click.echo(result.answer)


@click.command()
@click.option("--yes", is_flag=True, help="Approve spending or destructive actions")
def chat(yes: bool) -> None:
    """The conversational REPL (exit with 'exit' or Ctrl-D)."""
    from app.core.agent.agent import Agent

    agent = Agent(common.operations(), load_settings().llm)
    console = common.console()
    console.print("Oppen chat. Ask about the queue or queue jobs; 'exit' to leave.")
    approve = _approver(yes, sys.stdin.isatty())
    while True:
        try:
            line = input("oppen> ")
        except EOFError:
            click.echo()
            return
        if line.strip() in {"exit", "quit"}:
            return
        if not line.strip():
            continue
        try:
            console.print(agent.ask(line, approve).answer)
        except OppenError as exc:
            click.echo(f"error: {exc}", err=True)
