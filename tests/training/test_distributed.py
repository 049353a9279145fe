"""Data-parallel PPO (DD-PPO) on torch.distributed: real `oppen train` runs whose workers
torchrun starts on this machine, talking over gloo.

Parity: one worker and two workers with the same eight environments and seed end at the
same parameters up to float summation order. The tolerance is 1e-4 (absolute, per
parameter): the two runs compute the same sums split differently (each worker's share of a
minibatch's gradient, then an all-reduce; the network on 4 rows instead of 8), which differs
by rounding, about 1e-7 relative per step; over 64 Adam steps that stays near 1e-6 (seen:
6e-7). One Adam step moves a parameter by up to its learning rate (3e-4), so a single step
computed differently, or any difference in data, sampling or seeds, exceeds the tolerance:
the runs move parameters by more than 1e-3 between their two checkpoints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from app.core.executors.local import job_process
from app.core.submission import SubmissionError
from app.services import Services
from app.training import checkpoint
from app.training.checkpoint_store import store_for_job
from app.training.config import TrainConfig
from app.training.distributed import Workers
from app.training.launch import WorkerFailed, pod_placement, torchrun_args
from app.training.policy import inverse_cdf
from tests.core.test_dispatcher import tick_until
from tests.support.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributed")]

TOLERANCE = 1e-4
# 4 updates of 8 environments x 64 steps, a checkpoint after the second and the last.
RUN = {"total_timesteps": 2048, "num_envs": 8, "rollout_steps": 64, "checkpoint_every": 2,
       "eval_seeds": [42]}


def _train(home: Path, out: Path, workers: int, *extra: str,
           sets: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPPEN_HOME": str(home), "OPPEN_WARM_START": "false"}
    args = [f"--set={k}={v}" for k, v in (sets or {}).items()]
    if workers:
        args.append(f"--set=num_workers={workers}")
    done = subprocess.run([sys.executable, "-m", "app", "train", "--cold", *args,
                           "--checkpoint-dir", str(out), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _params(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["policy"]


def _gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same run trained by one worker and by two."""
    home = tmp_path_factory.mktemp("distributed")
    sets = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in RUN.items()}
    out = {}
    for workers in (1, 2):
        out[f"w{workers}"] = home / f"w{workers}"
        _train(home, out[f"w{workers}"], workers, sets=sets)
    out["home"] = home
    return out


def test_two_gloo_workers_reach_the_parameters_of_one(runs: dict[str, Path]) -> None:
    one, two = (checkpoint.load(runs[k] / "step-2048.pt") for k in ("w1", "w2"))
    assert one["global_step"] == two["global_step"] == 2048
    assert one["episodes"] == two["episodes"] > 0  # every worker's episodes counted
    assert two["num_workers"] == 2 and one["num_workers"] == 1
    assert _gap(one["policy"], two["policy"]) < TOLERANCE
    # The value normaliser saw the whole batch on both: the same statistics.
    for key in ("mean", "var", "count"):
        assert two["value_rms"][key] == pytest.approx(one["value_rms"][key], rel=1e-6)
    # Training moved the parameters far more than the tolerance (so it can tell runs apart).
    assert _gap(one["policy"], _params(runs["w1"] / "step-1024.pt")) > 10 * TOLERANCE
    # Each rank's generators are in the checkpoint; every worker drew the same numbers.
    ranks = two["rank_rng"]
    assert len(ranks) == 2 and torch.equal(ranks[0]["torch_rng"], ranks[1]["torch_rng"])


def test_a_resumed_two_worker_run_matches_the_uninterrupted_one(runs: dict[str, Path],
                                                                tmp_path: Path) -> None:
    final = _params(runs["w2"] / "step-2048.pt")
    middle = runs["w2"] / "step-1024.pt"
    _train(runs["home"], tmp_path / "again", 0, "--resume-from", str(middle))
    assert all(torch.equal(final[k], v)
               for k, v in _params(tmp_path / "again" / "step-2048.pt").items())
    # Resumed by another count of workers that divides the environments: the same run.
    _train(runs["home"], tmp_path / "one", 1, "--resume-from", str(middle))
    assert _gap(final, _params(tmp_path / "one" / "step-2048.pt")) < TOLERANCE


def _worker_of_rank(trainer: int, rank: int) -> int:
    """The pid of the worker of `rank` that torchrun (inside `oppen train`) started."""
    children = Path(f"/proc/{trainer}/task/{trainer}/children").read_text().split()
    for pid in map(int, children):
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return pid
    raise AssertionError(f"no worker of rank {rank} under {trainer}: {children}")


def test_killing_one_worker_ends_the_attempt_and_the_retry_resumes(services: Services) -> None:
    services.settings.retry_backoff_s = 0.2
    dispatcher = services.dispatcher()
    config = {"total_timesteps": 8192, "num_envs": 2, "rollout_steps": 64, "num_workers": 2,
              "episode_length": 32, "checkpoint_every": 1, "eval_seeds": [42]}
    job = services.queue.submit("two workers", config, cpus=2)
    store = store_for_job(None, services.settings.resolved_home, job.id)
    deadline = time.monotonic() + 180
    while len(store.entries()) < 2:
        assert time.monotonic() < deadline, "no second checkpoint in time"
        dispatcher.tick()
        time.sleep(0.05)
    trainer = job_process(services.queue.get(job.id).executor_ref)
    assert trainer is not None
    rank0, rank1 = _worker_of_rank(trainer, 0), _worker_of_rank(trainer, 1)
    os.kill(rank1, signal.SIGKILL)
    killed = time.monotonic()
    tick_until(services, lambda r: services.queue.get(job.id).attempts == 2
               or services.queue.get(job.id).state in ("succeeded", "failed"),
               dispatcher=dispatcher, timeout=60)
    # Every rank of the first attempt is gone, well within torchrun's bounds.
    assert time.monotonic() - killed < 30
    assert not Path(f"/proc/{rank0}").exists() and not Path(f"/proc/{trainer}").exists()
    expected_step = store.entries()[-1].step
    tick_until(services, lambda r: r.idle, timeout=240, dispatcher=dispatcher)
    view = services.queue.show(job.id).to_dict()
    assert view["state"] == "succeeded", view["reason"]
    first, second = view["attempt_history"]
    assert first["outcome"] == "infrastructure"
    assert "worker rank 1 of 2 ended with signal SIGKILL" in first["reason"]
    assert second["resumed_from_step"] == expected_step > 0
    assert store.entries()[-1].step == 8192


def test_sigterm_checkpoints_every_worker_at_the_same_update(tmp_path: Path) -> None:
    """A cancel or a preempted machine: the launcher passes SIGTERM to the workers, which
    agree to stop after the update under way; rank 0 checkpoints and the run exits 143."""
    env = {**os.environ, "OPPEN_HOME": str(tmp_path), "OPPEN_WARM_START": "false"}
    out = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "app", "train", "--cold",
                             "--set=total_timesteps=2000000", "--set=num_envs=8",
                             "--set=rollout_steps=64", "--set=num_workers=2",
                             "--set=checkpoint_every=2", "--checkpoint-dir", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "latest.pt").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint in time"
        time.sleep(0.2)
    workers = [_worker_of_rank(proc.pid, r) for r in (0, 1)]
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-2000:]
    assert "stopped by SIGTERM; resume with --resume-from" in stderr
    assert "Traceback" not in stderr
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    last = checkpoint.load(out / "latest.pt")
    assert last["num_workers"] == 2 and 0 < last["global_step"] < 2_000_000


def test_inverse_cdf_draws_only_allowed_actions() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4096, 33, generator=generator)
    mask = torch.rand(4096, 33, generator=generator) < 0.3
    mask[torch.arange(4096), torch.randint(0, 33, (4096,), generator=generator)] = True
    probs = torch.softmax(logits.masked_fill(~mask, -1e9), dim=-1)
    # The edges of [0, 1) included: 0 and the largest float32 below 1.
    uniforms = torch.cat([torch.tensor([0.0, 1.0 - 2.0**-24]),
                          torch.rand(4094, generator=generator)])
    actions = inverse_cdf(probs, uniforms)
    assert mask[torch.arange(4096), actions].all()
    # And the draws follow the probabilities: one row drawn many times.
    row = probs[:1].expand(200_000, -1)
    counts = torch.bincount(inverse_cdf(row, torch.rand(200_000, generator=generator)),
                            minlength=33).double() / 200_000
    assert torch.allclose(counts, probs[0].double(), atol=5e-3)


def test_shards_options_and_launch_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [Workers(r, 4).shard(8) for r in range(4)] == [(0, 2), (2, 2), (4, 2), (6, 2)]
    with pytest.raises(Exception, match="num_workers: must divide num_envs"):
        TrainConfig.from_dict({"num_envs": 6, "num_workers": 4})
    local = torchrun_args(2, ["train", "--job-id", "3"])
    assert local[:2] == ["--standalone", "--nproc-per-node=2"] and local[-3:] == [
        "train", "--job-id", "3"]
    monkeypatch.setenv("OPPEN_RENDEZVOUS", "oppen-job-3-a1-0.oppen-job-3-a1.oppen.svc:29500")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    rendezvous, rank = pod_placement(2)
    pod = torchrun_args(2, ["train"], rendezvous, rank)
    assert "--nnodes=2" in pod and "--node-rank=1" in pod and \
        "--master-addr=oppen-job-3-a1-0.oppen-job-3-a1.oppen.svc" in pod and \
        "--master-port=29500" in pod
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
    with pytest.raises(WorkerFailed, match="an index below 2"):
        pod_placement(2)


def test_a_job_gets_at_least_a_cpu_per_worker(services: Services) -> None:
    with pytest.raises(SubmissionError, match="num_workers=2 needs at least 2"):
        services.queue.submit("thin", {"num_envs": 8, "num_workers": 2}, cpus=1)


def test_bench_train_workers_measures_each_count_against_one() -> None:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPEN_")}
    done = subprocess.run([sys.executable, "-m", "app", "bench", "train", "--workers", "2",
                           "--repeats", "1", "--iterations", "1", "--json"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    one, two = out["counts"]
    assert (one["workers"], two["workers"]) == (1, 2)  # one worker measured as the baseline
    assert one["speedup"] == 1.0 and two["steps_per_s"] > 0
    assert two["speedup"] == pytest.approx(two["steps_per_s"] / one["steps_per_s"])
    assert two["efficiency"] == pytest.approx(two["speedup"] / 2)
    assert 0 < two["communication_share"] < 1 and out["allreduce_ms_alone"] > 0
    for bad, message in (("3", "must divide 128"), ("two", "expected counts")):
        refused = subprocess.run([sys.executable, "-m", "app", "bench", "train", "--workers",
                                  bad], cwd=REPO, env=env, capture_output=True, text=True,
                                 timeout=120)
        assert refused.returncode != 0 and message in refused.stderr
        assert "Traceback" not in refused.stderr
