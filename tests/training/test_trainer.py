"""The trainer's robustness: schedules, value normalisation, exact resume, SIGTERM, NaN guard,
masked sampling, and a short run that learns something."""

from __future__ import annotations

import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.training import checkpoint
from app.training.config import TrainConfig
from app.training.evaluate import evaluate, policy_chooser
from app.training.normalize import RunningMeanStd
from app.training.policy import PlacePolicy
from app.training.ppo import Trainer, TrainingDiverged, train
from app.training.schedules import learning_rate
from tests.support.processes import oppen_cmd

TINY = dict(total_timesteps=4 * 256, num_envs=4, rollout_steps=64, episode_length=32,
            num_minibatches=2, update_epochs=2, eval_seeds=(42,))


def test_learning_rate_schedules() -> None:
    lr = lambda s, step, **kw: learning_rate(s, 1.0, step, 100, **kw)  # noqa: E731
    assert [lr("constant", x) for x in (0, 50, 100)] == [1.0, 1.0, 1.0]
    assert [lr("linear", x) for x in (0, 50, 100)] == [1.0, 0.5, 0.0]
    assert lr("exponential", 0) == 1.0 and lr("exponential", 100) == pytest.approx(0.1)
    assert lr("exponential", 50, final_ratio=0.01) == pytest.approx(0.1)
    assert lr("cosine", 50) == pytest.approx(0.5) and lr("cosine", 100) == pytest.approx(0.0)
    assert lr("warmup_cosine", 5, warmup=10) == pytest.approx(0.5)
    assert lr("warmup_cosine", 10, warmup=10) == pytest.approx(1.0)
    assert lr("warmup_cosine", 55, warmup=10) == pytest.approx(0.5)


def test_running_mean_std_matches_numpy() -> None:
    rms, data = RunningMeanStd(epsilon=0.0), np.random.default_rng(0).normal(3, 2, 1000)
    rms.count = 0.0
    for chunk in np.split(data, 10):
        rms.update(torch.as_tensor(chunk))
    assert rms.mean == pytest.approx(data.mean()) and rms.var == pytest.approx(data.var())
    x = torch.tensor([1.0, 5.0])
    assert torch.allclose(rms.denormalize(rms.normalize(x)), x, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**31 - 1), st.booleans())
def test_masked_sampling_never_picks_an_invalid_action(hosts: int, seed: int,
                                                       fused: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand((64, hosts), generator=gen) < 0.4
    mask[torch.arange(64), torch.randint(0, hosts, (64,), generator=gen)] = True
    obs = torch.rand((64, hosts * 4 + 2), generator=gen)
    policy = PlacePolicy(hidden=8, fused=fused)
    torch.manual_seed(seed)
    actions, logprob, value = policy.sample(obs, mask)  # the rollout's draw
    assert mask[torch.arange(64), actions].all()
    assert torch.isfinite(logprob).all()
    # The same draw as act's, scored as the update scores it.
    torch.manual_seed(seed)
    act_actions, act_logprob, _, act_value = policy.act(obs, mask)
    assert torch.equal(act_actions, actions) and torch.equal(act_value, value)
    _, rescored, _, _ = policy.act(obs, mask, actions)
    assert torch.equal(act_logprob, logprob) and torch.allclose(rescored, logprob)


@pytest.mark.parametrize("host_layers", ["fused", "torch"])
def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path: Path,
                                                         host_layers: str) -> None:
    cfg = TrainConfig(**TINY, checkpoint_every=2, host_layers=host_layers)
    full = Trainer(cfg, checkpoint_dir=tmp_path / "full")
    full.run()
    stop = threading.Event()
    half = Trainer(cfg, log=lambda _m, step: stop.set() if step >= 2 * 256 else None,
                   checkpoint_dir=tmp_path / "half", stop=stop)
    result = half.run()
    assert result.stopped == "sigterm" and half.iteration == 2
    resumed = Trainer(cfg, checkpoint_dir=tmp_path / "half")
    resumed.load_state_dict(checkpoint.load(tmp_path / "half" / "latest.pt"))
    resumed.run()
    assert resumed.global_step == full.global_step == 1024
    for a, b in zip(full.policy.state_dict().values(), resumed.policy.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert resumed.value_rms.state_dict() == full.value_rms.state_dict()


def test_non_finite_losses_stop_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PlacePolicy, "value",
                        lambda self, obs: torch.full((obs.shape[0],), float("nan")))
    with pytest.raises(TrainingDiverged, match="non-finite loss at update 1"):
        train(TrainConfig(**TINY))


def test_init_from_transfers_the_weights(tmp_path: Path) -> None:
    first = Trainer(TrainConfig(**TINY), checkpoint_dir=tmp_path)
    first.run()
    state = checkpoint.load(tmp_path / "latest.pt")
    second = Trainer(TrainConfig(**{**TINY, "lr": 1e-5, "total_timesteps": 256}))
    second.init_from(state)
    assert all(torch.equal(a, b) for a, b in zip(second.policy.state_dict().values(),
                                                  state["policy"].values(), strict=True))
    assert second.global_step == 0


def test_sigterm_leaves_a_loadable_checkpoint(oppen_home: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(oppen_cmd("train", "--set", "total_timesteps=50000000", "--set",
                                      "checkpoint_every=1", "--checkpoint-dir", str(ckpt)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (ckpt / "latest.pt").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "resume with --resume-from" in err
    state = checkpoint.load(ckpt / "latest.pt")
    assert state["iteration"] >= 1 and state["global_step"] == state["iteration"] * 8 * 128
    assert set(state) >= {"policy", "optimizer", "value_rms", "torch_rng", "numpy_rng", "config"}


def test_short_training_beats_the_random_policy() -> None:
    # The small-job workload this was written for (the defaults until 2026-12-06): there
    # 32,768 steps learn enough to beat a random host; on the memory-bound defaults they do
    # not (docs/training.md, "Options").
    cfg = TrainConfig(total_timesteps=32_768, num_envs=8, rollout_steps=128, num_hosts=4,
                      episode_length=64, mean_interarrival_s=20.0, job_cores=(1, 4),
                      job_mem_mb=(512, 4096), seed=1)
    policy = train(cfg).policy.eval()
    rng = np.random.default_rng(0)
    seeds = range(42, 52)
    table = evaluate(cfg.workload(), seeds, {
        "ppo": policy_chooser(policy, torch.device("cpu")),
        "random": lambda _e, _o, mask: int(rng.choice(np.flatnonzero(mask))),
    })
    print(f"mean wait: ppo {table['ppo']['mean_wait_s']:.1f}s, "
          f"random {table['random']['mean_wait_s']:.1f}s")
    assert table["ppo"]["mean_wait_s"] < table["random"]["mean_wait_s"]


def test_docs_list_every_training_option() -> None:
    from app.training.config import options_help

    docs = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    missing = [name for name, _, _ in options_help() if f"| `{name}` |" not in docs]
    assert missing == [], f"docs/training.md lacks options: {missing}"


def test_progress_is_json_lines_outside_a_terminal() -> None:
    import io
    import json

    from app.training.progress import ProgressReporter

    out = io.StringIO()
    with ProgressReporter(2048, stream=out, interactive=False) as progress:
        progress({"charts/SPS": 1000.0, "charts/episodic_return": -1.5}, 1024)
        progress({"eval/metric": 3.0}, 1024)  # not an update: no line
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [{"event": "update", "global_step": 1024, "total_steps": 2048,
                      "sps": 1000.0, "eta_s": 1.0, "elapsed_s": lines[0]["elapsed_s"],
                      "episodic_return": -1.5}]
    bar = io.StringIO()
    with ProgressReporter(2048, stream=bar, interactive=True) as progress:
        progress({"charts/SPS": 1000.0}, 2048)
    assert "{" not in bar.getvalue()  # a bar, not JSON


def test_early_stopping_keeps_the_best_policy_and_writes_best_pt(tmp_path: Path) -> None:
    scores = iter([5.0, 4.0, 4.5, 4.6, 1.0])  # improves once, then twice without
    cfg = TrainConfig(total_timesteps=4 * 5 * 32, num_envs=4, rollout_steps=32,
                      episode_length=16, eval_every=1, early_stop_patience=2,
                      early_stop_min_delta=0.01)
    snapshots: list[dict[str, torch.Tensor]] = []

    def evaluator(policy: torch.nn.Module) -> float:
        snapshots.append({k: v.clone() for k, v in policy.state_dict().items()})
        return next(scores)

    trainer = Trainer(cfg, checkpoint_dir=tmp_path, evaluator=evaluator)
    result = trainer.run()
    assert result.stopped == "early_stop" and result.iterations == 4
    assert result.best_eval == 4.0
    best = checkpoint.load(tmp_path / "best.pt")
    for name, value in snapshots[1].items():  # the second evaluation was the best
        assert torch.equal(best["policy"][name], value)
        assert torch.equal(result.policy.state_dict()[name], value)


_CHURN = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from app.training.allocator import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
def churn():
    for _ in range(20):
        blocks = [np.ones(5_000_000, dtype=np.float32) for _ in range(5)]  # 20 MB each
        del blocks
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc's")
def test_the_training_allocator_reuses_pages_instead_of_faulting_them_in_again() -> None:
    """What an update does: tens-of-MB tensors allocated and freed over and over. Tuned, the
    second round reuses the first round's pages; glibc's defaults map them afresh."""
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).parents[2])
        return int(out.stdout)

    plain, tuned = faults("plain"), faults("tuned")
    assert plain > 10_000  # 100 blocks of 4,883 pages, most of them faulted in again
    assert tuned < plain / 20


def test_a_resumed_run_keeps_logging_to_its_mlflow_run_in_oppens_store(oppen_home: Path,
                                                                         tmp_path: Path) -> None:
    """`oppen train --resume-from` reopens the checkpoint's MLflow run in $OPPEN_HOME's store:
    it once reopened it by id alone, which MLflow took to mean its default store, a
    mlflow.db in the current directory."""
    from app.core.tracking import Tracker

    cwd, ckpt = tmp_path / "cwd", tmp_path / "ckpt"
    cwd.mkdir()
    sets = [f"--set={k}={v}" for k, v in {**TINY, "eval_seeds": 42, "checkpoint_every": 1,
                                          "total_timesteps": 512}.items()]
    first = subprocess.run(oppen_cmd("train", "--cold", *sets, "--checkpoint-dir", str(ckpt)),
                           cwd=cwd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run(oppen_cmd("train", "--cold", "--resume-from",
                                     str(ckpt / "step-256.pt"), "--checkpoint-dir",
                                     str(tmp_path / "again")),
                           cwd=cwd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert list(cwd.iterdir()) == []
    tracker = Tracker(f"sqlite:///{oppen_home / 'mlflow.db'}", oppen_home / "artifacts")
    client = tracker.client()
    runs = client.search_runs([tracker.experiment_id()])
    assert len(runs) == 1  # the resumed run continued the first one
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id,
                                                       "charts/global_step")]
    assert steps.count(512) == 2 and 256 in steps  # the first run's end, then the resumed one's
