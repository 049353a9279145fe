"""`oppen train`: one PPO run with checkpoints, recorded in MLflow (params, per-update
metrics, evaluation table, learning curve, checkpoints and the policy as an MLflow model)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.adaptors import mlflow as tracking_sdk
from app.core.tracking import Tracker
from app.training import checkpoint
from app.training.config import TrainConfig
from app.training.distributed import SOLO, Workers
from app.training.evaluate import baselines, evaluate_config, headline_metric, policy_chooser
from app.training.objectives import TrialHooks, objective_evaluator, objective_of, signed
from app.training.ppo import Trainer, resolve_device
from app.training.progress import ProgressReporter
from app.training.report import evaluation_markdown, learning_curve_png
from app.training.run_logger import RunLogger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingOutcome:
    run_id: str | None
    global_step: int
    steps_per_second: float
    evaluation: dict[str, dict[str, float]]
    stopped: str
    checkpoint: str | None
    communication_s: float = 0.0


def _evaluator(cfg: TrainConfig) -> Any:
    device, metric = resolve_device(cfg.device), headline_metric(cfg)

    def run(policy: Any) -> float:
        # Explicit seeds: under RLScheduler's protocol these draw windows of their own, so
        # early stopping never looks at the published test windows.
        return evaluate_config(cfg, {"ppo": policy_chooser(policy, device)},
                               cfg.eval_seeds)["ppo"][metric]

    return run


def run_training(cfg: TrainConfig, tracker: Tracker, job_id: int | None = None,
                 on_run_started: Any = None, checkpoint_dir: Path | None = None,
                 resume_from: str | Path | None = None, init_from: str | Path | None = None,
                 stop: threading.Event | None = None,
                 run_name: str | None = None, run_id: str | None = None,
                 on_checkpoint: Callable[[Path, int], None] | None = None,
                 trial: TrialHooks | None = None,
                 extra_tags: dict[str, str] | None = None,
                 workers: Workers = SOLO) -> TrainingOutcome:
    """One training run. ``run_id`` continues that MLflow run (a job's later attempt);
    ``on_checkpoint`` is told of every step checkpoint written (a job's durable store).

    A sweep's ``trial`` is evaluated by its study's objective at every evaluation, stops
    (``stopped`` "pruned", no final evaluation) when its pruner says so, and otherwise hands
    its final objective to the study. A trial logs lean: no learning-curve plot and no MLflow
    model (its checkpoints hold the policy), since a search runs many short jobs.

    Of a data-parallel run's ``workers``, every one calls this; rank 0 alone reads the
    checkpoint to resume or start from (and hands it to the others), holds the MLflow run,
    reports progress and the trial, and evaluates."""
    mlflow = tracking_sdk.fluent()
    leader = workers.leader

    resume = checkpoint.load(resume_from) if resume_from and leader else None
    initial = checkpoint.load(init_from) if init_from and leader and not resume else None
    if workers.world > 1:
        resume, initial = workers.from_leader((resume, initial))
    if resume is not None:
        # A resumed run keeps its own options; the worker count may change (it divides the
        # environments: their seeds follow their indices in the whole set, not the worker).
        cfg = dataclasses.replace(TrainConfig.of_checkpoint(resume["config"]),
                                  num_workers=cfg.num_workers)
    tags = {"oppen.mode": cfg.mode,
            "oppen.workload": cfg.trace or json.dumps(cfg.workload())}
    if job_id is not None:
        tags["oppen.job_id"] = str(job_id)
    tags.update(extra_tags or {})
    logger = RunLogger()
    # Every attempt of a job continues its one run: the checkpoint's, else the job's.
    run_id = (resume.get("mlflow_run_id") if resume else None) or run_id
    # Runs are named after their job (its name and id), or the experiment when ad hoc.
    name = run_name or f"{cfg.exp_name}-{job_id if job_id is not None else 'adhoc'}"
    run = logger.call("start_run", lambda: tracker.start_run_resumable(name, tags, run_id)) \
        if leader else None
    if run is not None:
        run_id = run.info.run_id
        if on_run_started is not None:
            on_run_started(run_id)
        if resume is None:
            logger.call("log_params", mlflow.log_params,
                        {k: json.dumps(v) if isinstance(v, list) else v
                         for k, v in cfg.to_dict().items()})
    curve: list[tuple[int, float]] = []

    progress = ProgressReporter(cfg.total_timesteps)
    shown = progress if leader else contextlib.nullcontext()

    def sink(metrics: dict[str, float], step: int) -> None:
        if "charts/episodic_return" in metrics:
            curve.append((step, metrics["charts/episodic_return"]))
        logger.metrics(metrics, step)
        progress(metrics, step)

    if not leader:
        trial = None
    if trial is not None:
        evaluator = objective_evaluator(cfg, trial.objective) if cfg.eval_every else None
    else:
        evaluator = _evaluator(cfg) if cfg.eval_every else None
    trainer = Trainer(cfg, sink, checkpoint_dir, stop, evaluator, workers=workers)
    if trial is not None:
        objective = trial.objective
        trainer.on_evaluation = lambda value, step: trial.report(signed(objective, value), step)
    if resume is not None:
        trainer.load_state_dict(resume)
    elif initial is not None:
        trainer.init_from(initial)
    trainer.extra_state["mlflow_run_id"] = run_id
    trainer.on_checkpoint = on_checkpoint
    crashed = True  # until the run ends normally: a crash leaves the run FAILED
    try:
        with shown:
            result = trainer.run()
        table: dict[str, dict[str, float]] = {}
        if leader and result.stopped not in ("sigterm", "pruned"):
            device = resolve_device(cfg.device)
            choosers = {"ppo": policy_chooser(result.policy.eval(), device),
                        **baselines(cfg.mode)}
            table = evaluate_config(cfg, choosers)
            _log_outcome(logger, cfg, table, curve, result, lean=trial is not None)
            if trial is not None:
                value = objective_of(cfg, table, trial.objective)
                logger.call("log_metrics", mlflow.log_metrics, {"sweep/objective": value})
                trial.finish(value)
        elif leader and result.stopped == "pruned":
            logger.call("set_tag", mlflow.set_tag, "oppen.pruned_at_step",
                        str(result.global_step))
        crashed = False
    finally:
        if run is not None:
            status = "FAILED" if crashed else \
                "KILLED" if stop is not None and stop.is_set() else "FINISHED"
            try:
                mlflow.end_run(status)
            except Exception as exc:  # noqa: BLE001 - the server may be gone by now
                logger.report("end_run", exc)
    return TrainingOutcome(run_id, result.global_step, result.steps_per_second, table,
                           result.stopped, str(result.last_checkpoint)
                           if result.last_checkpoint else None, result.communication_s)


def _log_outcome(logger: RunLogger, cfg: TrainConfig, table: dict[str, dict[str, float]],
                 curve: list[tuple[int, float]], result: Any, lean: bool = False) -> None:
    mlflow = tracking_sdk.fluent()

    for name, row in table.items():
        logger.call("log_metrics", mlflow.log_metrics,
                    {f"eval/{name}/{k}": v for k, v in row.items()})
    metric = headline_metric(cfg)

    def ratio(column: str) -> float:
        best = min((b for b in table if b != "ppo"), key=lambda b: table[b][column])
        return table["ppo"][column] / max(table[best][column], 1e-9)

    logger.call("log_metrics", mlflow.log_metrics, {
        "eval/ppo_vs_best_heuristic_ratio": ratio(metric),
        "eval/ppo_vs_best_heuristic_wait_ratio": ratio("mean_wait_s")})
    seeds = list(cfg.eval_seeds)
    logger.call("log_dict", mlflow.log_dict,
                {"seeds": seeds, "metric": metric, "results": table}, "evaluation/eval.json")
    logger.call("log_text", mlflow.log_text, evaluation_markdown(table, seeds),
                "evaluation/eval.md")
    if not lean:
        with tempfile.TemporaryDirectory() as tmp:
            png = learning_curve_png(curve, Path(tmp) / "learning_curve.png")
            logger.call("log_artifact", mlflow.log_artifact, str(png), "plots")
    if result.last_checkpoint is not None:
        logger.call("log_artifact", mlflow.log_artifact, str(result.last_checkpoint),
                    "checkpoints")
    if lean:
        return
    # Pickled (not traced): the policy takes a mask beside the observation. MLflow warns
    # about pickles on every save; the model is our own, so that warning is noise here.
    flavor = tracking_sdk.pytorch_if_installed()
    if flavor is None:  # the lean training image: the checkpoints above hold the policy
        log.info("MLflow's pytorch flavor is not installed; the policy is in the run's "
                 "checkpoints artifact")
        return
    pytorch_log = logging.getLogger("mlflow.pytorch")
    level = pytorch_log.level
    pytorch_log.setLevel(logging.ERROR)
    try:
        logger.call("log_model", flavor.log_model, result.policy.cpu(), name="policy",
                    pip_requirements=["torch"], serialization_format="pickle")
    finally:
        pytorch_log.setLevel(level)
