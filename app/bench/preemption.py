"""What a preemption really costs a job: `oppen bench preemption`.

Each repeat runs one configuration twice through the real dispatcher and local executor (real
`oppen train` processes, a real MLflow store, on a fresh home): once uninterrupted, once with
its trainer stopped ``preemptions`` times in the middle, the way a reclaimed spot node stops
it: SIGTERM (Kubernetes' notice; the trainer checkpoints, then exits 143) or SIGKILL (the node
is gone; the work since the last checkpoint is lost). Every retry resumes from the job's latest
checkpoint. Reported, as medians over the repeats: the wall-time ratio of the interrupted run
to the uninterrupted one, the restart cost per preemption in seconds, and the steps lost per
preemption (the step the trainer had reached minus the step the next attempt resumed from).
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CONFIG = {"total_timesteps": 12_288, "num_envs": 2, "rollout_steps": 64, "episode_length": 32,
          "num_hosts": 4, "checkpoint_every": 4, "eval_seeds": [42], "hidden": 32}


@dataclass(frozen=True)
class PreemptionFigures:
    signal: str
    preemptions: int
    repeats: int
    steps_per_checkpoint: int
    uninterrupted_s: float
    interrupted_s: float
    ratio: float  # interrupted / uninterrupted wall time, median over repeats
    restart_s_per_preemption: float
    lost_steps_per_preemption: float
    resumed_exactly: bool  # every run's final parameters equal its uninterrupted twin's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _services(home: Path) -> Any:
    from app.core.settings import load_settings
    from app.services import Services

    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    # Everything of this run under its own home, whatever the caller's environment says.
    settings = load_settings(home=home, database_url=f"sqlite:///{home / 'oppen.db'}",
                             mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
                             executor="local", local_command=None, checkpoint_uri=None,
                             retry_backoff_s=0.0, dispatch_interval_s=0.2,
                             max_concurrent_jobs=1)
    return Services(settings)


def _run_one(home: Path, stops: int, how: signal.Signals) -> tuple[float, int, Any]:
    """Runs the job with ``stops`` interruptions; returns its wall time, the steps it trained
    twice (lost to the interruptions) and its final checkpoint."""
    from app.core.executors.local import job_process
    from app.training import checkpoint
    from app.training.checkpoint_store import store_for_job

    services = _services(home)
    dispatcher = services.dispatcher()
    job = services.queue.submit(f"preempted {stops}x", dict(CONFIG))
    store = store_for_job(None, services.settings.resolved_home, job.id)
    total = CONFIG["total_timesteps"]
    marks = [total * (i + 1) // (stops + 1) for i in range(stops)]
    # A reclaim comes at any moment, not just after a checkpoint: each stop waits a random
    # part of one checkpoint interval (as timed between the last two checkpoints) first.
    rng = random.Random(stops)
    seen_step, seen_at, interval_s = -1, time.perf_counter(), 1.0
    stop_at: float | None = None
    started = time.perf_counter()
    while True:
        report = dispatcher.tick()
        current = services.queue.get(job.id)
        if marks and current.state == "running" and current.executor_ref:
            entries = store.entries()
            reached = entries[-1].step if entries else 0
            if reached != seen_step:
                now = time.perf_counter()
                if seen_step > 0 and reached > seen_step:
                    interval_s = now - seen_at
                seen_step, seen_at = reached, now
            if reached >= marks[0] and stop_at is None:
                stop_at = time.perf_counter() + rng.uniform(0, interval_s)
            trainer = job_process(current.executor_ref)
            if stop_at is not None and time.perf_counter() >= stop_at and trainer is not None:
                stop_at = None
                os.kill(trainer, how)
                marks.pop(0)
                while services.queue.get(job.id).executor_ref == current.executor_ref:
                    dispatcher.tick()  # until the stopped attempt is seen and retried
                    time.sleep(0.05)
        if report.idle and not marks:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    view = services.queue.show(job.id)
    if view.job.state != "succeeded":
        raise RuntimeError(f"the benchmark job ended {view.job.state}: {view.job.reason}")
    # Every update logs its global step once: steps logged beyond the total were trained
    # again after an interruption (a SIGKILL may lose a few unflushed ones: a lower bound).
    history = services.tracker.client().get_metric_history(view.job.mlflow_run_id,
                                                           "charts/global_step")
    per_update = CONFIG["num_envs"] * CONFIG["rollout_steps"]
    final = checkpoint.load(Path(store.location) / store.entries()[-1].name)
    return elapsed, max(0, len(history) * per_update - total), final


def run(repeats: int = 3, preemptions: int = 2, how: str = "sigterm") -> PreemptionFigures:
    import torch

    sig = {"sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}[how]
    ratios, restarts, losses, base_times, hit_times = [], [], [], [], []
    exact = True
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="oppen-bench-preemption-") as tmp:
            base_s, _, base_final = _run_one(Path(tmp) / "baseline", 0, sig)
            hit_s, lost, final = _run_one(Path(tmp) / "preempted", preemptions, sig)
        exact &= all(torch.equal(final["policy"][k], v) for k, v in base_final["policy"].items())
        base_times.append(base_s)
        hit_times.append(hit_s)
        ratios.append(hit_s / base_s)
        restarts.append((hit_s - base_s) / preemptions)
        losses.append(lost / preemptions)
    steps_per_checkpoint = CONFIG["checkpoint_every"] * CONFIG["num_envs"] * CONFIG["rollout_steps"]
    return PreemptionFigures(how, preemptions, repeats, steps_per_checkpoint,
                             round(statistics.median(base_times), 2),
                             round(statistics.median(hit_times), 2),
                             round(statistics.median(ratios), 3),
                             round(statistics.median(restarts), 2),
                             float(statistics.median(losses)) if losses else 0.0, exact)
