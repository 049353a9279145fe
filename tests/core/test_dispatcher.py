"""The dispatcher with the real local executor: real training subprocesses, a real MLflow store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from sqlmodel import Session

from app.core.dispatcher import Dispatcher, TickReport
from app.core.lease import Lease
from app.core.models import Job
from app.core.states import JobState
from app.core.transitions import transition
from app.services import Services

FAST = {"total_timesteps": 512, "num_envs": 4, "rollout_steps": 64, "episode_length": 32,
        "eval_seeds": [42]}


def tick_until(services: Services, done, timeout: float = 120.0,  # type: ignore[no-untyped-def]
               dispatcher: Dispatcher | None = None) -> TickReport:
    d = dispatcher or services.dispatcher()
    deadline = time.monotonic() + timeout
    while True:
        report = d.tick()
        if done(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last report {report}")
        time.sleep(0.3)


def test_job_runs_to_success_and_mlflow_holds_its_metrics(services: Services) -> None:
    job = services.queue.submit("ok", FAST, priority="urgent")
    tick_until(services, lambda r: r.idle)
    view = services.queue.show(job.id)
    assert view.job.state == "succeeded", view.job.reason
    assert [e.to_state for e in view.events] == ["queued", "dispatching", "running", "succeeded"]
    assert view.job.exit_code == 0 and view.job.attempts == 1
    run = services.tracker.run_summary(view.job.mlflow_run_id)
    assert run.status == "FINISHED"
    assert run.tags["oppen.job_id"] == str(job.id)
    assert run.params["total_timesteps"] == "512"
    assert run.metrics["charts/global_step"] == 512
    for key in ("losses/value_loss", "charts/SPS", "eval/ppo/mean_wait_s",
                "eval/best_fit/mean_wait_s", "charts/episodic_return"):
        assert key in run.metrics, key
    assert set(services.tracker.artifacts(run.run_id)) == {"checkpoints", "evaluation", "plots"}
    # Priced when it ended, and its throughput kept for the next estimates of its kind.
    assert view.job.cost_micros > 0
    assert view.job.progress_sps == run.metrics["charts/SPS"]
    later = services.queue.submit("same kind", FAST)
    expected = 30 + 512 / run.metrics["charts/SPS"]
    assert later.estimated_duration_s == pytest.approx(expected)

    # Its policy against the heuristics: as recorded, and afresh from its checkpoint.
    from app.api.operations import LocalOperations

    ops = LocalOperations(services)
    recorded = ops.evaluation(job.id)
    assert recorded["evaluated"] and not recorded["fresh"] and recorded["seeds"] == [42]
    assert {"ppo", "first_fit", "best_fit"} <= set(recorded["results"])
    assert recorded["ppo_vs_best_heuristic_wait_ratio"] == pytest.approx(
        run.metrics["eval/ppo_vs_best_heuristic_wait_ratio"])
    again = ops.evaluation(job.id, [7])
    assert again["fresh"] and again["seeds"] == [7] and "ppo" in again["results"]
    assert again["best_heuristic"] in again["results"]


def test_concurrency_limit_and_priority_order(services: Services) -> None:
    services.settings.max_concurrent_jobs = 1
    low = services.queue.submit("low", FAST, priority="background")
    high = services.queue.submit("high", FAST, priority="urgent")
    d = services.dispatcher()
    first = d.tick()
    assert first.launched == [high.id]  # urgent first, despite being submitted later
    assert services.queue.get(low.id).state == "queued"
    tick_until(services, lambda r: r.idle, dispatcher=d)
    assert services.queue.get(low.id).state == "succeeded"
    assert services.queue.get(low.id).started_at >= services.queue.get(high.id).finished_at


def test_failing_job_is_failed_with_its_reason(services: Services) -> None:
    job = services.queue.submit("bad", FAST)
    with Session(services.engine) as s:  # corrupt the stored config behind the service's back
        row = s.get(Job, job.id)
        row.config = {**row.config, "lr": "not-a-number"}
        s.add(row)
        s.commit()
    tick_until(services, lambda r: r.idle)
    failed = services.queue.get(job.id)
    assert failed.state == "failed"
    # A bad config exits 2: a user error, failed at once and never retried.
    assert failed.exit_code == 2
    assert failed.attempts == 1
    assert "configuration error (exit code 2)" in failed.reason and "lr" in failed.reason
    assert services.queue.resume(job.id).state == "queued"


def test_cancel_running_job_stops_the_process(services: Services) -> None:
    job = services.queue.submit("long", {**FAST, "total_timesteps": 50_000_000})
    d = services.dispatcher()
    assert d.tick().launched == [job.id]
    pid = json.loads(services.queue.get(job.id).executor_ref)["pid"]
    services.queue.cancel(job.id)
    report = d.tick()
    assert (job.id, "cancelled") in report.finished
    assert services.queue.get(job.id).state == "cancelled"
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_claimed_but_unlaunched_job_returns_to_queue(services: Services) -> None:
    job = services.queue.submit("orphan", FAST)
    with Session(services.engine) as s:  # a dispatcher died between claim and launch
        transition(s, s.get(Job, job.id), JobState.DISPATCHING, "admitted")
        s.commit()
    d = services.dispatcher()
    assert d.lease.acquire()
    d._reconcile(TickReport())
    back = services.queue.show(job.id)
    assert back.job.state == "queued"
    assert back.events[-1].reason == "dispatcher stopped before launching it"


def test_only_one_leader_until_the_lease_expires(services: Services) -> None:
    engine = services.engine
    a = Lease(engine, "a", ttl_s=0.5)
    b = Lease(engine, "b", ttl_s=0.5)
    assert a.acquire() is True
    assert b.acquire() is False
    assert a.acquire() is True  # renewal
    time.sleep(0.7)
    assert b.acquire() is True  # expired: taken over
    assert a.acquire() is False
    b.release()
    assert a.acquire() is True


def test_follower_does_not_dispatch(services: Services) -> None:
    Lease(services.engine, "someone-else", ttl_s=60).acquire()
    services.queue.submit("waits", FAST)
    report = services.dispatcher().tick()
    assert report.leader is False and report.launched == []


def test_attempt_started_by_a_dispatcher_that_died_is_adopted_not_relaunched(
        services: Services, tmp_path) -> None:
    """The crash window between starting an attempt and recording it: the next dispatcher
    finds the attempt by its name and adopts it."""
    import sys

    from app.core.executors.local import LocalExecutor

    marker = tmp_path / "launches"
    command = (f"{sys.executable} -c \"open('{marker}', 'a').write('x'); "
               f"import time; time.sleep(1)\"")
    executor = LocalExecutor(services.settings.logs_dir, {}, command=command)
    job = services.queue.submit("crash window", FAST)
    dead = Dispatcher(services.engine, executor, Lease(services.engine, "dead", 0.5))
    assert dead.lease.acquire()  # it led when it claimed the job
    assert dead._admit() == [job.id]
    executor.launch(services.queue.get(job.id))  # started ... and the dispatcher dies here
    assert services.queue.get(job.id).state == "dispatching"
    time.sleep(0.6)  # its lease expires
    heir = Dispatcher(services.engine, LocalExecutor(services.settings.logs_dir, {},
                                                     command=command),
                      Lease(services.engine, "heir", 30))
    assert heir.tick().adopted == [job.id]
    deadline = time.monotonic() + 120
    while services.queue.get(job.id).state != "succeeded":
        assert time.monotonic() < deadline
        heir.tick()
        time.sleep(0.2)
    assert marker.read_text() == "x"  # launched exactly once
    assert services.queue.get(job.id).attempts == 1


@pytest.mark.parametrize("warm_up_fails", [False, True])
def test_ticks_start_before_the_warm_up_ends_and_go_on_if_it_fails(
        services: Services, warm_up_fails: bool, caplog: pytest.LogCaptureFixture) -> None:
    """The dispatcher readies the tracking store beside its first ticks, not before them: a
    job is launched while the warm-up still runs, and a failed warm-up stops nothing."""
    import threading

    from app.bench.queue import RecordingExecutor

    release, warm_up_done = threading.Event(), threading.Event()

    def warm_up() -> None:
        release.wait(timeout=60)
        warm_up_done.set()
        if warm_up_fails:
            raise RuntimeError("no tracking store")

    executor = RecordingExecutor(finish_at_once=True)
    d = Dispatcher(services.engine, executor, Lease(services.engine, "warm-up", 30),
                   warm_up=warm_up)
    first = services.queue.submit("before the warm-up ends")
    reports: list[TickReport] = []
    scheduler = d.start_background(0.1, reports.append)
    try:
        deadline = time.monotonic() + 180
        while first.id not in executor.launched:
            assert time.monotonic() < deadline, "nothing was launched during the warm-up"
            time.sleep(0.05)
        assert not warm_up_done.is_set()
        release.set()
        assert warm_up_done.wait(timeout=60)
        second = services.queue.submit("after it")
        while second.id not in executor.launched:
            assert time.monotonic() < deadline, "the dispatcher stopped after its warm-up"
            time.sleep(0.05)
    finally:
        release.set()
        d.stop_background(scheduler)
    failures = [r.getMessage() for r in caplog.records if "warming up" in r.getMessage()]
    assert failures == (["warming up the dispatcher failed: no tracking store"]
                        if warm_up_fails else [])


def test_a_start_still_under_way_is_neither_adopted_nor_requeued(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A dispatcher that died after starting a runner, found by one whose wait for the
    runner's pid file ends first (a loaded machine): a young log says "ask again later", not
    "never started" (which launched the job twice under the SIGKILL test)."""
    from app.core.executors.base import StartUnderWay
    from app.core.executors.local import LocalExecutor

    executor = LocalExecutor(tmp_path, {}, max_wait_s=0.3)
    job = Job(id=7, name="j", attempts=1)
    log_path, _, pid_path = executor.paths(job)
    assert executor.find(job) is None  # no log: the start never happened
    log_path.write_text("")
    with pytest.raises(StartUnderWay):
        executor.find(job)
    os.utime(log_path, (time.time() - 60, time.time() - 60))
    assert executor.find(job) is None  # a log long without a pid file: the start failed
    pid_path.write_text(json.dumps({"pid": os.getpid(), "start": None}))
    assert json.loads(executor.find(job) or "{}")["pid"] == os.getpid()


def test_a_runner_that_records_its_end_and_exits_during_a_poll_is_not_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner writes its status file, then exits. A poll that read "no status file" and
    then "not alive" took a succeeded attempt for a lost one, and the job ran again (the
    SIGKILL test saw a job launched twice, 2026-12-07). Here the runner finishes exactly
    between the poll's two looks."""
    from app.core.executors import local
    from app.core.executors.base import Phase
    from app.core.executors.runner import write_status

    executor = local.LocalExecutor(tmp_path, {})
    _, status_path, _ = executor.paths(Job(id=3, name="j", attempts=1))
    ref = local.LocalExecutor._ref(4_000_000, None, status_path, tmp_path / "j.log")

    def runner_finishes_now(pid: int, start: int | None = None) -> bool:
        write_status(status_path, 0, "", time.time() - 1, time.time())
        return False  # and is gone

    monkeypatch.setattr(local, "alive", runner_finishes_now)
    status = executor.poll(ref)
    assert (status.phase, status.exit_code) == (Phase.EXITED, 0)
    # Still alive at the look, no status yet: running; gone with none: lost.
    status_path.unlink()
    monkeypatch.setattr(local, "alive", lambda pid, start=None: True)
    assert executor.poll(ref).phase is Phase.RUNNING
    monkeypatch.setattr(local, "alive", lambda pid, start=None: False)
    assert executor.poll(ref).phase is Phase.LOST
