"""`oppen bench sweep`: what a search costs and finds, and what a short trial costs to run.

1. **Search.** On the memory-bound place workload with short trials, the same number of
   trials searched twice per seed: TPE with median pruning against random search without
   pruning, each study run in this process (Optuna in memory, each trial a real Trainer with
   its evaluations reported to the study). Reported per seed and as medians: the best
   objective reached (mean wait on the evaluation seeds; lower is better) and the CPU-seconds
   the study spent. Goal: at least as good a best for at most 60% of the compute.
2. **Cheap trials.** A 1,024-step `oppen train` in the foreground, started cold and forked
   from a warm-start server; and a short sweep's trials through the real dispatcher, cold and
   warm: seconds from a trial's job being queued to its end. Goals: 3 s and 5 s.
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

# The search space: learning rate and entropy bonus over wide log ranges (where most of
# either range is hopeless), clipping and GAE's lambda.
SPACE: dict[str, Any] = {
    "lr": {"type": "log", "low": 1e-5, "high": 1e-1},
    "ent_coef": {"type": "log", "low": 1e-4, "high": 3e-1},
    "clip_coef": {"type": "uniform", "low": 0.05, "high": 0.4},
    "lam": {"type": "uniform", "low": 0.8, "high": 0.99},
}
# Short trials on the default (memory-bound) place workload, a report after each of their
# eight updates.
BASE: dict[str, Any] = {"total_timesteps": 8192, "num_envs": 8, "rollout_steps": 128,
                        "eval_every": 1}


def _base(steps: int) -> dict[str, Any]:
    return {**BASE, "total_timesteps": steps}


def _trial(cfg_dict: dict[str, Any], trial: Any | None) -> tuple[float | None, float]:
    """One trial in this process: (objective or None when pruned, CPU-seconds)."""
    import torch

    from app.training.config import TrainConfig
    from app.training.evaluate import baselines, evaluate_config, policy_chooser
    from app.training.objectives import objective_evaluator, objective_of
    from app.training.ppo import Trainer, resolve_device

    torch.set_num_threads(1)
    started = time.process_time()
    cfg = TrainConfig.from_dict(cfg_dict)
    trainer = Trainer(cfg, evaluator=objective_evaluator(cfg, "mean_wait_s"))
    if trial is not None:
        def report(value: float, step: int) -> bool:
            trial.report(value, step)
            return bool(trial.should_prune())

        trainer.on_evaluation = report
    result = trainer.run()
    if result.stopped == "pruned":
        return None, time.process_time() - started
    device = resolve_device(cfg.device)
    table = evaluate_config(cfg, {"ppo": policy_chooser(result.policy.eval(), device),
                                  **baselines(cfg.mode)})
    return objective_of(cfg, table, "mean_wait_s"), time.process_time() - started


def study(method: str, seed: int, trials: int, steps: int = BASE["total_timesteps"]
          ) -> dict[str, Any]:
    """One study: 'tpe-median' or 'random-none'."""
    import optuna

    from app.sweeps import choices
    from app.sweeps.space import distributions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler_name, pruner_name = method.split("-")
    sampler = choices.sampler(sampler_name, seed, SPACE)
    pruner = choices.pruner(pruner_name, steps)
    s = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    dists = distributions(SPACE)
    cpu, pruned = 0.0, 0
    for _ in range(trials):
        t = s.ask(dists)
        value, spent = _trial({**_base(steps), **t.params, "seed": seed},
                              t if pruner_name != "none" else None)
        cpu += spent
        if value is None:
            pruned += 1
            s.tell(t, state=optuna.trial.TrialState.PRUNED)
        else:
            s.tell(t, value)
    return {"method": method, "seed": seed, "trials": trials, "pruned": pruned,
            "best": s.best_value, "best_params": s.best_params, "cpu_s": round(cpu, 2)}


def search(seeds: list[int], trials: int, steps: int) -> dict[str, Any]:
    runs = [study(m, seed, trials, steps) for seed in seeds
            for m in ("tpe-median", "random-none")]
    by = {m: [r for r in runs if r["method"] == m] for m in ("tpe-median", "random-none")}
    tpe, rnd = by["tpe-median"], by["random-none"]
    med = {m: {"best": statistics.median(r["best"] for r in rs),
               "cpu_s": statistics.median(r["cpu_s"] for r in rs)} for m, rs in by.items()}
    compute_ratio = sum(r["cpu_s"] for r in tpe) / sum(r["cpu_s"] for r in rnd)
    at_least_as_good = sum(a["best"] <= b["best"] for a, b in zip(tpe, rnd, strict=True))
    return {"steps_per_trial": steps, "runs": runs, "median": med, "compute_ratio": round(compute_ratio, 3),
            "seeds_at_least_as_good": at_least_as_good, "seeds": len(seeds),
            "goal_met": compute_ratio <= 0.6 and med["tpe-median"]["best"]
            <= med["random-none"]["best"]}


# --- cheap trials --------------------------------------------------------------------------

def _oppen(env: dict[str, str], *args: str, timeout: float = 300) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app", *args], env=env, timeout=timeout,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise OppenError(f"oppen {' '.join(args)} failed: {done.stderr[-500:]}")
    return time.perf_counter() - start


def _home_env(home: Path, warm: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPEN_")}
    env.update(OPPEN_HOME=str(home), MLFLOW_LOGGING_LEVEL="WARNING",
               OPPEN_WARM_START="true" if warm else "false", OPPEN_DISPATCH_INTERVAL_S="0.2",
               OPPEN_MAX_CONCURRENT_JOBS="1")
    return env


def foreground(repeats: int) -> dict[str, Any]:
    """A 1,024-step `oppen train`, cold and warm, each in a home whose stores exist."""
    with tempfile.TemporaryDirectory() as tmp:
        env = _home_env(Path(tmp), warm=True)
        train = ("train", "--set", "total_timesteps=1024")
        _oppen(env, *train, "--cold")  # creates the stores, as any home has them
        cold = [_oppen(env, *train, "--cold") for _ in range(repeats)]
        _oppen(env, "warm", "start")
        try:
            warm = [_oppen(env, *train) for _ in range(repeats)]
        finally:
            _oppen(env, "warm", "stop")
    return {"cold_s": cold, "warm_s": warm, "cold_median_s": statistics.median(cold),
            "warm_median_s": statistics.median(warm),
            "speedup": statistics.median(cold) / statistics.median(warm)}


def through_dispatcher(trials: int, warm: bool) -> list[float]:
    """A sweep of ``trials`` 1,024-step trials, one at a time, through `oppen dispatcher
    run`: each trial's seconds from queued to ended."""
    from sqlmodel import Session, select

    from app.core.models import Job
    from app.core.settings import load_settings
    from app.services import Services

    with tempfile.TemporaryDirectory() as tmp:
        env = _home_env(Path(tmp), warm)
        # No pruning: every trial runs its whole length, the cost being measured.
        _oppen(env, "sweep", "create", "bench", "--param", "lr=log:1e-4:1e-2", "--trials",
               str(trials), "--parallel", "1", "--seed", "1", "--pruner", "none",
               "--set", "total_timesteps=1024")
        _oppen(env, "dispatcher", "run", "--interval", "0.2", "--exit-when-idle",
               timeout=900)
        services = Services(load_settings(home=Path(tmp)))
        with Session(services.engine) as s:
            jobs = s.exec(select(Job).where(Job.sweep_id.is_not(None))  # type: ignore[union-attr]
                          .order_by(Job.id)).all()
        services.engine.dispose()
    if len(jobs) != trials or any(j.state != "succeeded" for j in jobs):
        raise OppenError(f"the benchmark's sweep did not finish: "
                         f"{[(j.id, j.state) for j in jobs]}")
    # The first trial also waits for the dispatcher's start, for the tracking store to be
    # made and, warm, for its server's imports.
    return [(j.finished_at - j.created_at).total_seconds() for j in jobs]


def cheap_trials(repeats: int, trials: int) -> dict[str, Any]:
    fg = foreground(repeats)
    cold, warm = through_dispatcher(trials, False), through_dispatcher(trials, True)
    steady = {"cold": cold[1:], "warm": warm[1:]}
    return {"foreground": fg, "dispatcher": {
        "cold_s": [round(x, 2) for x in cold], "warm_s": [round(x, 2) for x in warm],
        "cold_median_s": statistics.median(steady["cold"]),
        "warm_median_s": statistics.median(steady["warm"]),
        "note": "medians leave out each sweep's first trial, which waits for the dispatcher "
                "(and the warm-start server) to start"},
        "goals": {"foreground_s": 3.0, "dispatcher_s": 5.0},
        "goal_met": fg["warm_median_s"] <= 3.0
        and statistics.median(steady["warm"]) <= 5.0}


def run(part: str, seeds: list[int], trials: int, repeats: int,
        dispatcher_trials: int, steps: int = BASE["total_timesteps"]) -> dict[str, Any]:
    out: dict[str, Any] = {"space": SPACE, "base": _base(steps)}
    if part in ("all", "search"):
        out["search"] = search(seeds, trials, steps)
    if part in ("all", "latency"):
        out["cheap_trials"] = cheap_trials(repeats, dispatcher_trials)
    return json.loads(json.dumps(out, default=str))
