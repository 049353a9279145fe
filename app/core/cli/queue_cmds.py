"""`oppen queue …`: submit, list, show, cancel and retry jobs."""

from __future__ import annotations

import click

from app.core.cli import common


@click.group(cls=common.OppenGroup)
def queue() -> None:
    """Submit, list, show, cancel and retry training jobs."""


@queue.command("submit")
@click.argument("name")
@click.option("--priority", type=click.Choice(["urgent", "normal", "background"]),
              default="normal", show_default=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML or JSON file of training options")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override one training option (repeatable)")
@click.option("--cpus", type=float, default=1.0, show_default=True)
@click.option("--memory-mb", type=int, default=1024, show_default=True)
@click.option("--gpus", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON")
def queue_submit(name: str, priority: str, config_file: str | None, sets: tuple[str, ...],
                 cpus: float, memory_mb: int, gpus: int, as_json: bool) -> None:
    """Queue a training job called NAME."""
    from app.training.config import TrainConfig

    config = TrainConfig.from_file(config_file).to_dict() if config_file else {}
    config.update(common.parse_sets(sets))
    services = common.services()
    job = services.queue.submit(name, config, priority, cpus, memory_mb, gpus)
    view = services.queue.show(job.id)
    if as_json:
        common.emit_json({"job": view.to_dict()})
    else:
        click.echo(f"queued job {job.id} '{job.name}' ({priority}), position {view.position}")


@queue.command("list")
@click.option("--state", multiple=True,
              type=click.Choice(["queued", "dispatching", "running", "succeeded", "failed",
                                 "cancelled"]))
@click.option("--json", "as_json", is_flag=True)
def queue_list(state: tuple[str, ...], as_json: bool) -> None:
    """List jobs in queue order (highest priority first, FIFO within a class)."""
    views = common.services().queue.list(list(state) or None)
    if as_json:
        common.emit_json({"jobs": [v.to_dict() for v in views]})
        return
    from rich.table import Table

    table = Table()
    for col in ("id", "name", "priority", "state", "pos", "reason"):
        table.add_column(col)
    for v in views:
        j = v.job
        table.add_row(str(j.id), j.name, j.priority_class, j.state,
                      str(v.position or ""), (j.reason or "")[:50])
    common.console().print(table)


@queue.command("show")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def queue_show(job_id: int, as_json: bool) -> None:
    """Show one job with its state history."""
    d = common.services().queue.show(job_id).to_dict()
    if as_json:
        common.emit_json({"job": d})
        return
    click.echo(f"job {d['id']} '{d['name']}': {d['state']} ({d['priority_class']})"
               + (f", position {d['position']}" if d["position"] else ""))
    if d["mlflow_run_id"]:
        click.echo(f"  mlflow run: {d['mlflow_run_id']}")
    for e in d["events"]:
        click.echo(f"  {e['at']}  {e['from'] or '-'} -> {e['to']}  {e['reason']}")


@queue.command("cancel")
@click.argument("job_id", type=int)
def queue_cancel(job_id: int) -> None:
    """Cancel a job (running jobs stop on the dispatcher's next tick)."""
    job = common.services().queue.cancel(job_id)
    click.echo(f"job {job.id}: {job.state} ({job.reason})")


@queue.command("retry")
@click.argument("job_id", type=int)
def queue_retry(job_id: int) -> None:
    """Return a failed job to the queue."""
    job = common.services().queue.retry(job_id)
    click.echo(f"job {job.id}: {job.state}")
