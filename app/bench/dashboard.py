"""`oppen bench dashboard`: gathering and rendering the dashboard at 10,000 jobs.

The figure is the median time to gather the dashboard's data and render it (what one
`oppen dashboard` or one `--watch` refresh costs) with 10,000 jobs, 100 of them running;
the baseline, measured in the same run on a fresh store, is the same with 100 jobs (all
running), so the ratio says what the queue's size costs.
"""

from __future__ import annotations

import io
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

TARGET_MS = 300.0  # the dashboard issue's bar for 10,000 jobs on the 2-core VM


@dataclass(frozen=True)
class DashboardBench:
    jobs: int
    running: int
    gather_render_ms: float
    baseline_jobs: int
    baseline_gather_render_ms: float
    samples_ms: list[float]
    baseline_samples_ms: list[float]

    @property
    def scale_ratio(self) -> float:
        """How many times longer the full queue takes than the baseline."""
        return self.gather_render_ms / self.baseline_gather_render_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "scale_ratio": self.scale_ratio, "target_ms": TARGET_MS,
                "meets_target": self.gather_render_ms < TARGET_MS}


def fill(services: Any, queued: int, running: int) -> None:
    """Queues ``queued`` jobs through the queue, then adds ``running`` jobs already running
    with progress and reward curves (as the dispatcher leaves them), and takes the lease so
    the dashboard sees a live dispatcher."""
    from app.core.lease import Lease
    from app.core.models import Job
    from app.core.timeutil import utcnow

    if queued:
        services.queue.submit_batch([{"name": f"q{i}"} for i in range(queued)])
    now = utcnow()
    with Session(services.engine) as s:
        s.execute(insert(Job), [dict(
            name=f"r{i}", state="running", priority_class="normal", priority=100,
            config={"total_timesteps": 100_000}, cpus=1.0, memory_mb=1024, gpus=0,
            created_at=now, started_at=now - timedelta(minutes=1), attempts=1,
            cancel_requested=False, team="default", project="default", max_attempts=3,
            progress_step=1000 * i, progress_sps=500.0, progress_at=now, spot=False,
            cost_micros=0, reward_curve=[float(i), float(i + 1)], executor_ref="{}")
            for i in range(running)])
        s.commit()
    Lease(services.engine, "bench", 60).acquire()


def _filled_services(home: Path, queued: int, running: int) -> Any:
    from app.core.settings import load_settings
    from app.services import Services

    services = Services(load_settings(home=home))
    fill(services, queued, running)
    return services


def _time_render(services: Any, repeats: int) -> list[float]:
    from rich.console import Console

    from app.dashboard.data import gather
    from app.dashboard.render import render

    console = Console(width=160, file=io.StringIO())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        render(gather(services), console)
        times.append((time.perf_counter() - start) * 1000)
    return times


def run(jobs: int = 10_000, running: int = 100, repeats: int = 5) -> DashboardBench:
    if not 0 < running <= jobs:
        raise ValueError("running must be between 1 and jobs")
    saved = {k: v for k, v in os.environ.items() if k.startswith("OPPEN_")}
    for key in saved:
        del os.environ[key]  # a private store, whatever the caller's settings say
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = _time_render(_filled_services(Path(tmp) / "base", 0, running), repeats)
            full = _time_render(_filled_services(Path(tmp) / "full", jobs - running, running),
                                repeats)
    finally:
        os.environ.update(saved)
    return DashboardBench(jobs, running, statistics.median(full), running,
                          statistics.median(base), full, base)
