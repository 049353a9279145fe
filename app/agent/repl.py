"""`oppen chat`: the conversational REPL on prompt_toolkit.

Persistent history (Up, Ctrl-R reverse search), completion of slash commands, multi-line
input (end a line with a backslash to continue it), a "running tool(args)" line per tool
call, approval prompts that show the arguments and the cost against the budget left (yes,
no, or always for this session; a refusal goes back to the model), Ctrl-C cancelling the
current turn, and slash commands that call the tools directly, without the model.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import WordCompleter
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from rich.console import Console
from rich.markup import escape

from app.agent.agent import Agent, chat_model
from app.api.operations import Operations
from app.core.errors import OppenError

SLASH = {
    "/queue": "/queue [N] [urgent|normal|background] — queue N training jobs (asks first)",
    "/status": "/status — the queue's counts and the dispatcher",
    "/dashboard": "/dashboard — the system at a glance",
    "/budget": "/budget — every budget: committed, limit, run-out",
    "/cost": "/cost [JOB] — spend this week, or a job's forecast",
    "/cancel": "/cancel JOB — cancel a job (asks first)",
    "/model": "/model [offline|provider:model] — show or switch the chat model",
    "/tools": "/tools — what the agent can do",
    "/help": "/help — this list",
    "/exit": "/exit — leave (Ctrl-D too)",
}
APPROVAL_ANSWERS = {"y": "yes", "yes": "yes", "n": "no", "no": "no", "a": "always",
                    "always": "always"}


def _args_text(args: dict[str, Any]) -> str:
    return json.dumps(args, sort_keys=True, default=str)


@dataclass
class Repl:
    ops: Operations
    llm: str
    console: Console
    session: PromptSession[str] | None  # None for piped input (decide answers approvals)
    always: set[str] = field(default_factory=set)
    agent: Agent | None = None
    base_url: str | None = None
    # Approval answers are asked on their own prompt, so y/n never fill the history.
    asker: PromptSession[str] | None = None
    # Set for piped input: approvals decided without a prompt (--yes approves all).
    decide: Callable[[dict[str, Any]], bool] | None = None

    @classmethod
    def create(cls, ops: Operations, llm: str, console: Console,
               history_file: Path | None = None, interactive: bool = True,
               base_url: str | None = None) -> Repl:
        session: PromptSession[str] | None = None
        if interactive:
            if history_file:
                history_file.parent.mkdir(parents=True, exist_ok=True)
            history: History = FileHistory(str(history_file)) if history_file \
                else InMemoryHistory()
            session = PromptSession(history=history,
                                    completer=WordCompleter(list(SLASH), sentence=True),
                                    complete_while_typing=True)
        repl = cls(ops, llm, console, session, base_url=base_url,
                   asker=PromptSession(history=InMemoryHistory()) if interactive else None)
        repl.agent = Agent(ops, llm, base_url=base_url)
        return repl

    # --- the loop --------------------------------------------------------------------------

    def run(self, lines: Iterator[str] | None = None) -> int:
        """Until /exit or end of input. ``lines``: piped input instead of the prompt."""
        self.console.print("Oppen chat: ask about the queue, costs and runs; /help lists the "
                           "commands, /exit leaves.")
        while True:
            try:
                line = self._read() if lines is None else next(lines).rstrip("\n")
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except (EOFError, StopIteration):
                return 0
            if not line.strip():
                continue
            if line.strip() in ("exit", "quit", "/exit", "/quit"):
                return 0
            try:
                if line.startswith("/"):
                    self.slash(line.strip())
                else:
                    self.turn(line)
            except KeyboardInterrupt:
                self.console.print("[yellow]cancelled[/]")
                assert self.agent is not None
                self.agent.restart()
            except OppenError as exc:
                self.console.print(f"[red]error:[/] {escape(str(exc))}")

    def _read(self) -> str:
        assert self.session is not None
        lines = [self.session.prompt("oppen> ")]
        while lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1]
            lines.append(self.session.prompt("...... "))
        return "\n".join(lines)

    def turn(self, text: str) -> None:
        assert self.agent is not None
        result = self.agent.ask(text, self.approve, on_tool_call=self._show_call)
        self.console.print(result.answer, markup=False, highlight=False)

    def _show_call(self, name: str, args: dict[str, Any]) -> None:
        self.console.print(f"[dim]running {name}({escape(_args_text(args))})[/]")

    # --- approvals -------------------------------------------------------------------------

    def approve(self, request: dict[str, Any]) -> bool:
        name, args = request["name"], request["args"]
        if name in self.always:
            return True
        if self.decide is not None:
            return self.decide(request)
        self.console.print(f"[bold]{name}[/] wants to run with {escape(_args_text(args))}")
        cost = self.cost_line(name, args)
        if cost:
            self.console.print(cost, markup=False)
        assert self.asker is not None
        while True:
            answer = self.asker.prompt("Allow? [y]es / [n]o / [a]lways this session: ")
            decided = APPROVAL_ANSWERS.get(answer.strip().lower())
            if decided == "always":
                self.always.add(name)
            if decided is not None:
                return decided != "no"
            self.console.print("answer y, n or a")

    def cost_line(self, name: str, args: dict[str, Any]) -> str | None:
        """The estimate against the budget left, for jobs about to be queued."""
        if name not in ("queue_training_job", "submit_batch", "hyperparameter_sweep"):
            return None
        if name == "hyperparameter_sweep":
            cap = args.get("max_total_usd")
            return ("cost: each config is priced before anything is queued; "
                    + (f"refused if the total passes ${cap}" if cap else "no cap given"))
        count = int(args.get("count", 1)) if name == "submit_batch" else 1
        config = {k: args[k] for k in ("total_timesteps", "num_hosts", "mode", "seed")
                  if k in args}
        try:
            found = self.ops.check_submission(
                {"name": args.get("name", "planned"), "priority": args.get("priority", "normal"),
                 "gpus": args.get("gpus", 0), "spot": args.get("spot", False),
                 "config": config})
        except OppenError as exc:
            return f"cost: cannot estimate ({exc})"
        total = Decimal(found["estimated_cost_usd"]) * count
        left = [f"{b['name']} has ${b['remaining_usd']} left" for b in found["budgets"]]
        each = f" (${found['estimated_cost_usd']} each)" if count > 1 else ""
        return (f"cost: estimated ${total}{each}; "
                + ("; ".join(left) if left else "no budget applies"))

    # --- slash commands --------------------------------------------------------------------

    def slash(self, line: str) -> None:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise OppenError(f"cannot read that command: {exc}") from None
        command, rest = words[0], words[1:]
        handler: Callable[[list[str]], None] | None = getattr(self, f"_cmd_{command[1:]}", None)
        if command not in SLASH or handler is None:
            raise OppenError(f"unknown command {command}; /help lists them")
        handler(rest)

    def _tool(self, name: str, args: dict[str, Any], gated: bool = False) -> None:
        from app.tools import build_tools

        tool = next(t for t in build_tools(self.ops) if t.name == name)
        self._show_call(name, args)
        if gated and not self.approve({"name": name, "args": args}):
            self.console.print("not run")
            return
        message = tool.invoke({"type": "tool_call", "name": name, "args": args, "id": "slash"})
        self.console.print(str(message.content), markup=False, highlight=False)

    def _cmd_queue(self, rest: list[str]) -> None:
        count = int(rest[0]) if rest and rest[0].isdigit() else 1
        priority = next((w for w in rest if w in ("urgent", "normal", "background")), "normal")
        if count == 1:
            self._tool("queue_training_job", {"name": f"chat-{priority}", "priority": priority},
                       gated=True)
        else:
            self._tool("submit_batch", {"name": "chat", "count": count, "priority": priority},
                       gated=True)

    def _cmd_status(self, rest: list[str]) -> None:
        self._tool("queue_status", {})

    def _cmd_dashboard(self, rest: list[str]) -> None:
        from app.dashboard.data import DashboardData
        from app.dashboard.render import render

        render(DashboardData.from_dict(self.ops.dashboard(10)), self.console)

    def _cmd_budget(self, rest: list[str]) -> None:
        budgets = self.ops.list_budgets()["budgets"]
        for b in budgets:
            self.console.print(f"{b['name']}: ${b['committed_usd']} committed of "
                               f"${b['limit_usd']} ({b['period']}, "
                               f"{'hard' if b['hard'] else 'soft'})", markup=False)
        if not budgets:
            self.console.print("no budgets")

    def _cmd_cost(self, rest: list[str]) -> None:
        if rest and rest[0].isdigit():
            self._tool("forecast_job_cost", {"job_id": int(rest[0])})
        else:
            self._tool("cost_report", {})

    def _cmd_cancel(self, rest: list[str]) -> None:
        if not rest or not rest[0].isdigit():
            raise OppenError("which job? /cancel JOB")
        self._tool("cancel_job", {"job_id": int(rest[0])}, gated=True)

    def _cmd_model(self, rest: list[str]) -> None:
        if rest:
            chat_model(rest[0], self.base_url)  # fails here, clearly, before anything changes
            self.llm = rest[0]
            self.agent = Agent(self.ops, self.llm, base_url=self.base_url)
        self.console.print(f"model: {self.llm}")

    def _cmd_tools(self, rest: list[str]) -> None:
        from app.tools import SPENDING_OR_DESTRUCTIVE, build_tools

        for tool in build_tools(self.ops):
            mark = " (asks first)" if tool.name in SPENDING_OR_DESTRUCTIVE else ""
            self.console.print(f"{tool.name}{mark}: {tool.description}", markup=False)

    def _cmd_help(self, rest: list[str]) -> None:
        for text in SLASH.values():
            self.console.print(text, markup=False)
        self.console.print("Anything else is a question for the agent. End a line with \\ to "
                           "continue it; Ctrl-R searches the history; Ctrl-C cancels a turn.")
