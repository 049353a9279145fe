"""The queue verbs added for the agent's requests, as people run them: bulk cancel and
resume with one confirmation, pause and unpause, front, ETA, status, best, logs --follow,
80-column lists; and `oppen ask`'s exit codes for success, refusal and failure."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from app.api.operations import LocalOperations
from app.cli.follow import WINDOW, follow_logs, new_lines
from app.services import Services
from tests.support.processes import oppen_cmd


def run(*args: str, stdin: str | None = None,
        columns: int = 80) -> subprocess.CompletedProcess[str]:
    return subprocess.run(oppen_cmd(*args), capture_output=True, text=True, input=stdin,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": str(columns)},
                          timeout=180)


def test_ask_exit_codes_for_success_refusal_and_failure(oppen_home: Path) -> None:
    done = run("ask", "what's the status?")
    assert done.returncode == 0 and done.stdout.startswith("0 queued, 0 running")
    refused = run("ask", "queue a job with 8 gpus")
    assert refused.returncode == 1
    assert 'refused queue_training_job({"cpus": 1.0, "gpus": 8' in refused.stderr
    failed = run("ask", "cancel job 42", "--yes", "--json")
    assert failed.returncode == 1 and "failed: cancel_job" in failed.stderr
    out = json.loads(failed.stdout)
    assert out["failed"] == ["cancel_job"] and "no job with id 42" in out["answer"]
    assert "Traceback" not in refused.stderr + failed.stderr


def test_bulk_cancel_and_resume_confirm_once_listing_the_jobs(oppen_home: Path) -> None:
    for name in ("a", "b", "c"):
        assert run("queue", "submit", name).returncode == 0
    piped = run("queue", "cancel", "1", "2")
    assert piped.returncode == 1
    assert "  #1 'a' queued\n  #2 'b' queued\n" in piped.stderr
    assert "cancel 2 jobs: re-run with --yes to confirm" in piped.stderr
    cancelled = run("queue", "cancel", "--state", "queued", "--yes")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.count(": cancelled (cancelled by user)") == 3
    resumed = run("queue", "resume", "--state", "cancelled", "--yes")
    assert resumed.stdout.count(": queued") == 3
    # One of two fails: each is reported, and the exit code says so.
    run("queue", "cancel", "3")
    partly = run("queue", "cancel", "2", "3", "--yes")
    assert partly.returncode == 1
    assert "job 2: cancelled" in partly.stdout and "error: job 3:" in partly.stderr
    assert "'failed' is not one of 'queued', 'waiting', 'running'" in \
        run("queue", "cancel", "--state", "failed").stderr
    assert "name jobs or --state" in run("queue", "cancel", "1", "--state", "queued").stderr


def test_pause_front_eta_status_and_list(oppen_home: Path) -> None:
    for name in ("first", "second", "a-job-with-a-rather-long-name-that-will-not-fit"):
        run("queue", "submit", name, "--set", "total_timesteps=2000000")
    assert run("queue", "pause", "--reason", "upgrade").stdout.startswith(
        "admission paused since")
    status = run("queue", "status").stdout
    assert "admission: PAUSED" in status and "upgrade" in status
    assert "(admission-paused)" in status
    assert run("queue", "front", "3").stdout.startswith("job 3: position 1 (normal")
    eta = run("queue", "eta", "1", "--json")
    assert json.loads(eta.stdout)["position"] == 2
    listing = run("queue", "list", "--limit", "2")
    lines = listing.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].split() == ["id", "name", "prio", "state", "pos", "waits", "for",
                                "starts", "cost"]
    assert lines[1].split()[-1].startswith("$0.00") and " pause " in lines[1]
    assert "... 1 more (of 3); --offset 2 shows the next" in listing.stderr
    assert run("queue", "unpause").stdout == "admission resumed\n"
    assert run("queue", "unpause").stdout == "admission was not paused\n"
    assert "starts 20" in run("queue", "eta", "1").stdout


def test_best_ranks_the_evaluated_runs(services: Services) -> None:
    from sqlmodel import Session

    from app.core.models import Job

    ids = [services.queue.submit(f"r{i}", {"ent_coef": c}).id
           for i, c in enumerate([0.01, 0.02])]
    with Session(services.engine) as s:
        for job_id, ratio in zip(ids, [1.1, 0.8], strict=True):
            job = s.get(Job, job_id)
            assert job is not None
            job.state, job.eval_ratio = "succeeded", ratio
            s.add(job)
        s.commit()
    out = run("queue", "best").stdout.splitlines()
    assert out == [f"1. job {ids[1]} r1: 0.800x ent_coef=0.02",
                   f"2. job {ids[0]} r0: 1.100x ent_coef=0.01"]


class Growing:
    """A job whose log grows by a line per poll, then ends (a new attempt on the way)."""

    def __init__(self) -> None:
        self.polls = 0

    def show_job(self, job_id: int) -> dict[str, str]:
        return {"state": "succeeded" if self.polls >= 4 else "running"}

    def job_logs(self, job_id: int, lines: int) -> dict[str, object]:
        self.polls += 1
        attempt = 1 if self.polls < 3 else 2
        count = self.polls if attempt == 1 else self.polls - 2
        return {"attempt": attempt,
                "logs": "\n".join(f"a{attempt} line {i}" for i in range(count)) + "\n"}


def test_logs_follow_prints_each_new_line_once_across_attempts() -> None:
    printed: list[str] = []
    follow_logs(Growing(), 7, 50, printed.append, sleep=lambda _s: None)
    # The last poll, once the job has ended, still prints what its end wrote.
    assert printed == ["a1 line 0", "a1 line 1", "--- attempt 2 ---", "a2 line 0",
                       "a2 line 1", "a2 line 2", "--- job 7 succeeded ---"]
    before = [f"l{i}" for i in range(WINDOW)]
    slid = before[5:] + ["new 1", "new 2", "new 3", "new 4", "new 5"]
    assert new_lines(before, slid) == ["new 1", "new 2", "new 3", "new 4", "new 5"]


def test_logs_follow_a_real_job(services: Services) -> None:
    # The real local executor's log file, followed until the job ends.
    from tests.core.test_dispatcher import FAST, tick_until

    job = services.queue.submit("followed", FAST)
    tick_until(services, lambda r: r.idle)
    printed: list[str] = []
    follow_logs(LocalOperations(services), job.id, 5, printed.append, sleep=lambda _s: None)
    assert printed[-1] == f"--- job {job.id} succeeded ---" and len(printed) == 6
