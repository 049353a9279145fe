"""Choosing which of a run's checkpoints to ship: every checkpoint in a folder scored on the
same validation episodes, chosen before looking at the evaluation's own.

A run's final policy is one sample from a noisy trajectory (on lublin_256 the published-window
score moves by about ten from one checkpoint to the next), and the five episodes early stopping
looks at are too few to tell checkpoints apart. Scoring tens of episodes per checkpoint is
affordable because the episodes run in lockstep: one batched decision per step for all of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import ConfigError, NotFoundError
from app.training.config import TrainConfig
from app.training.evaluate import headline_metric
from app.training.inference import LoadedPolicy

_STEP = re.compile(r"step-(\d+)\.pt$")


@dataclass(frozen=True)
class Scored:
    path: Path
    global_step: int
    metric: float  # the run's headline metric, mean over the episodes; lower is better


def checkpoints_in(folder: str | Path) -> list[Path]:
    """A run's periodic checkpoints (`step-N.pt`), oldest first. `latest.pt` and `best.pt`
    are copies of one of them and are left out."""
    root = Path(folder)
    if not root.is_dir():
        raise NotFoundError(f"checkpoint folder not found: {root}")
    found = sorted((int(m.group(1)), p) for p in root.iterdir()
                   if (m := _STEP.search(p.name)))
    if not found:
        raise NotFoundError(f"{root}: no step-N.pt checkpoints (is it a run's --checkpoint-dir?)")
    return [p for _, p in found]


def _episodes(cfg: TrainConfig, seeds: Sequence[int]) -> tuple[list[Any], list[dict[str, Any]]]:
    """One environment per seed and the reset options that start its episode: under
    RLScheduler's protocol a window drawn per seed (never the published ones), else the
    synthetic workload of that seed."""
    import simrs

    options = cfg.env_options()
    if cfg.protocol == "rlscheduler":
        from app.training.rlscheduler_eval import WINDOW_LEN, windows

        options["episode_length"] = WINDOW_LEN
        starts = windows(options["trace"].num_jobs, list(seeds))
        envs = [simrs.ClusterEnv(cfg.mode, None, 0, **options) for _ in starts]
        return envs, [{"options": {"start": s}} for s in starts]
    envs = [simrs.ClusterEnv(cfg.mode, cfg.env_config(), s, **options) for s in seeds]
    return envs, [{"seed": s} for s in seeds]


def lockstep_metric(loaded: LoadedPolicy, cfg: TrainConfig, seeds: Sequence[int]) -> float:
    """The run's headline metric for this policy, mean over one episode per seed, every
    episode advanced by one batched greedy decision per step."""
    envs, resets = _episodes(cfg, seeds)
    obs, masks = [], []
    for env, reset in zip(envs, resets, strict=True):
        o, info = env.reset(**reset)
        obs.append(o)
        masks.append(info["action_mask"])
    active = list(range(len(envs)))
    while active:
        actions = loaded.decide_batch(np.stack([obs[i] for i in active]),
                                      np.stack([masks[i] for i in active]))
        still = []
        for i, action in zip(active, actions, strict=True):
            obs[i], _, done, _, info = envs[i].step(int(action))
            masks[i] = info["action_mask"]
            if not done:
                still.append(i)
        active = still
    metric = headline_metric(cfg)
    return float(np.mean([env.metrics()[metric] for env in envs]))


def rank(folder: str | Path, seeds: Sequence[int]) -> list[Scored]:
    """Every checkpoint of a run, scored on the same validation seeds, best first."""
    if not seeds:
        raise ConfigError("choosing a checkpoint needs at least one validation seed")
    scored = []
    for path in checkpoints_in(folder):
        loaded = LoadedPolicy.from_checkpoint(path)
        step = int(_STEP.search(path.name).group(1))  # type: ignore[union-attr]
        scored.append(Scored(path, step, lockstep_metric(loaded, loaded.config, seeds)))
    return sorted(scored, key=lambda s: (s.metric, -s.global_step))
