"""`oppen chat` in a real pseudo-terminal (pexpect): Tab completes job ids, an approval
shows every argument, a bad /model is refused and the REPL stays, history recalls a line,
and a conversation is resumed after the REPL exits."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from tests.support.processes import oppen_cmd

pytestmark = pytest.mark.slow
PROMPT = "oppen>"
# prompt_toolkit drops keys typed while it draws a new prompt: each line waits a moment.
PAUSE_S = 0.5


def say(chat: pexpect.spawn, keys: str) -> None:
    time.sleep(PAUSE_S)
    chat.send(keys)


def spawn(home: Path, *args: str) -> pexpect.spawn:
    env = {**os.environ, "OPPEN_HOME": str(home), "TERM": "xterm", "COLUMNS": "120",
           "PROMPT_TOOLKIT_NO_CPR": "1", "OPENAI_API_KEY": "", "OPPEN_LLM": "offline"}
    env.pop("OPPEN_SERVER_URL", None)
    command = oppen_cmd("chat", *args)
    child = pexpect.spawn(command[0], command[1:], env=env, encoding="utf-8", timeout=60,
                          dimensions=(40, 120))
    child.logfile_read = open(home / "pty.log", "a")  # what the terminal showed, if it fails
    return child


def test_chat_in_a_terminal(oppen_home: Path) -> None:
    for name in ("alpha", "beta"):
        subprocess.run(oppen_cmd("queue", "submit", name), check=True,
                       capture_output=True, env={**os.environ, "OPPEN_HOME": str(oppen_home)})
    chat = spawn(oppen_home)
    chat.expect(r"Session (\w+) \(kept")
    session = chat.match.group(1)
    chat.expect(PROMPT)

    # Tab after "job" offers the jobs, newest first, with names and states; a second Tab
    # picks the first.
    say(chat, "show job ")
    chat.send("\t")
    chat.expect(r"beta \(queued\)")
    time.sleep(PAUSE_S)
    chat.send("\t")
    time.sleep(PAUSE_S)
    chat.send("\r")
    chat.expect("running job_details")
    chat.expect("Job 2 'beta' is queued")
    chat.expect(PROMPT)

    # A model that cannot start is refused in one line; the REPL and its model stay.
    say(chat, "/model openai:gpt-4o\r")
    chat.expect("cannot use chat model 'openai:gpt-4o'")
    chat.expect("still offline")
    chat.expect(PROMPT)
    say(chat, "/model\r")
    chat.expect("model: offline")
    chat.expect(PROMPT)

    # The approval shows every argument the tool will run with, and the cost.
    say(chat, "queue a job on 8 hosts with 2 gpus\r")
    chat.expect('"gpus": 2')
    chat.expect('"num_hosts": 8')
    chat.expect('"total_timesteps": 4096')
    chat.expect(r"cost: estimated \$")
    chat.expect(r"Allow\?")
    say(chat, "y\r")
    chat.expect("Queued job 3 'chat'")
    chat.expect(PROMPT)
    say(chat, "/exit\r")
    chat.expect(pexpect.EOF)

    # A second REPL lists the session, resumes it, and Up recalls the last line typed.
    chat = spawn(oppen_home)
    chat.expect(PROMPT)
    say(chat, "/sessions\r")
    chat.expect(f"{session} .* 2 turns  'show job 2'")
    chat.expect(PROMPT)
    say(chat, f"/resume {session[:6]}\r")
    chat.expect(f"resumed session {session}")
    chat.expect("you: queue a job on 8 hosts with 2 gpus")
    chat.expect(PROMPT)
    say(chat, "what is the ETA of job 1\r")
    chat.expect("Job 1 is queued at position 1")
    chat.expect(PROMPT)
    # Up recalls the last line (history is kept in OPPEN_HOME across runs too).
    say(chat, "\x1b[A")
    time.sleep(PAUSE_S)
    chat.send("\r")
    chat.expect("Job 1 is queued at position 1")
    chat.expect(PROMPT)
    say(chat, "/exit\r")
    chat.expect(pexpect.EOF)
