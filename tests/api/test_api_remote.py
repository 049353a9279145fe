"""`oppen serve` as its own process, driven by the CLI with OPPEN_SERVER_URL set: submit, the
server's dispatcher runs the job, the dashboard shows it; the same commands read the same
either way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.api.client import wait_until_healthy
from tests.support.processes import free_port, oppen_cmd

FAST = {"total_timesteps": 512, "num_envs": 4, "rollout_steps": 64, "episode_length": 32,
        "eval_seeds": "[42]"}


def oppen(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(oppen_cmd(*args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def server(oppen_home: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    # Its access lines go to a file: a pipe nobody reads could fill and stall the server.
    with (oppen_home.parent / "server.log").open("w") as log:
        proc = subprocess.Popen(oppen_cmd("serve", "--port", str(port), "--interval", "0.5"),
                                stdout=log, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, lambda: proc.poll() is None)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_cli_through_the_server_end_to_end(server: tuple[str, subprocess.Popen[str]],
                                           tmp_path: Path) -> None:
    url, proc = server
    made = oppen("token", "create", "--team", "alpha", "--role", "submitter")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("oppen_") and "only its hash is stored" in made.stderr
    remote = {"OPPEN_SERVER_URL": url, "OPPEN_TOKEN": token}

    sets = [a for k, v in FAST.items() for a in ("--set", f"{k}={v}")]
    submitted = oppen("queue", "submit", "remote-job", *sets, "--json", env=remote)
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)["job"]
    assert job["team"] == "alpha"  # from the token

    deadline = time.monotonic() + 150
    while True:
        shown = oppen("queue", "show", str(job["id"]), "--json", env=remote)
        assert shown.returncode == 0, shown.stderr
        state = json.loads(shown.stdout)["job"]["state"]
        if state in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"job still {state}"
        time.sleep(1)
    assert state == "succeeded", shown.stdout

    board = oppen("dashboard", "--json", env=remote)
    recent = json.loads(board.stdout)["recent"]
    assert [r["name"] for r in recent] == ["remote-job"] and recent[0]["state"] == "succeeded"
    view = oppen("dashboard", env={**remote, "COLUMNS": "160"})
    assert view.returncode == 0 and "remote-job" in view.stdout and "succeeded" in view.stdout

    # The same commands, the same output, whether through the server or the database.
    for args in (("queue", "show", str(job["id"]), "--json"), ("queue", "list"),
                 ("budget", "show")):
        through_server = oppen(*args, env={**remote, "COLUMNS": "160"})
        direct = oppen(*args, env={"COLUMNS": "160"})
        assert through_server.returncode == direct.returncode == 0, through_server.stderr
        assert through_server.stdout == direct.stdout, args

    # Errors read the same too, and a viewer's token cannot act.
    missing = oppen("queue", "cancel", "424242", env=remote)
    assert missing.returncode == 1 and missing.stderr == "error: no job with id 424242\n"
    viewer = oppen("token", "create", "--team", "alpha", "--role", "viewer").stdout.strip()
    refused = oppen("queue", "submit", "nope", env={**remote, "OPPEN_TOKEN": viewer})
    assert refused.returncode == 1
    assert refused.stderr == "error: submitting a job needs the submitter role; this token " \
                             "is viewer\n"
    bad = oppen("queue", "list", env={**remote, "OPPEN_TOKEN": "oppen_wrong"})
    assert bad.returncode == 1 and "valid bearer token is required" in bad.stderr

    # SIGTERM: a clean stop that hands the dispatcher lease back at once.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    status = oppen("dashboard", "--json")
    lease = [h for h in json.loads(status.stdout)["health"] if h["component"] == "dispatcher"]
    assert lease and "no dispatcher" in lease[0]["detail"], lease
    # It said where it listened, and logged a line per request.
    log = (tmp_path / "server.log").read_text()
    assert f"oppen serve: {url} " in log
    assert "POST /api/v1/jobs 201" in log and "GET /api/v1/dashboard 200" in log


def test_an_unreachable_server_is_one_clear_line(oppen_home: Path) -> None:
    r = oppen("queue", "list", env={"OPPEN_SERVER_URL": f"http://127.0.0.1:{free_port()}"})
    assert r.returncode == 1
    assert r.stderr.startswith("error: cannot reach the Oppen server at http://127.0.0.1:")
    assert "Traceback" not in r.stderr
