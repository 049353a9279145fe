"""`oppen ask` (one turn), `oppen chat` (the REPL) and `oppen mcp` (the tools for other
agents): talking to the agent."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from app.cli import common
from app.core.errors import OppenError


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
@click.option("--session", "session_id", default=None, metavar="ID",
              help="Continue a kept conversation (oppen chat's /sessions lists them)")
@click.option("--json", "as_json", is_flag=True)
def ask(text: str, yes: bool, session_id: str | None, as_json: bool) -> None:
    """One turn with the agent. The exit code is 0 when everything asked was done; 1 when an
    action was refused (without --yes, actions that spend or destroy are refused and listed
    on stderr) or a tool failed."""
    from app.agent import sessions
    from app.agent.agent import Agent
    from app.core.settings import load_settings

    if not text.strip():
        raise OppenError("ask needs some text")
    refusals: list[str] = []
    approve = (lambda _request: True) if yes else _refuse_without_yes(refusals)
    settings = load_settings()
    _maybe_trace(settings)
    saver = None
    if session_id is not None:
        saver = sessions.open_saver(settings.resolved_home, settings.database_url)
        session_id = sessions.find_session(saver, session_id)
    result = Agent(common.operations(), settings.llm, base_url=settings.llm_base_url,
                   saver=saver, session_id=session_id).ask(text, approve)
    if as_json:
        common.emit_json({"answer": result.answer, "tool_calls": result.tool_calls,
                          "tool_results": result.tool_results, "refused": result.refused,
                          "failed": result.failed})
    else:
        click.echo(result.answer)
    if result.failed:
        click.echo(f"failed: {', '.join(result.failed)}", err=True)
    if refusals or result.failed:
        sys.exit(common.EXIT_ERROR)


@click.command()
@click.option("--yes", is_flag=True, help="Approve every spending or destructive action")
@click.option("--resume", "resume_id", default=None, metavar="ID",
              help="Continue a kept conversation (/sessions lists them)")
def chat(yes: bool, resume_id: str | None) -> None:
    """The conversational REPL: history (Up, Ctrl-R), completion (Tab: commands, job ids),
    slash commands (/help), approvals before spending, conversations kept in OPPEN_HOME
    (or Oppen's PostgreSQL database). Piped input is read line by line; its approvals need
    --yes."""
    from app.agent import sessions
    from app.agent.repl import Repl
    from app.core.settings import load_settings

    settings = load_settings()
    _maybe_trace(settings)
    interactive = sys.stdin.isatty()
    saver = sessions.open_saver(settings.resolved_home, settings.database_url)
    session_id = sessions.find_session(saver, resume_id) if resume_id else None
    repl = Repl.create(common.operations(), settings.llm, common.console(),
                       settings.resolved_home / "chat_history", interactive,
                       settings.llm_base_url, saver, session_id)
    if yes:
        repl.decide = lambda _request: True
    elif not interactive:
        repl.decide = _refuse_without_yes([])
    sys.exit(repl.run(None if interactive else iter(sys.stdin)))


@click.command("mcp")
def mcp_cmd() -> None:
    """Serve Oppen's agent tools over the Model Context Protocol on stdio, for other agents.
    Tools that spend or destroy refuse unless the call carries confirm=true (sent only after
    a person approved it); with OPPEN_SERVER_URL the token's role applies."""
    from app.agent.mcp_server import serve_stdio

    serve_stdio(common.operations())
