"""The REPL driven through prompt_toolkit's pipe input: history, slash commands, an approval
accepted and one refused."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from app.agent.repl import Repl
from app.api.operations import LocalOperations
from app.services import Services

UP = "\x1b[A"
# prompt_toolkit loads the history when a prompt starts: keys typed ahead of that (all sent
# at once) would press Up on an empty history, so each line is typed after a pause.
PAUSE_S = 0.3


def drive(services: Services, history: Path, lines: list[str]) -> str:
    console = Console(file=io.StringIO(), width=200, no_color=True)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        def type_lines() -> None:
            for line in lines:
                time.sleep(PAUSE_S)
                pipe.send_text(line)

        typist = threading.Thread(target=type_lines, daemon=True)
        typist.start()
        repl = Repl.create(LocalOperations(services), "offline", console, history)
        assert repl.run() == 0
        typist.join()
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_approvals_slash_commands_and_history(services: Services, tmp_path: Path) -> None:
    history = tmp_path / "chat_history"
    out = drive(services, history, [
        "queue an urgent training job\r", "y\r",     # the agent asks; accepted
        "/queue 3 background\r", "n\r",              # a slash command; refused
        "/status\r",
        UP, "\r",                                     # Up recalls /status
        "train a job\\\r", " for 2k steps\r", "a\r",  # two lines; always allow
        "/exit\r"])
    jobs = services.queue.list(limit=10)
    assert [(v.job.priority_class, v.job.config["total_timesteps"]) for v in jobs] == \
        [("urgent", 4096), ("normal", 2000)]
    assert "running queue_training_job(" in out
    assert "cost: estimated $" in out and "no budget applies" in out
    assert " each); no budget applies" in out  # the batch of 3, priced before asking
    assert "Queued job 1" in out and "Queued job 2" in out
    assert "not run" in out  # the refused /queue
    assert out.count("1 queued, 0 running") == 2  # /status, then again from history
    # Kept for the next session (the questions, not the y/n answers), and found there with
    # Ctrl-R reverse search.
    kept = history.read_text()
    assert "+/status" in kept and "+queue an urgent training job" in kept
    assert "+y\n" not in kept and "+a\n" not in kept
    again = drive(services, history, ["\x12", "stat", "\r", "\r", "/exit\r"])
    assert "2 queued, 0 running" in again


def test_a_refused_approval_goes_back_to_the_model(services: Services, tmp_path: Path) -> None:
    out = drive(services, tmp_path / "h", ["cancel job 1\r", "n\r", "/exit\r"])
    assert "User rejected the tool call for `cancel_job`" in out


def test_unknown_slash_command_and_bad_model_are_one_line(services: Services,
                                                          tmp_path: Path) -> None:
    out = drive(services, tmp_path / "h", ["/bogus\r", "/model nonsense\r", "/model\r",
                                           "/exit\r"])
    assert "error: unknown command /bogus; /help lists them" in out
    assert "error: OPPEN_LLM must be 'offline' or 'provider:model'" in out
    assert "model: offline" in out


def test_a_sweeps_approval_prices_a_trial_and_names_the_cap(services: Services,
                                                            tmp_path: Path) -> None:
    out = drive(services, tmp_path / "h", ["queue 20 hyperparameter configs, max $2\r", "y\r",
                                           "/exit\r"])
    assert "running hyperparameter_sweep(" in out
    assert "a trial, at most $" in out and "for 20 (less as trials are pruned)" in out
    assert "a hard cap of $2.00 on the whole study" in out
    [sweep] = services.sweeps.list()
    assert (sweep.n_trials, sweep.max_cost_micros) == (20, 2_000_000)
