"""Reliability under crashes and contention. The figures these print are in docs/reliability.md.

1. SIGKILL the dispatcher process at random moments, 20+ times, while 100 short jobs run, on
   SQLite and on PostgreSQL: every job ends in exactly one terminal state, none launched
   twice, none lost.
2. 8 concurrent submitter processes x 250 jobs on SQLite and PostgreSQL: exactly 2,000 jobs,
   admitted strictly by priority, then submission time.
3. Two dispatcher processes: one leads; kill it and the other takes over within the lease.
(A training process killed mid-run, retried and resumed: tests/core/test_resume.py.)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.bench.queue import RecordingExecutor
from app.core.admission import Limits
from app.core.db import init_db, make_engine
from app.core.dispatcher import Dispatcher
from app.core.lease import Lease
from app.core.models import Job, JobEvent
from app.core.timeutil import as_utc
from app.services import build_queue
from tests.support.paths import REPO
from tests.support.postgres import fresh_database
from tests.support.processes import run_in_processes

pytestmark = pytest.mark.slow


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The subprocesses' environment: this home and its database, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPEN_")}
    env.update(OPPEN_HOME=str(home), OPPEN_DATABASE_URL=_db_url(home),
               MLFLOW_LOGGING_LEVEL="WARNING")
    env.update(extra)
    return env


def _db_url(home: Path) -> str:
    return f"sqlite:///{home / 'oppen.db'}"


def _engine(home: Path, url: str | None = None):  # type: ignore[no-untyped-def]
    home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url or _db_url(home))
    init_db(engine)
    return engine


def _dispatcher(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    log = open(Path(env["OPPEN_HOME"]) / "dispatchers.log", "ab")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "app", "dispatcher", "run", *args],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _kill_dispatchers(env: dict[str, str], engine, launches: Path,  # type: ignore[no-untyped-def]
                      kills: int, rng: random.Random, alive_s: tuple[float, float],
                      interval: str, finish_within_s: float) -> tuple[int, int]:
    """Starts a dispatcher process and SIGKILLs it a random while after it takes the lease
    (so at a random moment of its ticks, not of its start-up), ``kills`` times, then runs one
    to idle. Returns the number of kills and of jobs launched before the last kill."""
    for _ in range(kills):
        proc = _dispatcher(env, "--interval", interval)
        deadline = time.monotonic() + 120
        while _holder_pid(engine) != proc.pid:
            assert proc.poll() is None, "a dispatcher exited before it led"
            assert time.monotonic() < deadline, "a dispatcher never took the lease"
            time.sleep(0.02)
        time.sleep(rng.uniform(*alive_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    launched_while_killing = len(_launches(launches))
    _dispatcher(env, "--interval", interval, "--exit-when-idle").wait(timeout=finish_within_s)
    return kills, launched_while_killing


def _launches(path: Path) -> Counter[int]:
    return Counter(int(line) for line in path.read_text().split()) if path.exists() \
        else Counter()


def _what_happened(engine, ids: list[int], launches: Path):  # type: ignore[no-untyped-def]
    """The jobs, every event, the jobs per state and the launches per job."""
    with Session(engine) as s:
        jobs = s.exec(select(Job).where(Job.id.in_(ids))).all()
        events = s.exec(select(JobEvent)).all()
    return jobs, events, Counter(j.state for j in jobs), _launches(launches)


def _each_ended_once(jobs: list[Job], events: list[JobEvent]) -> None:
    for job in jobs:
        terminal = [e for e in events if e.job_id == job.id
                    and e.to_state in ("succeeded", "failed", "cancelled")]
        assert len(terminal) == 1 and job.attempts == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_dispatcher_killed_20_times_loses_and_duplicates_nothing(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    home = tmp_path / "home"
    launches = tmp_path / "launches.txt"
    home.mkdir(parents=True)
    url = fresh_database(backend, home / "oppen.db", request)
    # A short job: records that it was launched, works a moment, succeeds.
    job_cmd = (f"{sys.executable} -c \"import random, time; "
               f"open('{launches}', 'a').write('{{job_id}}\\n'); "
               f"time.sleep(random.uniform(0.1, 0.6))\"")
    env = _env(home, OPPEN_LOCAL_COMMAND=job_cmd, OPPEN_LEASE_TTL_S="1.5",
               OPPEN_DISPATCH_INTERVAL_S="0.1", OPPEN_MAX_CONCURRENT_JOBS="4",
               OPPEN_DATABASE_URL=url)
    engine = _engine(home, url)
    queue = build_queue(engine)
    ids = queue.submit_batch([{"name": f"short-{i}", "priority": random.choice(
        ["urgent", "normal", "background"])} for i in range(100)])

    started = time.monotonic()
    # Killed 0-1.5 s into its leadership, while the jobs (0.1-0.6 s each) run.
    kills, launched_while_killing = _kill_dispatchers(
        env, engine, launches, 20, random.Random(7), (0.0, 1.5), "0.1", finish_within_s=300)
    elapsed = time.monotonic() - started

    jobs, events, states, launched = _what_happened(engine, ids, launches)
    adopted = sum(1 for e in events if "found again" in e.reason)
    requeued = sum(1 for e in events if "stopped before launching" in e.reason)
    print(f"\n[reliability-1] {backend}: {kills} SIGKILLs over {elapsed:.1f}s, 100 jobs: "
          f"{dict(states)}; {launched_while_killing} launched by dispatchers later killed; "
          f"launches per job {set(launched.values())}; adopted after restart {adopted}; "
          f"claimed-but-unlaunched returned to queue {requeued}")
    assert kills >= 20
    # The kills hit dispatchers at work, not only ones still starting up: between them they
    # had launched or claimed (and then left unlaunched) at least 20 jobs. On a loaded
    # machine a tick is slower, so fewer of the two are launches (CI, 2026-12-07: 19
    # launched and 14 claimed; on a quiet VM about 60 and 10).
    assert launched_while_killing + requeued >= 20, (launched_while_killing, requeued)
    assert states == {"succeeded": 100}
    assert set(launched) == set(ids), "a job was lost"
    assert all(n == 1 for n in launched.values()), "a job was launched twice"
    _each_ended_once(jobs, events)


# Real tiny training jobs: a few seconds of PPO each, with a checkpoint after every update.
TINY_TRAINING = {"total_timesteps": 512, "num_envs": 2, "rollout_steps": 64,
                 "episode_length": 32, "num_hosts": 4, "checkpoint_every": 1,
                 "eval_seeds": [42], "hidden": 32}


@pytest.mark.chaos
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_dispatcher_killed_20_times_with_30_real_training_jobs(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The chaos test with real `oppen train` jobs (make test-chaos): every job trains to the
    end exactly once, whatever moment the dispatcher dies at."""
    home = tmp_path / "home"
    launches = tmp_path / "launches.txt"
    home.mkdir(parents=True)
    url = fresh_database(backend, home / "oppen.db", request)
    # The real trainer, behind one line that records the launch.
    job_cmd = (f"sh -c 'echo {{job_id}} >> {launches}; "
               f"exec {sys.executable} -m app train --job-id {{job_id}}'")
    env = _env(home, OPPEN_LOCAL_COMMAND=job_cmd, OPPEN_LEASE_TTL_S="3",
               OPPEN_DISPATCH_INTERVAL_S="0.2", OPPEN_MAX_CONCURRENT_JOBS="3",
               OPPEN_DATABASE_URL=url)
    engine = _engine(home, url)
    queue = build_queue(engine)
    ids = queue.submit_batch([{"name": f"tiny-{i}", "config": TINY_TRAINING}
                              for i in range(30)])

    started = time.monotonic()
    kills, launched_while_killing = _kill_dispatchers(
        env, engine, launches, 20, random.Random(11), (0.5, 4.0), "0.2", finish_within_s=1200)
    elapsed = time.monotonic() - started

    jobs, events, states, launched = _what_happened(engine, ids, launches)
    adopted = sum(1 for e in events if "found again" in e.reason)
    print(f"\n[reliability-chaos] {backend}: {kills} SIGKILLs, 30 real training jobs, "
          f"{elapsed:.0f} s: {dict(states)}; {launched_while_killing} launched by dispatchers "
          f"later killed; launches per job {set(launched.values())}; "
          f"adopted after restart {adopted}")
    assert states == {"succeeded": 30}, [(j.id, j.state, j.reason) for j in jobs
                                         if j.state != "succeeded"]
    assert set(launched) == set(ids) and all(n == 1 for n in launched.values())
    from app.core.tracking import Tracker

    tracker = Tracker(f"sqlite:///{home / 'mlflow.db'}", home / "mlartifacts")
    _each_ended_once(jobs, events)
    for job in jobs:
        run = tracker.run_summary(job.mlflow_run_id)
        assert run.status == "FINISHED" and run.metrics["charts/global_step"] == 512


PER_SUBMITTER = 250


def _submit_many(url: str, worker: int, count: int) -> None:
    engine = make_engine(url)
    queue = build_queue(engine)
    rng = random.Random(worker)
    for i in range(count):
        queue.submit(f"w{worker}-{i}", priority=rng.choice(["urgent", "normal", "background"]))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_submitters_then_strict_priority_fifo_admission(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = fresh_database(backend, tmp_path / "contention.db", request)
    engine = make_engine(url)
    init_db(engine)
    started = time.monotonic()
    # 8 x 250: enough to interleave every submitter, sized for CI (docs/reliability.md also
    # has the figures of 8 x 500).
    run_in_processes(_submit_many, [(url, w, PER_SUBMITTER) for w in range(8)])
    submit_s = time.monotonic() - started

    executor = RecordingExecutor(finish_at_once=True)
    dispatcher = Dispatcher(engine, executor, Lease(engine, "contention", 60),
                            Limits(max_concurrent=64))
    while True:
        report = dispatcher.tick()
        if report.idle:
            break
    with Session(engine) as s:
        jobs = {j.id: j for j in s.exec(select(Job)).all()}
    print(f"\n[reliability-2] {backend}: 8 x {PER_SUBMITTER} concurrent submissions in "
          f"{submit_s:.1f}s; "
          f"{len(jobs)} jobs; {len(executor.launched)} launched")
    assert len(jobs) == 8 * PER_SUBMITTER
    assert len({j.name for j in jobs.values()}) == 8 * PER_SUBMITTER
    assert sorted(executor.launched) == sorted(jobs)
    order = [(-jobs[i].priority, as_utc(jobs[i].created_at), i) for i in executor.launched]
    assert order == sorted(order), "admission broke priority-then-submission order"
    assert all(j.state == "succeeded" for j in jobs.values())


def _holder_pid(engine) -> int | None:  # type: ignore[no-untyped-def]
    lease = Lease(engine, "observer", 1).current()
    return int(lease.holder.split(":")[1]) if lease else None


def test_two_dispatchers_one_leads_and_the_other_takes_over(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ttl = 2.0
    env = _env(home, OPPEN_LEASE_TTL_S=str(ttl), OPPEN_DISPATCH_INTERVAL_S="0.2",
               PYTHONUNBUFFERED="1")
    engine = _engine(home)
    first, second = _dispatcher(env), _dispatcher(env)
    try:
        deadline = time.monotonic() + 180
        while _holder_pid(engine) is None:
            assert time.monotonic() < deadline, "no dispatcher took the lease"
            time.sleep(0.1)
        leader = _holder_pid(engine)
        assert leader in (first.pid, second.pid)
        # Measure a running follower's takeover, not its start-up (imports take seconds on a
        # slow VM): only a follower prints "standing by", and only once it is ticking.
        log = home / "dispatchers.log"
        while b"standing by" not in log.read_bytes():
            assert time.monotonic() < deadline, "the second dispatcher never started ticking"
            time.sleep(0.1)
        time.sleep(3 * 0.2)
        assert _holder_pid(engine) == leader, "leadership changed while the leader lived"
        follower = second if leader == first.pid else first
        os.kill(leader, signal.SIGKILL)
        killed_at = time.monotonic()
        while _holder_pid(engine) != follower.pid:
            assert time.monotonic() - killed_at < ttl + 5, "no takeover"
            time.sleep(0.05)
        takeover = time.monotonic() - killed_at
        print(f"\n[reliability-3] leader {leader} SIGKILLed; follower {follower.pid} led "
              f"after {takeover:.2f}s (lease {ttl}s, tick 0.2s)")
        assert takeover <= ttl + 0.2 + 0.5
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
