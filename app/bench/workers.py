"""`oppen bench train --workers 1,2`: data-parallel PPO's steps/s per worker count.

Each count trains the same run (the place workload of `oppen bench train`, the same total
environments) as a real `oppen train` process, its workers started by torchrun, measured
back to back and repeated; steps/s is the trainer's own (from its first update to its last,
without process start or the final evaluation). Reported per count: the median steps/s, the
speed-up over one worker, the scaling efficiency (speed-up / workers), and the share of the
training time rank 0 spent in collectives (gradient all-reduces, the advantage gather) with
the mean time per gradient all-reduce, from which docs/benchmarks.md argues multi-node
scaling.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.core.errors import OppenError

HOSTS = 64
# The workload of `oppen bench train`, 128 environments: divisible by 1, 2, 4, 8, 16 workers.
BASE: dict[str, Any] = {"num_hosts": HOSTS, "episode_length": 200, "max_jobs_per_step": 50,
                        "mean_interarrival_s": 60.0, "job_cores": [1, 4],
                        "job_mem_mb": [512, 4096], "num_envs": 128, "rollout_steps": 128,
                        "eval_seeds": [42], "checkpoint_every": 1000}


def _one(workers: int, iterations: int, home: Path) -> dict[str, float]:
    cfg = {**BASE, "total_timesteps": BASE["num_envs"] * BASE["rollout_steps"] * iterations,
           "num_workers": workers}
    config = home / f"bench-{workers}.json"
    config.write_text(json.dumps(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPEN_")}
    env.update(OPPEN_HOME=str(home), OPPEN_WARM_START="false", MLFLOW_LOGGING_LEVEL="WARNING")
    done = subprocess.run([sys.executable, "-m", "app", "train", "--cold", "--config",
                           str(config), "--checkpoint-dir", str(home / f"ckpt-{workers}"),
                           "--json"], env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise OppenError(f"the {workers}-worker run failed: {done.stderr.strip()[-500:]}")
    out = json.loads(done.stdout)
    seconds = out["global_step"] / out["steps_per_second"]
    return {"steps_per_s": out["steps_per_second"], "train_s": seconds,
            "communication_s": out["communication_s"]}


def _gradient_size() -> int:
    """Values in one gradient all-reduce: the bench policy's parameters and 5 loss sums."""
    from app.training.config import TrainConfig
    from app.training.policy import make_policy

    cfg = TrainConfig.from_dict({**BASE, "num_workers": 1})
    policy = make_policy(cfg.mode, cfg.hidden, HOSTS, cfg.pick_context, fused=False,
                         host_alignment=cfg.host_alignment)
    return sum(p.numel() for p in policy.parameters()) + 5


def _allreduce_worker(rank: int, world: int, init_file: str, numel: int, repeats: int,
                      out: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    x = torch.zeros(numel)
    for _ in range(20):
        dist.all_reduce(x)
    times = []
    for _ in range(repeats):
        dist.barrier()  # every rank starts together: the transfer alone, no waiting on skew
        began = time.perf_counter()
        dist.all_reduce(x)
        times.append(time.perf_counter() - began)
    if rank == 0:
        out.put(statistics.median(times))
    dist.destroy_process_group()


def allreduce_seconds(numel: int, world: int = 2, repeats: int = 300) -> float:
    """Median seconds of one gloo all-reduce of `numel` floats between `world` processes on
    this machine (loopback TCP), ranks started together."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="oppen-allreduce-") as tmp:
        procs = [ctx.Process(target=_allreduce_worker,
                             args=(r, world, str(Path(tmp) / "init"), numel, repeats, out))
                 for r in range(world)]
        for p in procs:
            p.start()
        try:
            value = float(out.get(timeout=120))
        finally:
            for p in procs:
                p.join(timeout=30)
    return value


def run(counts: list[int], repeats: int = 3, iterations: int = 3) -> dict[str, Any]:
    if 1 not in counts:
        counts = [1, *counts]  # the baseline, measured in the same run
    for w in counts:
        if w < 1 or BASE["num_envs"] % w:
            raise OppenError(f"--workers: each count must divide {BASE['num_envs']} "
                             f"environments, got {w}")
    samples: dict[int, list[dict[str, float]]] = {w: [] for w in counts}
    with tempfile.TemporaryDirectory(prefix="oppen-bench-workers-") as tmp:
        for _ in range(repeats):
            for w in counts:  # back to back, so drift hits every count alike
                samples[w].append(_one(w, iterations, Path(tmp)))
    # Gradient all-reduces per run: one per minibatch of every epoch of every update.
    from app.training.config import TrainConfig

    defaults = TrainConfig()
    reductions = iterations * defaults.update_epochs * defaults.num_minibatches
    base = statistics.median(s["steps_per_s"] for s in samples[1])
    rows = []
    for w in counts:
        sps = statistics.median(s["steps_per_s"] for s in samples[w])
        comm = statistics.median(s["communication_s"] for s in samples[w])
        train = statistics.median(s["train_s"] for s in samples[w])
        rows.append({"workers": w, "steps_per_s": sps, "speedup": sps / base,
                     "efficiency": sps / base / w, "train_s": train,
                     "communication_s": comm, "communication_share": comm / train,
                     "ms_per_allreduce": 1000 * comm / reductions if w > 1 else 0.0,
                     "samples": [s["steps_per_s"] for s in samples[w]]})
    numel = _gradient_size()
    return {"hosts": HOSTS, "num_envs": BASE["num_envs"],
            "gradient_values": numel,
            "allreduce_ms_alone": 1000 * allreduce_seconds(numel),
            "rollout_steps": BASE["rollout_steps"], "iterations": iterations,
            "gradient_allreduces_per_run": reductions, "repeats": repeats,
            "cpus": len(os.sched_getaffinity(0)), "counts": rows}
