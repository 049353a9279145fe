"""`oppen chat`: the conversational REPL on prompt_toolkit.

Persistent history (Up, Ctrl-R reverse search), completion of slash commands and of job ids
(Tab after "job", "#" or a job command), multi-line input (end a line with a backslash to
continue it), a "running tool(args)" line per tool call, approval prompts that show every
argument and the cost against the budget left (yes, no, or always for this session; a
refusal goes back to the model), Ctrl-C cancelling the current turn, a real provider's
answer streamed as it comes, conversations kept across runs (/sessions, /resume), and slash
commands that call the tools directly, without the model.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion, WordCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from rich.console import Console
from rich.markup import escape

from app.agent import sessions
from app.agent.agent import Agent, chat_model
from app.api.operations import Operations
from app.core.errors import ConfigError, OppenError
from app.core.money import usd

SLASH = {
    "/queue": "/queue [N] [urgent|normal|background] — queue N training jobs (asks first)",
    "/status": "/status — the queue's counts and the dispatcher",
    "/dashboard": "/dashboard — the system at a glance",
    "/budget": "/budget — every budget: committed, limit, run-out",
    "/cost": "/cost [JOB] — spend this week, or a job's forecast",
    "/cancel": "/cancel JOB — cancel a job (asks first)",
    "/model": "/model [offline|provider:model] — show or switch the chat model",
    "/sessions": "/sessions — earlier conversations, newest first",
    "/resume": "/resume ID — continue an earlier conversation",
    "/new": "/new — start a fresh conversation",
    "/tools": "/tools — what the agent can do",
    "/help": "/help — this list",
    "/exit": "/exit — leave (Ctrl-D too)",
}
APPROVAL_ANSWERS = {"y": "yes", "yes": "yes", "n": "no", "no": "no", "a": "always",
                    "always": "always"}


def _args_text(args: dict[str, Any]) -> str:
    return json.dumps(args, sort_keys=True, default=str)


class JobIdCompleter(Completer):
    """Slash commands at the start of a line; job ids (newest first, with name and state)
    after "job", "jobs", "#" or a job command."""

    AFTER = re.compile(r"(?:\bjobs?\s+(?:\d+\s*(?:,|and)\s*)*|#|^/(?:cancel|cost)\s+)(\d*)$")

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.slash = WordCompleter(list(SLASH), sentence=True)

    def get_completions(self, document: Document, complete_event: Any) -> Iterator[Completion]:
        text = document.text_before_cursor
        if text.startswith("/") and " " not in text:
            yield from self.slash.get_completions(document, complete_event)
            return
        m = self.AFTER.search(text)
        if m is None:
            return
        typed = m.group(1)
        try:
            jobs = self.ops.list_jobs(limit=50, newest_first=True)["jobs"]
        except Exception:  # noqa: BLE001 - a completion never breaks the prompt
            return
        for job in jobs:
            ident = str(job["id"])
            if ident.startswith(typed):
                yield Completion(ident, start_position=-len(typed),
                                 display_meta=f"{job['name'][:24]} ({job['state']})")


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
    # Where conversations are kept (None: this run only).
    saver: Any | None = None

    @classmethod
    def create(cls, ops: Operations, llm: str, console: Console,
               history_file: Path | None = None, interactive: bool = True,
               base_url: str | None = None, saver: Any | None = None,
               session_id: str | None = None) -> Repl:
        session: PromptSession[str] | None = None
        if interactive:
            if history_file:
                history_file.parent.mkdir(parents=True, exist_ok=True)
            history: History = FileHistory(str(history_file)) if history_file \
                else InMemoryHistory()
            session = PromptSession(history=history, completer=JobIdCompleter(ops),
                                    complete_while_typing=False)
        repl = cls(ops, llm, console, session, base_url=base_url,
                   asker=PromptSession(history=InMemoryHistory()) if interactive else None,
                   saver=saver)
        repl.agent = Agent(ops, llm, base_url=base_url, saver=saver,
                           session_id=session_id or sessions.new_session_id())
        return repl

    # --- the loop --------------------------------------------------------------------------

    def run(self, lines: Iterator[str] | None = None) -> int:
        """Until /exit or end of input. ``lines``: piped input instead of the prompt."""
        assert self.agent is not None
        kept = " (kept: /sessions lists them, /resume ID continues one)" if self.saver else ""
        self.console.print("Oppen chat: ask about the queue, costs and runs; /help lists the "
                           f"commands, /exit leaves. Session {self.agent.thread_id}{kept}.",
                           markup=False)
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
            except Exception as exc:  # noqa: BLE001 - a provider's or a tool's failure: the REPL stays
                self.console.print(f"[red]error:[/] {escape(type(exc).__name__)}: "
                                   f"{escape(str(exc))[:300]}")

    def _read(self) -> str:
        assert self.session is not None
        lines = [self.session.prompt("oppen> ")]
        while lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1]
            lines.append(self.session.prompt("...... "))
        return "\n".join(lines)

    def turn(self, text: str) -> None:
        assert self.agent is not None
        result = self.agent.ask(text, self.approve, on_tool_call=self._show_call,
                                on_token=self._show_token)
        if result.streamed:
            self.console.print()  # end the streamed line
        else:
            self.console.print(result.answer, markup=False, highlight=False)

    def _show_token(self, token: str) -> None:
        self.console.print(token, end="", markup=False, highlight=False)

    def _show_call(self, name: str, args: dict[str, Any]) -> None:
        self.console.print(f"[dim]running {name}({escape(_args_text(args))})[/]")

    # --- approvals -------------------------------------------------------------------------

    def approve(self, request: dict[str, Any]) -> bool:
        name, args = request["name"], request["args"]
        if name in self.always:
            return True
        if self.decide is not None:
            return self.decide(request)
        # Soft-wrapped: the arguments stay one line of text (the terminal folds it).
        self.console.print(f"[bold]{name}[/] wants to run with {escape(_args_text(args))}",
                           soft_wrap=True)
        cost = self.cost_line(name, args)
        if cost:
            self.console.print(cost, markup=False)
        for line in self.job_lines(args):
            self.console.print(line, markup=False, highlight=False)
        assert self.asker is not None
        while True:
            answer = self.asker.prompt("Allow? [y]es / [n]o / [a]lways this session: ")
            decided = APPROVAL_ANSWERS.get(answer.strip().lower())
            if decided == "always":
                self.always.add(name)
            if decided is not None:
                return decided != "no"
            self.console.print("answer y, n or a")

    def job_lines(self, args: dict[str, Any]) -> list[str]:
        """The jobs a call acts on, one line each, so one approval names them all."""
        ids = args.get("job_ids") or ([args["job_id"]] if "job_id" in args else [])
        lines = []
        for job_id in ids[:100]:
            try:
                d = self.ops.show_job(int(job_id))
                lines.append(f"  #{d['id']} {d['name']!r} {d['state']} [{d['priority_class']}]")
            except (OppenError, ValueError, TypeError):
                lines.append(f"  #{job_id} (not found)")
        return lines

    def cost_line(self, name: str, args: dict[str, Any]) -> str | None:
        """The estimate against the budget left, for jobs about to be queued."""
        if name not in ("queue_training_job", "submit_batch", "hyperparameter_sweep"):
            return None
        sweep = name == "hyperparameter_sweep"
        count = int(args.get("n", 10)) if sweep else \
            int(args.get("count", 1)) if name == "submit_batch" else 1
        config = {k: args[k] for k in ("total_timesteps", "num_hosts", "mode", "seed")
                  if args.get(k) is not None}
        item = {"name": args.get("name") or "planned", "config": config,
                **{k: args[k] for k in ("priority", "gpus", "cpus", "memory_mb", "spot",
                                        "max_runtime_s", "start_after")
                   if args.get(k) is not None}}
        try:
            found = self.ops.check_submission(item)
        except OppenError as exc:
            return f"cost: cannot estimate ({exc})"
        total = Decimal(found["estimated_cost_usd"]) * count
        left = [f"{b['name']} has {usd(b['remaining_usd'])} left" for b in found["budgets"]]
        if sweep:  # trials are asked for one by one; the cap stops the study, not a trial
            cap = args.get("max_total_usd")
            return (f"cost: about {usd(found['estimated_cost_usd'])} a trial, at most "
                    f"{usd(total)} for {count} (less as trials are pruned); "
                    + (f"a hard cap of {usd(cap)} on the whole study" if cap
                       else "no cap on the study") + ("; " + "; ".join(left) if left else ""))
        each = f" ({usd(found['estimated_cost_usd'])} each)" if count > 1 else ""
        return (f"cost: estimated {usd(total)}{each}; "
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
            self.console.print(f"{b['name']}: {usd(b['committed_usd'])} committed of "
                               f"{usd(b['limit_usd'])} ({b['period']}, "
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
            assert self.agent is not None
            try:
                # Built here, in full, before anything changes: a bad name or a provider that
                # cannot start (no key, no package) is refused and the current model stays.
                chat_model(rest[0], self.base_url)
                agent = Agent(self.ops, rest[0], base_url=self.base_url, saver=self.saver,
                              session_id=self.agent.thread_id)
            except OppenError:
                raise
            except Exception as exc:  # noqa: BLE001 - any provider's own error, in one line
                raise ConfigError(f"cannot use chat model {rest[0]!r}: "
                                  f"{str(exc).splitlines()[0][:200]}; still "
                                  f"{self.llm}") from None
            self.llm, self.agent = rest[0], agent
        self.console.print(f"model: {self.llm}")

    def _cmd_sessions(self, rest: list[str]) -> None:
        if self.saver is None:
            self.console.print("conversations are not kept in this run")
            return
        assert self.agent is not None
        found = sessions.list_sessions(self.saver)
        for info in found:
            mark = " (this one)" if info.id == self.agent.thread_id else ""
            self.console.print(f"{info.id}  {sessions.when(info.updated_at)}  {info.turns} "
                               f"turns  {info.first_request!r}{mark}", markup=False)
        if not found:
            self.console.print("no earlier conversations")

    def _cmd_resume(self, rest: list[str]) -> None:
        if not rest:
            raise OppenError("which session? /resume ID (/sessions lists them)")
        if self.saver is None:
            raise OppenError("conversations are not kept in this run")
        assert self.agent is not None
        self.agent.thread_id = sessions.find_session(self.saver, rest[0])
        state = self.agent.graph.get_state(
            {"configurable": {"thread_id": self.agent.thread_id}}).values
        from langchain_core.messages import AIMessage, HumanMessage

        said = [m for m in state.get("messages", [])
                if isinstance(m, HumanMessage) or (isinstance(m, AIMessage) and m.content)]
        self.console.print(f"resumed session {self.agent.thread_id} ({len(said)} messages); "
                           "the last of them:", markup=False)
        for m in said[-4:]:
            who = "you" if isinstance(m, HumanMessage) else "oppen"
            self.console.print(f"  {who}: {str(m.content)[:200]}", markup=False)

    def _cmd_new(self, rest: list[str]) -> None:
        assert self.agent is not None
        self.agent.thread_id = sessions.new_session_id()
        self.console.print(f"new session {self.agent.thread_id}", markup=False)

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
