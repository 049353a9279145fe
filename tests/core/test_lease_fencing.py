"""One leader, fenced: a dispatcher whose tick outlasts its lease, and is replaced meanwhile,
cannot act after the takeover. Its writes match no row (the fencing token, the lease's epoch,
has moved on), it launches and stops nothing, and it stops its tick."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from app.core.admission import Limits
from app.core.db import init_db, make_engine
from app.core.dispatcher import Dispatcher, Progress
from app.core.executors.base import ExecStatus, Phase
from app.core.lease import LeadershipLost, Lease
from app.core.models import Job
from app.core.states import JobState
from app.core.transitions import transition
from app.services import build_queue

TTL_S = 1.5


class SharedCluster:
    """Where both dispatchers' attempts run: what one launched, the other finds."""

    def __init__(self) -> None:
        self.attempts: dict[int, str] = {}
        self.actions: list[tuple[str, str, int, float]] = []  # (who, what, job, when)
        self.lock = threading.Lock()


class RecordingExecutor:
    name = "recording"

    def __init__(self, who: str, cluster: SharedCluster) -> None:
        self.who, self.cluster = who, cluster

    def _record(self, what: str, job_id: int) -> None:
        with self.cluster.lock:
            self.cluster.actions.append((self.who, what, job_id, time.monotonic()))

    def launch(self, job: Job) -> str:
        self._record("launch", job.id)
        ref = json.dumps({"job": job.id, "by": self.who})
        self.cluster.attempts[job.id] = ref
        return ref

    def find(self, job: Job) -> str | None:
        return self.cluster.attempts.get(job.id)

    def poll(self, ref: str) -> ExecStatus:
        return ExecStatus(Phase.RUNNING)

    def stop(self, ref: str) -> None:
        self._record("stop", json.loads(ref)["job"])

    def logs(self, ref: str, lines: int = 50) -> str:
        return ""


def test_a_tick_that_outlasts_the_lease_cannot_act_after_a_takeover(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    init_db(engine)
    queue = build_queue(engine)
    ids = [queue.submit(f"j{i}").id for i in range(4)]
    cluster = SharedCluster()
    slept = threading.Event()

    def slow_progress(run_id: str) -> Progress | None:
        # The leader's tick stalls here (an MLflow query that hangs) for twice its lease.
        if not slept.is_set():
            slept.set()
            time.sleep(2 * TTL_S)
        return None

    a = Dispatcher(engine, RecordingExecutor("A", cluster), Lease(engine, "A", TTL_S),
                   Limits(max_concurrent=2), progress=slow_progress)
    b = Dispatcher(engine, RecordingExecutor("B", cluster), Lease(engine, "B", TTL_S),
                   Limits(max_concurrent=4))

    first = a.tick()
    assert first.leader and sorted(first.launched) == ids[:2]
    epoch_a = a.lease.epoch
    with Session(engine) as s:  # the first job reports to a run, so its progress is read
        job = s.get(Job, ids[0])
        job.mlflow_run_id = "run-0"
        s.add(job)
        s.commit()

    reports: dict[str, Any] = {}
    stalled = threading.Thread(target=lambda: reports.setdefault("a", a.tick()))
    stalled.start()
    assert slept.wait(10)
    deadline = time.monotonic() + 10 * TTL_S
    while time.monotonic() < deadline:  # B waits out A's lease, then leads
        report = b.tick()
        if report.leader:
            reports["b"] = report
            break
        time.sleep(0.1)
    stalled.join(30)
    assert "b" in reports, "the second dispatcher never took over"

    late = reports["a"]
    assert late.lost_lease and not late.leader  # A noticed, and stopped its tick
    assert b.lease.epoch == epoch_a + 1  # the fencing token moved on
    assert sorted(reports["b"].launched) == ids[2:]
    # Every attempt started exactly once, and A did nothing once B led.
    launches = [job for _, what, job, _ in cluster.actions if what == "launch"]
    assert sorted(launches) == ids
    a_last = max(t for who, _, _, t in cluster.actions if who == "A")
    b_first = min(t for who, _, _, t in cluster.actions if who == "B")
    assert a_last < b_first
    # A write made with A's stale fence changes nothing and says why.
    with Session(engine) as s:
        job = s.get(Job, ids[1])
        assert job.state == JobState.RUNNING.value
        with pytest.raises(LeadershipLost):
            transition(s, job, JobState.SUCCEEDED, "stale leader", fence=a_fence(engine,
                                                                                 epoch_a))
        s.rollback()
        assert s.get(Job, ids[1]).state == JobState.RUNNING.value


def a_fence(engine: Any, epoch: int) -> Any:
    """The fence of holder A in ``epoch``, as A's tick would still hold it."""
    lease = Lease(engine, "A", TTL_S)
    lease.epoch = epoch
    return lease.fence()


def test_epochs_rise_on_takeover_and_hold_on_renewal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    init_db(engine)
    a, b = Lease(engine, "A", 0.3), Lease(engine, "B", 0.3)
    assert a.acquire() and a.epoch == 1
    assert a.acquire() and a.epoch == 1  # a renewal keeps the epoch
    assert not b.acquire()
    time.sleep(0.4)
    assert b.acquire() and b.epoch == 2  # a takeover raises it
    with pytest.raises(LeadershipLost):
        a.renew()
    a.release()  # not the holder: changes nothing
    assert b.current().holder == "B"
    b.release()
    assert a.acquire() and a.epoch == 3  # a release never resets the token
