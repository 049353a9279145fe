"""A study end to end through the real dispatcher: tiny trials as real training processes, a
seeded sampler over a space where some learning rates are hopeless, the median pruner
pruning, the dispatcher SIGKILLed midway and restarted, and the study completing with no
trial lost or run twice. On SQLite and on the PostgreSQL test server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from sqlmodel import Session, select

from app.core.models import Job, JobAttempt
from app.core.settings import load_settings
from app.services import Services
from app.sweeps.storage import storage
from tests.support.paths import REPO
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.slow

TRIALS = 8
# Tiny trials: 4 updates of 8 x 32 steps, an evaluation (a report to the pruner) after each.
# The learning rates start at 1e-3: below about 3e-4 four updates leave the greedy policy as
# it began, so such trials tie exactly at every report and a tie is never pruned.
BASE = {"total_timesteps": 1024, "num_envs": 8, "rollout_steps": 32, "eval_every": 1,
        "eval_seeds": [42, 43]}


def _env(home: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPEN_")}
    env.update(OPPEN_HOME=str(home), OPPEN_DATABASE_URL=url, MLFLOW_LOGGING_LEVEL="WARNING",
               OPPEN_DISPATCH_INTERVAL_S="0.3", OPPEN_LEASE_TTL_S="3",
               OPPEN_MAX_CONCURRENT_JOBS="2")
    return env


def _oppen(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def _dispatcher(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    log = open(Path(env["OPPEN_HOME"]) / "dispatcher.log", "ab")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "app", "dispatcher", "run", *args],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_study_runs_prunes_survives_a_killed_dispatcher_and_completes(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = fresh_database(backend, home / "oppen.db", request)
    env = _env(home, url)
    sets = [f"--set={k}={json.dumps(v)}" for k, v in BASE.items()]
    made = _oppen(env, "sweep", "create", "lr-search", "--param", "lr=log:1e-3:0.5",
                  *sets, "--trials", str(TRIALS), "--parallel", "2", "--seed", "3",
                  "--sampler", "tpe", "--pruner", "median", "--json")
    assert made.returncode == 0, made.stderr
    sweep = json.loads(made.stdout)["sweep"]
    assert sweep["objective"] == "mean_wait_s" and sweep["direction"] == "minimize"

    services = Services(load_settings(home=home, database_url=url))
    # Run until a few trials have ended, then kill the dispatcher outright, trials running.
    proc = _dispatcher(env, "--interval", "0.3")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        with Session(services.engine) as s:
            ended = s.exec(select(Job).where(Job.sweep_id == sweep["id"])
                           .where(Job.state.in_(["succeeded", "pruned"]))).all()  # type: ignore[attr-defined]
        if len(ended) >= 3:
            break
        time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(ended) >= 3, (home / "dispatcher.log").read_text()[-3000:]

    # A new dispatcher adopts what ran and finishes the study.
    _dispatcher(env, "--interval", "0.3", "--exit-when-idle").wait(timeout=400)

    shown = _oppen(env, "sweep", "show", "lr-search", "--json")
    assert shown.returncode == 0, shown.stderr
    d = json.loads(shown.stdout)["sweep"]
    assert d["state"] == "completed", d
    states = [t["state"] for t in d["trials"]]
    assert len(states) == TRIALS and set(states) <= {"complete", "pruned"}, d["trials"]
    assert "pruned" in states, d["trials"]  # the hopeless learning rates were stopped early
    pruned = [t for t in d["trials"] if t["state"] == "pruned"]
    assert all(t["pruned_at_step"] is not None and t["job_state"] == "pruned" for t in pruned)
    # Each trial is exactly one job, run by one attempt: nothing lost, nothing twice.
    with Session(services.engine) as s:
        jobs = s.exec(select(Job).where(Job.sweep_id == sweep["id"])).all()
        attempts = s.exec(select(JobAttempt).where(
            JobAttempt.job_id.in_([j.id for j in jobs]))).all()  # type: ignore[attr-defined]
    assert sorted(j.trial_number for j in jobs) == list(range(TRIALS))
    assert all(j.attempts == 1 for j in jobs), [(j.id, j.attempts) for j in jobs]
    assert sorted(a.outcome for a in attempts) == sorted(
        "pruned" if t == "pruned" else "succeeded" for t in states)
    # The best trial is the study's, with its configuration and a checkpoint to evaluate.
    best = d["best"]
    study = optuna.load_study(study_name=d["study_name"], storage=storage(url))
    assert best["number"] == study.best_trial.number and best["value"] == study.best_value
    assert best["config"]["lr"] == best["params"]["lr"]
    checkpoint = json.loads(shown.stdout)["best_checkpoint"]
    assert checkpoint and Path(checkpoint).exists()
    evaluated = _oppen(env, "eval", "--checkpoint", checkpoint, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    # Each trial's MLflow run is nested under the sweep's run, which holds the results.
    runs = services.tracker.client().search_runs(
        [services.tracker.experiment_id()],
        f"tags.mlflow.parentRunId = '{d['mlflow_run_id']}'")
    assert len(runs) == TRIALS
    parent = services.tracker.run_summary(d["mlflow_run_id"])
    assert parent.status == "FINISHED" and parent.metrics["best_value"] == study.best_value
    assert {"results/trials.json", "results/lr-search-history.png"} <= set(
        f.path for f in services.tracker.client().list_artifacts(d["mlflow_run_id"],
                                                                  "results"))
