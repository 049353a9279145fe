"""`oppen train`: one PPO run recorded in MLflow (params, metrics, checkpoint, evaluation)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.core.tracking import Tracker
from app.training.config import TrainConfig
from app.training.evaluate import evaluate, heuristic_chooser, policy_chooser
from app.training.ppo import resolve_device, train

BASELINES = ("first_fit", "best_fit")


@dataclass(frozen=True)
class TrainingOutcome:
    run_id: str
    global_step: int
    steps_per_second: float
    evaluation: dict[str, dict[str, float]]


def run_training(cfg: TrainConfig, tracker: Tracker, job_id: int | None = None,
                 on_run_started: Any = None) -> TrainingOutcome:
    import mlflow

    tags = {"oppen.mode": "place"}
    if job_id is not None:
        tags["oppen.job_id"] = str(job_id)
    with tracker.start_run(f"{cfg.exp_name}-{job_id if job_id is not None else 'adhoc'}",
                           tags) as run:
        run_id = run.info.run_id
        if on_run_started is not None:
            on_run_started(run_id)
        mlflow.log_params({k: json.dumps(v) if isinstance(v, list) else v
                           for k, v in cfg.to_dict().items()})
        result = train(cfg, log=lambda metrics, step: mlflow.log_metrics(metrics, step=step))

        device = resolve_device(cfg.device)
        policy = result.policy.eval()
        choosers = {"ppo": policy_chooser(policy, device),
                    **{b: heuristic_chooser(b) for b in BASELINES}}
        table = evaluate(cfg.workload(), cfg.eval_seeds, choosers, cfg.reward)
        for name, row in table.items():
            mlflow.log_metrics({f"eval/{name}/{k}": v for k, v in row.items()})
        best = min(BASELINES, key=lambda b: table[b]["mean_wait_s"])
        mlflow.log_metrics({
            "eval/ppo_vs_best_heuristic_wait_ratio":
                table["ppo"]["mean_wait_s"] / max(table[best]["mean_wait_s"], 1e-9),
        })
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / "policy.pt"
            torch.save({"state_dict": policy.state_dict(), "config": cfg.to_dict(),
                        "global_step": result.global_step}, ckpt)
            mlflow.log_artifact(str(ckpt), artifact_path="checkpoints")
        mlflow.log_dict({"seeds": list(cfg.eval_seeds), "results": table},
                        "evaluation/eval.json")
        return TrainingOutcome(run_id, result.global_step, result.steps_per_second, table)
