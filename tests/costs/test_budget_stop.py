"""Hard budgets hold while jobs run. A job that runs far past its estimate is stopped the way a
cancel stops it (SIGTERM: the trainer checkpoints) before its hard budget would be overspent,
and ends `budget_exhausted`; sent back to the queue, it waits until the budget allows.

The bound (docs/reliability.md): a running job is stopped while its budget still has room for
the next tick plus a stop's grace of its running jobs' spend, so the budget is never passed
while the dispatcher ticks on time."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from app.core.models import Job
from app.core.settings import load_settings
from app.core.timeutil import utcnow
from app.costs.budgets import shape_of
from app.costs.calculator import interval_cost
from app.services import Services


@pytest.mark.slow
def test_a_job_far_past_its_estimate_stops_before_its_hard_budget(
        oppen_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A short stop grace keeps the checked horizon (tick + grace + 1 s) to about 4.5 s.
    monkeypatch.setenv("OPPEN_STOP_GRACE_S", "3")
    services = Services(load_settings())
    config = {"total_timesteps": 50_000_000, "num_envs": 4, "rollout_steps": 64,
              "episode_length": 32, "checkpoint_every": 1, "eval_seeds": [1]}
    job = services.queue.submit("long", config, gpus=1)
    pricing = services.pricing
    now = utcnow()

    def spend(seconds: float) -> int:
        return interval_cost(pricing, now, now + timedelta(seconds=seconds),
                             shape_of(services.queue.get(job.id))).micros

    # An estimate far too optimistic (5 s of its spend), as a mis-estimated run would have.
    estimate = spend(5)
    with Session(services.engine) as s:
        row = s.get(Job, job.id)
        row.estimated_cost_micros, row.estimated_duration_s = estimate, 5.0
        s.add(row)
        s.commit()
    limit = spend(40)  # room for 8 times the estimate
    services.budgets.set("tight", f"{limit / 1e6:.6f}", "global", hard=True)
    d = services.dispatcher()
    highest_spent = 0
    deadline = time.monotonic() + 180
    while services.queue.get(job.id).state in ("queued", "dispatching", "running"):
        assert time.monotonic() < deadline, "the job was never stopped"
        d.tick()
        spent = services.budgets.status(services.budgets.get("tight")).spent_micros
        highest_spent = max(highest_spent, spent)
        time.sleep(0.2)
    stopped = services.queue.get(job.id)
    assert stopped.state == "budget_exhausted", stopped.reason
    assert "stopped before overspending: budget 'tight'" in stopped.reason
    # It ran several times past its estimate, and never past the limit.
    assert stopped.cost_micros > 3 * estimate
    assert stopped.cost_micros <= limit and highest_spent <= limit
    # Stopped as a cancel stops it: SIGTERM, and the trainer checkpointed before exiting.
    checkpoints = list((oppen_home / "checkpoints").rglob("*.pt"))
    assert checkpoints, "no checkpoint was written on the budget stop"

    # Sent back to the queue, it waits for the budget rather than overspend it.
    assert services.queue.resume(job.id).state == "queued"
    report = d.tick()
    assert job.id not in report.launched
    view = services.queue.show(job.id)
    assert view.pending is not None and view.pending.reason.value == "budget"
    services.budgets.set("tight", f"{10 * limit / 1e6:.6f}", "global", hard=True)
    assert job.id in d.tick().launched
    services.queue.cancel(job.id)
    d.tick()
