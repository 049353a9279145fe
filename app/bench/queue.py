"""`oppen bench queue`: the queue and dispatcher at 10,000 jobs.

Figures (medians over repeats, each on a fresh database): a batch submission of 10,000 jobs
against the same jobs submitted one at a time (the baseline, measured on a sample in the same
run); a dispatcher tick deciding over 10,000 queued jobs; a tick with 100 jobs running; and
`queue list` (with pending reasons and ETAs) and status counts with 10,000 jobs queued.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col

from app.core.admission import Limits
from app.core.db import init_db, make_engine
from app.core.dispatcher import Dispatcher
from app.core.executors.base import ExecStatus, Phase
from app.core.lease import Lease
from app.core.models import Job
from app.services import build_queue

JOBS = 10_000
ONE_BY_ONE_SAMPLE = 200
TARGETS_MS = {"submit_batch_10k": 1000.0, "tick_10k_queued": 50.0, "list_10k": 100.0,
              "status_10k": 100.0}


class RecordingExecutor:
    """Starts nothing and reports every attempt running (or, with ``finish_at_once``,
    succeeded on its first poll): benchmarks and tests time Oppen's own work, not process
    start-up."""

    name = "recording"

    def __init__(self, finish_at_once: bool = False) -> None:
        self.finish_at_once = finish_at_once
        self.launched: list[int] = []

    def launch(self, job: Job) -> str:
        self.launched.append(job.id)
        return str(job.id)

    def find(self, job: Job) -> str | None:
        return None

    def poll(self, ref: str) -> ExecStatus:
        return ExecStatus(Phase.EXITED, 0) if self.finish_at_once else ExecStatus(Phase.RUNNING)

    def stop(self, ref: str) -> None:
        pass

    def logs(self, ref: str, lines: int = 50) -> str:
        return ""


def _items(n: int) -> list[dict[str, Any]]:
    classes = ("urgent", "normal", "background")
    return [{"name": f"bench-{i}", "priority": classes[i % 3],
             "config": {"total_timesteps": 10_000 + i}} for i in range(n)]


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(repeats: int = 3, database_url: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oppen-bench-queue-") as tmp:
        counter = iter(range(10_000))

        def fresh() -> Any:
            url = database_url or f"sqlite:///{Path(tmp) / f'q{next(counter)}.db'}"
            engine = make_engine(url)
            if database_url:  # a shared server: start from empty tables
                with engine.begin() as conn:
                    conn.exec_driver_sql("DROP TABLE IF EXISTS job_events, jobs, "
                                         "dispatcher_lease, alembic_version CASCADE")
            init_db(engine)
            return build_queue(engine)

        batch, one_by_one, ticks, ticks_busy, lists, statuses = [], [], [], [], [], []
        for _ in range(repeats):
            queue = fresh()
            items = _items(JOBS)
            batch.append(_timed(lambda q=queue, it=items: q.submit_batch(it)))

            single = fresh()
            sample = _items(ONE_BY_ONE_SAMPLE)
            one_by_one.append(_timed(lambda q=single, it=sample: [q.submit(**x) for x in it])
                              / ONE_BY_ONE_SAMPLE)

            # A tick that decides over every queued job: free slots, so admission runs.
            executor = RecordingExecutor()
            dispatcher = Dispatcher(queue.engine, executor, Lease(queue.engine, "bench", 60),
                                    Limits(max_concurrent=3))
            for _ in range(5):
                ticks.append(_timed(dispatcher.tick))
                with Session(queue.engine) as s:  # put them back, untimed
                    s.exec(update(Job).where(col(Job.id).in_(executor.launched))  # type: ignore[call-overload]
                           .values(state="queued", executor_ref=None, attempts=0))
                    s.commit()
                executor.launched.clear()
            lists.append(_timed(lambda q=queue: q.list(["queued"], limit=200)))
            statuses.append(_timed(queue.counts))

            # 100 running: the tick reconciles each of them, then has no slot to fill.
            busy = Dispatcher(queue.engine, RecordingExecutor(),
                              Lease(queue.engine, "bench", 60), Limits(max_concurrent=100))
            busy.tick()
            for _ in range(5):
                ticks_busy.append(_timed(busy.tick))

        figures = {
            "submit_batch_10k": _median_ms(batch),
            "submit_one_ms": _median_ms(one_by_one),
            "tick_10k_queued": _median_ms(ticks),
            "tick_100_running": _median_ms(ticks_busy),
            "list_10k": _median_ms(lists),
            "status_10k": _median_ms(statuses),
        }
        one_by_one_10k = figures["submit_one_ms"] * JOBS
        return {
            "jobs": JOBS,
            "repeats": repeats,
            "database": "postgresql" if database_url else "sqlite",
            "median_ms": figures,
            "baseline": {"submit_one_by_one_10k_ms_projected": round(one_by_one_10k, 1),
                         "batch_speedup": round(one_by_one_10k / figures["submit_batch_10k"],
                                                1)},
            "targets_ms": TARGETS_MS,
            "meets_targets": {k: figures[k] < v for k, v in TARGETS_MS.items()},
        }
