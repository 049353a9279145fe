"""`oppen train`: one PPO run in the foreground, recorded in MLflow."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from app.cli import common
from app.core.errors import OppenError


def _options_epilog() -> str:
    from app.training.config import options_help

    lines = ["\b", "Training options (--set KEY=VALUE, or a TOML/JSON file):"]
    lines += [f"  {name:22} {default:>14}  {help_}" for name, default, help_ in options_help()]
    return "\n".join(lines)


@click.command(epilog=_options_epilog())
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML or JSON file of training options")
@click.option("--job-id", type=int, help="Train the queued job with this id")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override one training option (see docs/training.md)")
@click.option("--resume-from", type=click.Path(dir_okay=False),
              help="Continue a run exactly from its checkpoint")
@click.option("--init-from", type=click.Path(dir_okay=False),
              help="Start a new run from a trained policy's weights (transfer)")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False),
              help="Where checkpoints go (default: $OPPEN_HOME/checkpoints/<run>)")
@click.option("--cold", is_flag=True,
              help="Start here even when a warm-start server runs (oppen warm start)")
@click.option("--json", "as_json", is_flag=True)
def train(config_file: str | None, job_id: int | None, sets: tuple[str, ...],
          resume_from: str | None, init_from: str | None, checkpoint_dir: str | None,
          cold: bool, as_json: bool) -> None:
    """Train a PPO placement policy on simrs and record it in MLflow.

    With a warm-start server running (oppen warm start), the run is forked from it: no
    seconds of imports. SIGTERM (a cancel, a preempted pod) writes a checkpoint and exits
    with code 143. With num_workers > 1 the run's workers are started here by torchrun
    (data-parallel PPO, docs/training.md).
    """
    in_worker = _launched_worker()
    if not cold and not in_worker and sys.argv[1:2] == ["train"]:
        from app.core.executors.warm import run_here
        from app.core.settings import load_settings

        code = run_here(load_settings().warm_socket, sys.argv[1:])
        if code is not None:
            sys.exit(code)
    common.sleep_idle_openmp_threads()
    import signal
    import threading

    from app.training.config import TrainConfig

    parsed_sets = common.parse_sets(sets)
    if resume_from and (init_from or config_file or set(parsed_sets) - {"num_workers"}):
        raise OppenError("--resume-from continues a run as it was: no --init-from, "
                         "--config or --set with it (but --set num_workers=N)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    services = common.services()
    if job_id is not None:
        if config_file:
            raise OppenError("give --config or --job-id, not both")
        job = services.queue.get(job_id)
        data = dict(job.config)
    elif resume_from:
        from app.training import checkpoint

        data = TrainConfig.of_checkpoint(checkpoint.load(resume_from)["config"]).to_dict()
    else:
        data = TrainConfig.from_file(config_file).to_dict() if config_file else {}
    data.update(parsed_sets)
    cfg = TrainConfig.from_dict(data)
    if cfg.num_workers > 1 and not in_worker:
        from app.training.launch import run_workers

        argv = ["train", *(["--config", config_file] if config_file else []),
                *(["--job-id", str(job_id)] if job_id is not None else []),
                *(f"--set={s}" for s in sets),
                *(["--resume-from", resume_from] if resume_from else []),
                *(["--init-from", init_from] if init_from else []),
                *(["--checkpoint-dir", checkpoint_dir] if checkpoint_dir else []),
                *(["--json"] if as_json else [])]
        sys.exit(run_workers(cfg.num_workers, argv))
    from app.training import distributed
    from app.training.ppo import resolve_device

    workers = distributed.join(cfg.num_workers,
                               distributed.worker_device(resolve_device(cfg.device)))
    try:
        code = _train(services, cfg, workers, job_id, job if job_id is not None else None,
                      resume_from, init_from, checkpoint_dir, stop, as_json)
    except Exception as exc:
        if not distributed.peer_lost(exc):
            raise
        from app.core.states import PEER_LOST_EXIT_CODE

        click.echo(f"oppen: worker rank {workers.rank}: another worker was lost "
                   f"({str(exc).splitlines()[0][:200]})", err=True)
        os._exit(PEER_LOST_EXIT_CODE)  # the process group is broken: no orderly teardown
    finally:
        workers.close()
    if in_worker:
        from app.training.launch import exit_worker

        exit_worker(code, workers.leader)
    if code:
        sys.exit(code)


def _launched_worker() -> bool:
    """Whether torchrun started this process as one of several workers (its environment;
    read without importing torch, which a warm start avoids)."""
    return os.environ.get("WORLD_SIZE", "1") not in ("", "1")


def _train(services: Any, cfg: Any, workers: Any, job_id: int | None, job: Any,
           resume_from: str | None, init_from: str | None, checkpoint_dir: str | None,
           stop: Any, as_json: bool) -> int:
    """This worker's part of the run (all of it for one worker); the exit code it means."""
    import signal
    import time
    from pathlib import Path

    from app.training.entrypoint import run_training

    leader = workers.leader
    if init_from and cfg.imitate:
        raise OppenError("--init-from and the imitate option both choose the starting policy: "
                         "give one")
    run_name = f"job-{job_id}" if job_id is not None else time.strftime("adhoc-%Y%m%d-%H%M%S")
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else \
        services.settings.resolved_home / "checkpoints" / run_name
    if resume_from and not checkpoint_dir:
        ckpt_dir = Path(resume_from).resolve().parent
    record = (lambda run_id: services.queue.record_run(job_id, run_id)) if job_id else None
    publish, run_id, trial, tags = None, None, None, None
    if job_id is not None and job.sweep_id is not None and leader:
        trial, tags = _trial_of(services, job, cfg)
    if job_id is not None and leader:
        # A job's every attempt continues from its latest durable checkpoint and its run.
        from app.training import checkpoint_store

        store = checkpoint_store.store_for_job(services.settings.checkpoint_uri,
                                               services.settings.resolved_home, job_id)
        publish = checkpoint_store.publisher(store)
        restored = None if resume_from else \
            checkpoint_store.restore_latest(store, ckpt_dir / "restored")
        if restored is not None:
            resume_from = str(restored[0])
        services.queue.record_resume(job_id, restored[1] if restored else None)
        run_id = job.mlflow_run_id
        if restored is not None:
            click.echo(f"job {job_id}: resuming from step {restored[1]} ({store.location})",
                       err=True)
    outcome = run_training(cfg, services.tracker, job_id, on_run_started=record,
                           checkpoint_dir=ckpt_dir, resume_from=resume_from,
                           init_from=None if resume_from else init_from, stop=stop,
                           run_name=f"{job.name} (job {job_id})" if job_id is not None else None,
                           run_id=run_id, on_checkpoint=publish, trial=trial,
                           extra_tags=tags, workers=workers)
    if not leader:
        return 0
    if as_json:
        from app.core.executors.warm import CHILD_MARK

        common.emit_json({"run_id": outcome.run_id, "global_step": outcome.global_step,
                          "start": "warm" if os.environ.get(CHILD_MARK) else "cold",
                          "steps_per_second": outcome.steps_per_second,
                          "num_workers": workers.world,
                          "communication_s": outcome.communication_s,
                          "stopped": outcome.stopped, "checkpoint": outcome.checkpoint,
                          "evaluation": outcome.evaluation})
    else:
        click.echo(f"run {outcome.run_id}: {outcome.global_step} steps at "
                   f"{outcome.steps_per_second:,.0f} steps/s ({outcome.stopped})")
        for name, row in outcome.evaluation.items():
            click.echo(f"  {name:>10}: mean wait {row['mean_wait_s']:.1f}s, "
                       f"bounded slowdown {row['mean_bounded_slowdown']:.3f}")
        if outcome.checkpoint:
            click.echo(f"checkpoint: {outcome.checkpoint}")
    if outcome.stopped == "pruned":
        from app.core.states import PRUNED_EXIT_CODE

        click.echo(f"pruned by its study at step {outcome.global_step}", err=True)
        return PRUNED_EXIT_CODE
    if outcome.stopped == "sigterm":
        click.echo(f"stopped by SIGTERM; resume with --resume-from {outcome.checkpoint}",
                   err=True)
        return 128 + signal.SIGTERM
    return 0


def _trial_of(services: Any, job: Any, cfg: Any) -> tuple[Any, dict[str, str]]:
    """A sweep's trial: the reporter its trainer talks to the study through, and the tags
    that nest its MLflow run under the sweep's."""
    from app.sweeps.trial import TrialReporter

    sweep = services.sweeps.get(job.sweep_id)
    reporter = TrialReporter(services.settings.resolved_database_url, sweep.study_name,
                             job.trial_number, sweep.objective, sweep.direction, sweep.pruner,
                             cfg.total_timesteps)
    tags = {"oppen.sweep": sweep.name, "oppen.trial": str(job.trial_number)}
    if sweep.mlflow_run_id:
        tags["mlflow.parentRunId"] = sweep.mlflow_run_id
    return reporter, tags
