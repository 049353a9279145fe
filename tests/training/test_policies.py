"""Policies for every mode, evaluation of checkpoints, inference, and the HTTP decision
endpoint (a real server process on a loopback port)."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from app.training.config import TrainConfig
from app.training.inference import LoadedPolicy
from app.training.policy import HierarchicalPolicy, PickPolicy
from app.training.ppo import Trainer
from tests.support.paths import REPO
from tests.support.processes import oppen_cmd

TINY = dict(total_timesteps=512, num_envs=4, rollout_steps=64, episode_length=24,
            num_minibatches=2, update_epochs=1, eval_seeds=(42,), window=16)


@pytest.mark.parametrize("mode", ["pick", "hierarchical"])
def test_every_mode_trains_and_checkpoints(mode: str, tmp_path: Path) -> None:
    logged: list[dict[str, float]] = []
    trainer = Trainer(TrainConfig(**TINY, mode=mode), log=lambda m, _s: logged.append(m),
                      checkpoint_dir=tmp_path)
    result = trainer.run()
    assert result.global_step == 512 and result.stopped == "completed"
    assert all(np.isfinite(m["losses/value_loss"]) for m in logged)
    loaded = LoadedPolicy.from_checkpoint(tmp_path / "latest.pt")
    assert loaded.config.mode == mode


@pytest.mark.parametrize("context", [False, True])
def test_pick_policy_is_permutation_equivariant_over_slots(context: bool) -> None:
    torch.manual_seed(0)
    policy = PickPolicy(hidden=16, context=context)
    rows = torch.rand(1, 6, 8)
    mask = torch.tensor([[True, True, False, True, True, True]])
    perm = torch.tensor([5, 2, 0, 4, 1, 3])
    a = policy.logits(rows.reshape(1, -1), mask)
    b = policy.logits(rows[:, perm].reshape(1, -1), mask[:, perm])
    assert torch.allclose(a[:, perm], b, atol=1e-6)


@pytest.mark.parametrize("context", [False, True])
def test_pick_policy_packing_the_filled_slots_is_the_dense_function(context: bool) -> None:
    """Only filled slots are embedded (an update's speed-up); the logits and values are what
    scoring every slot of the window and pooling the filled ones gives."""
    from app.training.policy import MASKED_LOGIT, with_logs

    torch.manual_seed(1)
    policy = PickPolicy(hidden=16, context=context)
    rows, window = 5, 12
    jobs = torch.rand(rows, window, 8) * 0.9 + 0.1
    filled = torch.tensor([window, 3, 0, 7, 1])  # a full row, an empty one, partial ones
    empty = torch.tensor([0.0, 1, 1, 1, 1, 1, 1, 0])
    for r, n in enumerate(filled.tolist()):
        jobs[r, n:] = empty
    mask = torch.arange(window) < filled.unsqueeze(1)
    obs = jobs.reshape(rows, -1)

    emb = torch.relu(policy.encoder(with_logs(jobs)))  # every slot, as a dense network would
    weight = mask.float().unsqueeze(-1)
    pooled = (emb * weight).sum(1) / weight.sum(1).clamp(min=1)
    hidden = policy.scorer[0](emb)
    if context:
        hidden = hidden + policy.context(pooled).unsqueeze(1)
    dense = policy.scorer[2](torch.relu(hidden)).squeeze(-1).masked_fill(~mask, MASKED_LOGIT)
    logits, value = policy.heads(obs, mask)
    torch.testing.assert_close(logits, dense, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(value, policy.value_head(pooled).squeeze(-1), atol=1e-6,
                               rtol=1e-5)
    torch.testing.assert_close(policy.value(obs), value)
    torch.testing.assert_close(policy.logits(obs, mask), logits)


def test_only_a_pick_policy_with_context_scores_a_job_by_the_rest_of_the_window() -> None:
    torch.manual_seed(0)
    rows = torch.rand(1, 6, 8) * 0.9 + 0.1  # every slot filled (can-start > 0)
    changed = rows.clone()
    changed[0, 1:] = torch.rand(5, 8) * 0.9 + 0.1  # the same job 0 in another queue
    mask = torch.ones(1, 6, dtype=torch.bool)
    for context in (False, True):
        policy = PickPolicy(hidden=16, context=context)
        a = policy.logits(rows.reshape(1, -1), mask)[0, 0]
        b = policy.logits(changed.reshape(1, -1), mask)[0, 0]
        assert torch.isclose(a, b, atol=1e-6) != context


def test_hierarchical_policy_uses_the_phase() -> None:
    torch.manual_seed(0)
    policy = HierarchicalPolicy(num_hosts=3, hidden=8)
    obs = torch.rand(2, 1 + 8 + 3 * 4 + 5 * 8)
    obs[0, 0], obs[1, 0] = 0.0, 1.0  # job phase, host phase
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 4], mask[1, 1] = True, True
    assert policy.greedy(obs, mask).tolist() == [4, 1]


def _checkpoint(tmp_path: Path) -> Path:
    Trainer(TrainConfig(**{**TINY, "num_hosts": 4}), checkpoint_dir=tmp_path).run()
    return tmp_path / "latest.pt"


def test_eval_cli_sets_a_checkpoint_against_the_baselines(oppen_home: Path,
                                                         tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path)
    proc = subprocess.run(oppen_cmd("eval", "--checkpoint", str(ckpt), "--seeds", "42,43",
                                    "--json"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["mode"] == "place" and out["seeds"] == [42, 43]
    assert set(out["results"]) == {"ppo", "first_fit", "best_fit", "best_fit_mem"}
    # A line on stderr per policy or heuristic done: long evaluations show their progress.
    assert [line.split(" (")[0] for line in proc.stderr.splitlines()] == [
        "evaluated ppo", "evaluated first_fit", "evaluated best_fit", "evaluated best_fit_mem"]
    assert "(4 of 4, " in proc.stderr
    bad = subprocess.run(oppen_cmd("eval", "--checkpoint", str(tmp_path / "none.pt")),
                         capture_output=True, text=True, timeout=180)
    assert bad.returncode == 1 and "checkpoint not found" in bad.stderr


def test_a_checkpoint_of_another_network_is_named_not_a_traceback(oppen_home: Path,
                                                                   tmp_path: Path) -> None:
    """A checkpoint from before an architecture change: the weights' names and shapes differ
    from this version's network. Every loader says so in one line."""
    from app.core.errors import ConfigError
    from app.training import checkpoint

    state = checkpoint.load(_checkpoint(tmp_path))
    weights = dict(state["policy"])
    weights["host_encoder.0.weight"] = weights.pop("host_encoder.weight")  # an old layout
    weights["score_host.weight"] = torch.zeros(3, 3)
    old = checkpoint.save(tmp_path / "old.pt", {**state, "policy": weights})
    with pytest.raises(ConfigError, match="does not match this version's network") as err:
        LoadedPolicy.from_checkpoint(old)
    assert "missing: host_encoder.weight" in str(err.value)
    assert "unexpected: host_encoder.0.weight" in str(err.value)
    assert "other shape: score_host.weight" in str(err.value)
    trainer = Trainer(TrainConfig(**{**TINY, "num_hosts": 4}))
    with pytest.raises(ConfigError, match="the checkpoint to start from"):
        trainer.init_from(state | {"policy": weights})
    proc = subprocess.run(oppen_cmd("eval", "--checkpoint", str(old), "--seeds", "42"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "train it again" in proc.stderr  # a config error
    assert "Traceback" not in proc.stderr


def test_inference_decides_only_allowed_actions(tmp_path: Path) -> None:
    loaded = LoadedPolicy.from_checkpoint(_checkpoint(tmp_path))
    rng = np.random.default_rng(0)
    obs = rng.random((50, 4 * 4 + 2), dtype=np.float32)
    masks = (rng.random((50, 4)) < 0.5).astype(np.int8)
    masks[np.arange(50), rng.integers(0, 4, 50)] = 1
    decisions = loaded.decide_batch(obs, masks)
    assert all(masks[i, d] for i, d in enumerate(decisions))
    assert loaded.decide(obs[0], masks[0]) == decisions[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: object) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _post_raw(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_policy_serve_answers_over_http(oppen_home: Path, tmp_path: Path) -> None:
    ckpt, port = _checkpoint(tmp_path), free_port()
    proc = subprocess.Popen(oppen_cmd("policy", "serve", "--checkpoint", str(ckpt), "--port",
                                      str(port), "--max-body-bytes", "65536"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, \
                    proc.stderr.read() if proc.poll() is not None else "server never came up"
                time.sleep(0.2)
        hosts = [{"cores": 16, "mem_mb": 65536, "used_cores": 16, "used_mem_mb": 1024},
                 {"cores": 32, "mem_mb": 131072, "used_cores": 4, "used_mem_mb": 2048}]
        status, body = _post(f"{base}/v1/decide", {"hosts": hosts,
                                                   "job": {"cores": 2, "mem_mb": 1024}})
        assert status == 200 and body == {"host": 1, "fits": [False, True]}
        status, body = _post(f"{base}/v1/decide", {"hosts": hosts[:1],
                                                   "job": {"cores": 2, "mem_mb": 1024}})
        assert status == 409 and "no host has room" in body["error"]
        status, body = _post(f"{base}/v1/decide", {"hosts": [{**hosts[0], "used_cores": 99}],
                                                   "job": {"cores": 1, "mem_mb": 1}})
        assert status == 422 and "exceed" in json.dumps(body)
        status, body = _post(f"{base}/v1/decide", {"hosts": hosts})
        assert status == 422 and "job" in json.dumps(body)
        # Hostile numbers get a 422 naming the field, never a 500 (NaN cannot be echoed).
        for raw in (b'{"hosts": [{"cores": NaN, "mem_mb": 1, "used_cores": 0, '
                    b'"used_mem_mb": 0}], "job": {"cores": 1, "mem_mb": 1}}',
                    b'{"hosts": [], "job": {"cores": Infinity, "mem_mb": 1}}',
                    b'{"hosts": [{"cores": 1e300, "mem_mb": 1, "used_cores": 0, '
                    b'"used_mem_mb": 0}], "job": {"cores": 1, "mem_mb": 1}}',
                    b'{"hosts": [{"cores": 99999999999999999999999, "mem_mb": 1, '
                    b'"used_cores": 0, "used_mem_mb": 0}], "job": {"cores": 1, "mem_mb": 1}}'):
            status, body = _post_raw(f"{base}/v1/decide", raw)
            assert status == 422, (raw, body)
            assert body["errors"] and all(e["field"] for e in body["errors"])
        status, body = _post_raw(f"{base}/v1/decide", b"[" * 70_000)
        assert status == 413 and "limit of 65536 bytes" in body["error"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    # It said where it listened, logged each request, and SIGTERM stopped it cleanly.
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/v1/decide" in err
    assert "POST /v1/decide 200" in err and "Traceback" not in err


def test_bench_infer_reports_latency_and_throughput(oppen_home: Path) -> None:
    proc = subprocess.run(oppen_cmd("bench", "infer", "--repeats", "2", "--json"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["hosts"] == 64 and out["single_decision_us"] > 0
    assert out["batched_decisions_per_s"] > 0 and out["path"] == "fused"
    base = out["pytorch"]
    assert out["batched_speedup"] == pytest.approx(out["batched_decisions_per_s"]
                                                   / base["batched_decisions_per_s"])
    assert out["single_speedup"] == pytest.approx(base["single_decision_us"]
                                                  / out["single_decision_us"])
    print(f"infer: single {out['single_decision_us']:.0f} us, batched "
          f"{out['batched_decisions_per_s']:,.0f}/s ({out['batched_speedup']:.1f}x PyTorch)")


def test_bench_infer_names_a_checkpoint_of_another_mode(oppen_home: Path) -> None:
    proc = subprocess.run(oppen_cmd("bench", "infer", "--checkpoint",
                                    str(REPO / "pretrained" / "pick-lublin256.pt")),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "measures place policies" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("hidden", "rows"), [(16, 1), (16, 300), (5, 40), (40, 130)])
def test_fused_inference_matches_the_torch_policy(hidden: int, rows: int) -> None:
    """simrs's fused forward pass against the PyTorch module: hidden sizes at and between its
    compiled widths, one row and batches split across threads, bool and int8 masks."""
    from app.training.fused_place import FusedPlacePolicy
    from app.training.policy import PlacePolicy

    torch.manual_seed(hidden)
    policy = PlacePolicy(hidden).eval()
    rng = np.random.default_rng(rows)
    obs = rng.random((rows, 64 * 4 + 2), dtype=np.float32)
    masks = rng.random((rows, 64)) < 0.5
    masks[0, :] = False
    masks[0, 7] = True  # one allowed host: it must be the choice
    with torch.no_grad():
        expected = policy.logits(torch.from_numpy(obs), torch.from_numpy(masks)).numpy()
    fused = FusedPlacePolicy(policy)
    np.testing.assert_allclose(fused.logits(obs, masks), expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(fused.logits(obs, masks.astype(np.int8)),
                                  fused.logits(obs, masks))
    chosen = fused.decide_batch(obs, masks)
    assert chosen[0] == 7
    assert masks[np.arange(rows), chosen].all()
    # The chosen host scores the row's best under PyTorch too (up to rounding).
    np.testing.assert_allclose(expected[np.arange(rows), chosen], expected.max(axis=1),
                               atol=1e-5)


def test_fused_inference_names_a_wrong_shape() -> None:
    import simrs
    from app.core.errors import ConfigError
    from app.training.fused_place import FusedPlacePolicy
    from app.training.policy import PlacePolicy

    fused = FusedPlacePolicy(PlacePolicy(16))
    obs = np.zeros((3, 8 * 4 + 2), dtype=np.float32)
    with pytest.raises(ConfigError, match=r"shape \(3, 34\) do not fit masks of shape \(3, 9\)"):
        fused.decide_batch(obs, np.ones((3, 9), dtype=bool))
    with pytest.raises(ConfigError, match="do not fit"):
        fused.logits(obs[:, 1:], np.ones((3, 8), dtype=bool))
    with pytest.raises(ConfigError, match="do not fit"):  # the same values, other rows
        fused.logits(obs.reshape(6, 17), np.ones((6, 4), dtype=bool))
    # simrs checks the raw buffers itself too.
    with pytest.raises(simrs.ConfigError, match="not whole rows"):
        fused.net.decide(obs, np.ones((3, 9), dtype=np.int8), np.zeros(3, dtype=np.int64))
    masks = np.ones((3, 8), dtype=np.int8)
    with pytest.raises(simrs.ConfigError, match="must not share memory"):
        fused.net.logits(obs, masks, obs.reshape(-1)[:24])
    with pytest.raises(simrs.ConfigError, match="unknown place weight"):
        simrs.PlaceNet({"value_head.0.weight": [0.0]})
    with pytest.raises(simrs.ConfigError, match="missing place weight"):
        simrs.PlaceNet({"host_encoder.bias": [0.0]})


def test_bench_train_compares_with_a_sync_vector_env_loop(oppen_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    # Three paired samples: one short sample's env time (about 0.1 s on the simrs side) can
    # be swamped by a single stall of a shared VM; the medians are not.
    proc = subprocess.run(oppen_cmd("bench", "train", "--repeats", "3", "--iterations", "1",
                                    "--json"), capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["openmp_wait_policy"] == "PASSIVE"  # oppen's default, set before torch loads
    assert out["hosts"] == 64 and out["train_steps_per_s"] > 0
    samples = out["samples"]
    assert all(len(v) == 3 for v in samples.values())
    # Every ratio is taken within one pair, then the median over the pairs is reported.
    for i in range(3):
        assert samples["ratio"][i] == pytest.approx(samples["simrs"][i]
                                                    / samples["sync_vector_env"][i])
    assert out["ratio"] == pytest.approx(statistics.median(samples["ratio"]))
    assert out["train_steps_per_s"] == pytest.approx(statistics.median(samples["simrs"]))
    assert all(0 < share < 1 for share in out["env_share"].values())
    assert out["host_layers"] == "fused"  # this machine has no CUDA
    assert out["host_layers_speedup"] == pytest.approx(statistics.median(
        [a / b for a, b in zip(samples["simrs"], samples["torch_layers"], strict=True)]))
    # One native call for all envs against a Python loop over them: 5-10x when measured
    # alone (docs/benchmarks.md); a test checks only that both sides were measured.
    assert out["env_only_ratio"] > 0
    print(f"bench train: {out['train_steps_per_s']:,.0f} steps/s, "
          f"{out['ratio']:.1f}x SyncVectorEnv")


def test_the_decision_endpoint_scales_the_job_as_its_training_workload_did() -> None:
    """simrs scales the job's features by the largest request its workload allows, so the
    endpoint's default scale comes from the checkpoint's config, not a fixed constant."""
    from app.training.serve import DecideRequest, place_observation

    hosts = [{"cores": 16, "mem_mb": 65_536, "used_cores": 0, "used_mem_mb": 0}]
    req = DecideRequest.model_validate({"hosts": hosts, "job": {"cores": 4, "mem_mb": 2_048}})
    wide = TrainConfig(job_cores=(1, 16), job_mem_mb=(512, 8_192))
    obs, mask = place_observation(req, wide)
    assert obs[-2:].tolist() == [0.25, 0.25] and mask.tolist() == [1]
    small = TrainConfig(job_cores=(1, 4), job_mem_mb=(512, 4_096))
    obs, _ = place_observation(req, small)  # read against the trained workload's largest job
    assert obs[-2:].tolist() == [1.0, 0.5]
    given = req.model_copy(update={"max_job_cores": 8, "max_job_mem_mb": 4_096})
    assert place_observation(given, wide)[0][-2:].tolist() == [0.5, 0.5]


def test_the_shipped_place_policy_still_waits_5_percent_less_than_first_and_best_fit() -> None:
    """The headline place result (docs/benchmarks.md): on the memory-bound workload it was
    trained for, at least 5% below the better of first-fit and best-fit on seeds 42-44."""
    from app.training.evaluate import baselines, evaluate_config, policy_chooser

    root = Path(__file__).resolve().parents[2]
    loaded = LoadedPolicy.from_checkpoint(root / "pretrained" / "place-64hosts-mem.pt")
    table = evaluate_config(loaded.config, {"ppo": policy_chooser(loaded.policy,
                                                                  torch.device("cpu")),
                                            **baselines("place")}, [42, 43, 44])
    wait = {name: row["mean_wait_s"] for name, row in table.items()}
    assert wait["ppo"] <= 0.95 * min(wait["first_fit"], wait["best_fit"]), wait


def test_the_shipped_place_policy_decides_the_same_through_the_fused_path() -> None:
    """Every decision of the evaluation episodes (seeds 42-44, 3,000 in all): the fused
    forward pass that serving uses picks the host PyTorch picks."""
    from app.training.evaluate import policy_chooser, run_episode

    loaded = LoadedPolicy.from_checkpoint(REPO / "pretrained" / "place-64hosts-mem.pt")
    assert loaded.fast is not None
    with_torch = policy_chooser(loaded.policy, torch.device("cpu"))
    decisions, disagreements = 0, []

    def both(env: object, obs: np.ndarray, mask: np.ndarray) -> int:
        nonlocal decisions
        chosen = with_torch(env, obs, mask)
        decisions += 1
        if loaded.decide(obs, mask) != chosen:
            disagreements.append(decisions)
        return chosen

    for seed in (42, 43, 44):
        run_episode(loaded.config.workload(), seed, both, loaded.config.reward)
    assert decisions == 3000 and disagreements == []
