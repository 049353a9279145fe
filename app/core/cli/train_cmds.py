"""`oppen train`: one PPO run in the foreground, recorded in MLflow."""

from __future__ import annotations

import sys

import click

from app.core.cli import common
from app.core.errors import OppenError


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML or JSON file of training options")
@click.option("--job-id", type=int, help="Train the queued job with this id")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@click.option("--json", "as_json", is_flag=True)
def train(config_file: str | None, job_id: int | None, sets: tuple[str, ...],
          as_json: bool) -> None:
    """Train a PPO placement policy on simrs and record it in MLflow."""
    import signal

    from app.training.config import TrainConfig
    from app.training.entrypoint import run_training

    # SIGTERM (a cancel) unwinds normally, so the MLflow run is closed instead of left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    services = common.services()
    if job_id is not None:
        if config_file:
            raise OppenError("give --config or --job-id, not both")
        data = dict(services.queue.get(job_id).config)
    else:
        data = TrainConfig.from_file(config_file).to_dict() if config_file else {}
    data.update(common.parse_sets(sets))
    cfg = TrainConfig.from_dict(data)
    record = (lambda run_id: services.queue.record_run(job_id, run_id)) if job_id else None
    outcome = run_training(cfg, services.tracker, job_id, on_run_started=record)
    if as_json:
        common.emit_json({"run_id": outcome.run_id, "global_step": outcome.global_step,
                    "steps_per_second": outcome.steps_per_second,
                    "evaluation": outcome.evaluation})
        return
    click.echo(f"run {outcome.run_id}: {outcome.global_step} steps at "
               f"{outcome.steps_per_second:,.0f} steps/s")
    for name, row in outcome.evaluation.items():
        click.echo(f"  {name:>10}: mean wait {row['mean_wait_s']:.1f}s, "
                   f"bounded slowdown {row['mean_bounded_slowdown']:.3f}")
