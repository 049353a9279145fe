"""Training that survives its process: every retry resumes from the job's latest durable
checkpoint, and a cancelled job resumes by `queue resume`; whether its attempts start cold
or forked from the warm-start server.

Real `oppen train` subprocesses under the local executor and a real MLflow store. Each case
stops a job's first attempt after its second checkpoint (SIGKILL, SIGTERM, or a cancel); the
next attempt must resume from the newest checkpoint in the store, end with exactly the
parameters of an uninterrupted run, and log into the job's one MLflow run.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.core.dispatcher import Dispatcher
from app.core.executors import warm
from app.core.executors.local import job_process
from app.services import Services
from app.training import checkpoint
from app.training.checkpoint_store import store_for_job
from app.training.config import TrainConfig
from app.training.ppo import Trainer
from tests.core.test_dispatcher import tick_until

# One worker takes the three cases, so the reference run below is trained once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("resume")]

# 48 updates of 128 steps, a checkpoint after each: long enough to stop it in the middle.
CONFIG = {"total_timesteps": 6144, "num_envs": 2, "rollout_steps": 64, "episode_length": 32,
          "num_hosts": 4, "checkpoint_every": 1, "eval_seeds": [42], "hidden": 32}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The final policy of the same configuration trained in one go, in this process, on one
    thread as the job's own process is (its CPU request of 1 caps its thread pools)."""
    cfg = TrainConfig.from_dict(dict(CONFIG))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = Trainer(cfg, checkpoint_dir=tmp_path_factory.mktemp("reference"))
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    return {k: v.clone() for k, v in trainer.policy.state_dict().items()}


def _wait_for_checkpoints(services: Services, dispatcher: Dispatcher, job_id: int,
                          count: int) -> None:
    store = store_for_job(None, services.settings.resolved_home, job_id)
    deadline = time.monotonic() + 180
    while len(store.entries()) < count:
        assert time.monotonic() < deadline, "no second checkpoint in time"
        dispatcher.tick()
        time.sleep(0.05)


@pytest.fixture
def start(request: pytest.FixtureRequest, services: Services) -> Iterator[str]:
    """How the job's attempts start: cold (a new interpreter) or forked from a warm-start
    server, which must behave exactly alike."""
    if request.param == "cold":
        services.settings.warm_start = False
        yield "cold"
        return
    # A server of its own, in the home (not the suite's shared one): the test stops it.
    services.settings.warm_socket_path = None
    services.settings.warm_start = True
    services.executor.prepare()
    deadline = time.monotonic() + 120
    while not warm.answering(services.settings.warm_socket):
        assert time.monotonic() < deadline, "the warm-start server did not answer"
        time.sleep(0.2)
    try:
        yield "warm"
    finally:
        warm.stop_server(services.settings.warm_socket)


@pytest.mark.parametrize(("how", "start"), [
    ("sigkill", "cold"), ("sigterm", "cold"), ("cancel-then-resume", "cold"),
    ("sigkill", "warm"), ("cancel-then-resume", "warm")], indirect=["start"])
def test_the_next_attempt_resumes_from_the_latest_checkpoint(
        services: Services, how: str, start: str,
        uninterrupted: dict[str, torch.Tensor]) -> None:
    services.settings.retry_backoff_s = 0.2
    dispatcher = services.dispatcher()
    # The tracking store made (and MLflow imported) before the job starts, as a running
    # dispatcher's warm-up does: otherwise the first tick that reads the job's progress
    # imports MLflow, and on a loaded machine the 6-second job can end within that tick.
    services.tracker.experiment_id()
    job = services.queue.submit(f"resume after {how}", CONFIG)
    _wait_for_checkpoints(services, dispatcher, job.id, 2)
    ref = services.queue.get(job.id).executor_ref
    trainer = job_process(ref)
    assert trainer is not None, "the runner has no training process"
    # A warm start's trainer is the server's child, not the runner's.
    assert Path(json.loads(ref)["status"]).with_suffix(".child").exists() == (start == "warm")
    if how == "sigkill":
        os.kill(trainer, signal.SIGKILL)
    elif how == "sigterm":  # what a preempted pod or a node drain sends: checkpoint, exit 143
        os.kill(trainer, signal.SIGTERM)
    else:
        services.queue.cancel(job.id, "stopped for the test")
        tick_until(services, lambda r: services.queue.get(job.id).state == "cancelled",
                   dispatcher=dispatcher)
        view = services.queue.show(job.id)
        assert [a["outcome"] for a in view.to_dict()["attempt_history"]] == ["cancelled"]
        assert services.tracker.run_summary(view.job.mlflow_run_id).status == "KILLED"
        services.queue.resume(job.id)
    store = store_for_job(None, services.settings.resolved_home, job.id)
    if how != "cancel-then-resume":  # the first attempt's end, seen by the dispatcher
        tick_until(services, lambda r: services.queue.get(job.id).attempts == 2
                   or services.queue.get(job.id).state in ("succeeded", "failed"),
                   dispatcher=dispatcher)
    # What the first attempt left in the store is where the second must begin.
    expected_step = store.entries()[-1].step
    tick_until(services, lambda r: r.idle, timeout=240, dispatcher=dispatcher)

    view = services.queue.show(job.id)
    d = view.to_dict()
    assert view.job.state == "succeeded", view.job.reason
    history = d["attempt_history"]
    assert [a["number"] for a in history] == [1, 2]
    assert history[0]["resumed_from_step"] is None
    assert history[1]["resumed_from_step"] == expected_step > 0
    assert history[1]["outcome"] == "succeeded"
    assert history[0]["outcome"] == {"sigkill": "infrastructure", "sigterm": "infrastructure",
                                     "cancel-then-resume": "cancelled"}[how]
    if how == "sigkill":  # failed as the infrastructure's doing, then queued for a retry
        moves = [(e["to"], e["reason"]) for e in d["events"]]
        failed = [reason for to, reason in moves if to == "failed"]
        assert len(failed) == 1 and failed[0].startswith("infrastructure:") \
            and "signal 9" in failed[0]
        assert any(to == "queued" and reason.startswith("retry 2 of 3") for to, reason in moves)
    # Charged per attempt, from the attempts' own start and end; the job's cost is their sum.
    costs = [int(round(float(a["cost_usd"]) * 1_000_000)) for a in history]
    assert all(c > 0 for c in costs) and view.job.cost_micros == sum(costs)
    for a in history:
        assert a["started_at"] < a["ended_at"]

    # Exactly the uninterrupted run's parameters at the end.
    final = checkpoint.load(Path(store.location) / store.entries()[-1].name)
    assert final["global_step"] == CONFIG["total_timesteps"]
    for key, value in uninterrupted.items():
        assert torch.equal(final["policy"][key], value), key

    # One MLflow run for the job, FINISHED, with metrics from both attempts on one axis.
    client = services.tracker.client()
    runs = client.search_runs([services.tracker.experiment_id()],
                              f"tags.`oppen.job_id` = '{job.id}'")
    assert [r.info.run_id for r in runs] == [view.job.mlflow_run_id]
    assert runs[0].info.status == "FINISHED"
    steps = sorted({m.step for m in client.get_metric_history(runs[0].info.run_id,
                                                              "charts/global_step")})
    assert steps[0] == 128 and steps[-1] == CONFIG["total_timesteps"]
    assert set(range(128, CONFIG["total_timesteps"] + 1, 128)) <= set(steps)

    # The text view says where the second attempt began.
    from click.testing import CliRunner

    from app.cli import cli

    out = CliRunner().invoke(cli, ["queue", "show", str(job.id)])
    assert out.exit_code == 0, out.output
    assert f"attempt 2 resumed from step {expected_step:,}: succeeded" in out.output
