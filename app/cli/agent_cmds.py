"""`oppen ask` (one turn) and `oppen chat` (the REPL): talking to the agent."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from app.cli import common
from app.core.errors import OppenError
from app.core.settings import load_settings


def _refuse_without_yes(refusals: list[str]) -> Any:
    """Approvals for a non-interactive caller: refused, each listed on stderr."""
    def approve(request: dict[str, Any]) -> bool:
        summary = f"{request['name']}({json.dumps(request['args'], sort_keys=True)})"
        refusals.append(summary)
        click.echo(f"refused {summary}: it spends or destroys; re-run with --yes to allow",
                   err=True)
        return False

    return approve


def _maybe_trace(settings: Any) -> None:
    if settings.agent_tracing:
        from app.agent import tracing

        tracing.enable(settings)


@click.command()
@click.argument("text")
@click.option("--yes", is_flag=True, help="Approve spending or destructive actions")
@click.option("--json", "as_json", is_flag=True)
def ask(text: str, yes: bool, as_json: bool) -> None:
    """One turn with the agent. Without --yes, actions that spend or destroy are refused,
    listed on stderr, and the exit code is 1."""
    from app.agent.agent import Agent

    if not text.strip():
        raise OppenError("ask needs some text")
    refusals: list[str] = []
    approve = (lambda _request: True) if yes else _refuse_without_yes(refusals)
    settings = load_settings()
    _maybe_trace(settings)
    result = Agent(common.operations(), settings.llm, base_url=settings.llm_base_url).ask(
        text, approve)
    if as_json:
        common.emit_json({"answer": result.answer, "tool_calls": result.tool_calls,
                          "tool_results": result.tool_results, "refused": result.refused})
    else:
        click.echo(result.answer)
    if refusals:
        sys.exit(common.EXIT_ERROR)


@click.command()
@click.option("--yes", is_flag=True, help="Approve every spending or destructive action")
def chat(yes: bool) -> None:
    """The conversational REPL: history (Up, Ctrl-R), slash commands (/help), approvals
    before spending. Piped input is read line by line; its approvals need --yes."""
    from app.agent.repl import Repl

    settings = load_settings()
    _maybe_trace(settings)
    interactive = sys.stdin.isatty()
    repl = Repl.create(common.operations(), settings.llm, common.console(),
                       settings.resolved_home / "chat_history", interactive,
                       settings.llm_base_url)
    if yes:
        repl.decide = lambda _request: True
    elif not interactive:
        repl.decide = _refuse_without_yes([])
    sys.exit(repl.run(None if interactive else iter(sys.stdin)))
