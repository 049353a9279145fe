"""Bounded resources and an isolated dispatcher: oversized training options and trace paths
outside the trace folders (devices, secrets, symlinks out) are refused at submission; a local
job runs under a memory limit derived from its request, so one that allocates far past it
ends as its own failure after one attempt; and one job whose data breaks a dispatcher step
leaves every other job's tick alone and shows the dispatcher degraded."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session

from app.core.errors import ConfigError
from app.core.models import Job
from app.core.settings import load_settings
from app.services import Services
from tests.support.paths import TRACES

FAST = {"total_timesteps": 512, "num_envs": 4, "rollout_steps": 64, "episode_length": 32,
        "eval_seeds": [1]}


@pytest.mark.parametrize("options, fragment", [
    ({"num_hosts": 1_000_000_000}, "num_hosts: must be <= 10000"),
    ({"num_envs": 100_000}, "num_envs: must be <= 4096"),
    ({"hidden": 1 << 20}, "hidden: must be <= 4096"),
    ({"window": 10**9}, "window: must be <= 100000"),
    ({"total_timesteps": 10**15}, "total_timesteps: must be <= "),
    ({"num_envs": 4096, "rollout_steps": 100_000}, "rollout buffer"),
    ({"host_cores": [10**6, 10**6]}, "host_cores: at most"),
])
def test_oversized_training_options_are_refused_at_submission(services: Services,
                                                              options: dict,
                                                              fragment: str) -> None:
    with pytest.raises(ConfigError, match=f"^config: .*{fragment}"):
        services.queue.submit("big", options)
    assert services.queue.counts() == {}


def test_traces_only_from_the_trace_folders(oppen_home: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = tmp_path / "traces"
    allowed.mkdir()
    trace = allowed / "mine.swf"
    trace.write_text("; a trace\n1 0 10 100 4 -1 -1 4 200 -1 1 1 1 1 1 -1 -1 -1\n")
    (allowed / "escape.swf").symlink_to("/etc/hostname")
    monkeypatch.setenv("OPPEN_TRACE_DIRS", str(allowed))
    monkeypatch.setenv("OPPEN_TRACE_MAX_BYTES", "4096")
    queue = Services(load_settings()).queue
    refused = {"/dev/zero": "not in a trace folder", "/etc/shadow": "not in a trace folder",
               str(allowed / "escape.swf"): "not in a trace folder",
               str(allowed / "missing.swf"): "cannot read", str(allowed): "not a regular file"}
    for path, fragment in refused.items():
        with pytest.raises(ConfigError, match=fragment):
            queue.submit("t", {"mode": "pick", "trace": path})
    big = allowed / "big.swf"
    big.write_text("; padding\n" * 1000)
    with pytest.raises(ConfigError, match="over the limit of 4,096"):
        queue.submit("t", {"mode": "pick", "trace": str(big)})
    assert queue.counts() == {}
    assert queue.submit("ok", {"mode": "pick", "trace": str(trace)}).state == "queued"


@pytest.mark.skipif(not (TRACES / "lublin_256.swf").is_file(),
                    reason="the shared traces are not beside the checkout")
def test_the_shared_traces_are_a_trace_folder_by_default(services: Services) -> None:
    job = services.queue.submit("lublin", {"mode": "pick", "trace": str(TRACES /
                                                                         "lublin_256.swf")})
    assert job.state == "queued"


@pytest.mark.slow
def test_a_job_that_outgrows_its_memory_fails_once_as_its_own_error(
        oppen_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The job's "training" allocates 16 GiB more than it asked for (256 MB).
    hog = f"{sys.executable} -c 'bytearray(16 << 30)'"
    monkeypatch.setenv("OPPEN_LOCAL_COMMAND", hog)
    services = Services(load_settings())
    job = services.queue.submit("hog", FAST, memory_mb=256, max_attempts=3)
    d = services.dispatcher()
    deadline = time.monotonic() + 180
    while services.queue.get(job.id).state not in ("failed", "succeeded"):
        assert time.monotonic() < deadline, "the job never ended"
        d.tick()
        time.sleep(0.2)
    failed = services.queue.get(job.id)
    assert failed.state == "failed" and failed.attempts == 1
    assert failed.reason.startswith("user:") and "MemoryError" in failed.reason


def test_one_job_that_breaks_a_step_leaves_the_others_alone(services: Services) -> None:
    good = services.queue.submit("good", FAST)
    bad = services.queue.submit("bad", FAST)
    d = services.dispatcher()
    report = d.tick()
    assert sorted(report.launched) == [good.id, bad.id]
    with Session(services.engine) as s:  # corrupt one attempt's record behind our back
        row = s.get(Job, bad.id)
        row.executor_ref = "{not json"
        s.add(row)
        s.commit()
    seen_degraded = False
    deadline = time.monotonic() + 120
    while services.queue.get(good.id).state != "succeeded":
        assert time.monotonic() < deadline, "the good job never finished"
        report = d.tick()
        if report.degraded:
            seen_degraded = True
            assert any(f"job {bad.id}" in e for e in report.errors)
            status = services.queue.status_counts()  # the tick went on for the good job
            assert status["counts"]["running"] + status["counts"]["succeeded"] >= 1
            health = [c for c in _health(services) if c.component == "dispatcher"][0]
            if services.queue.get(bad.id).state == "running":
                assert health.status == "warn" and "degraded" in health.detail
        time.sleep(0.3)
    assert seen_degraded
    while services.queue.get(bad.id).state == "running":  # failed after repeated errors
        assert time.monotonic() < deadline
        d.tick()
    failed = services.queue.get(bad.id)
    assert failed.state == "failed" and failed.reason.startswith("user: the dispatcher could "
                                                                 "not handle this job")


def _health(services: Services) -> list:  # type: ignore[type-arg]
    from app.dashboard.data import gather

    return gather(services, 1, probe_cluster=False).health
