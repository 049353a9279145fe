"""A finished training job's policy against the heuristics: the evaluation its run recorded,
or a fresh one on seeds of the person's choosing, from the checkpoint in MLflow."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError, NotFoundError
from app.core.tracking import Tracker

MAX_SEEDS = 10


def _ratio(table: dict[str, dict[str, float]], metric: str) -> tuple[str | None, float | None]:
    """The best heuristic by `metric` and PPO's value over it (lower is better)."""
    heuristics = {k: v for k, v in table.items() if k != "ppo"}
    if not heuristics:
        return None, None
    best = min(heuristics, key=lambda k: heuristics[k][metric])
    if "ppo" not in table:
        return best, None
    return best, table["ppo"][metric] / max(heuristics[best][metric], 1e-9)


def _verdict(table: dict[str, dict[str, float]], metric: str = "mean_wait_s") -> dict[str, Any]:
    best, ratio = _ratio(table, metric)
    _, wait_ratio = _ratio(table, "mean_wait_s")
    return {"metric": metric, "best_heuristic": best, "ppo_vs_best_heuristic_ratio": ratio,
            "ppo_vs_best_heuristic_wait_ratio": wait_ratio}


def recorded(tracker: Tracker, run_id: str) -> dict[str, Any] | None:
    """The table the run logged when training ended (None before that)."""
    import json

    if "evaluation" not in tracker.artifacts(run_id):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        found = tracker.download(run_id, "evaluation/eval.json", Path(tmp))
        doc = json.loads(found.read_text())
    return {"seeds": doc["seeds"], "results": doc["results"],
            **_verdict(doc["results"], doc.get("metric", "mean_wait_s"))}


def fresh(tracker: Tracker, run_id: str, seeds: Sequence[int]) -> dict[str, Any]:
    """The run's last checkpoint against its mode's heuristics on ``seeds``."""
    import torch

    from app.training.evaluate import baselines, evaluate_config, headline_metric, policy_chooser
    from app.training.inference import LoadedPolicy

    seeds = [int(s) for s in seeds]
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise ConfigError(f"evaluate on 1 to {MAX_SEEDS} seeds, got {len(seeds)}")
    if "checkpoints" not in tracker.artifacts(run_id):
        raise NotFoundError("the run has no checkpoint to evaluate yet")
    with tempfile.TemporaryDirectory() as tmp:
        folder = tracker.download(run_id, "checkpoints", Path(tmp))
        files = sorted(folder.glob("*.pt"))
        if not files:
            raise NotFoundError("the run's checkpoints folder holds no checkpoint")
        loaded = LoadedPolicy.from_checkpoint(files[-1])
    choosers = {"ppo": policy_chooser(loaded.policy, torch.device("cpu")),
                **baselines(loaded.config.mode)}
    table = evaluate_config(loaded.config, choosers, seeds)
    return {"seeds": seeds, "results": table,
            **_verdict(table, headline_metric(loaded.config))}
