"""`oppen queue …`: submit (one or a batch), list, show, cancel, retry, re-prioritise and
render jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from app.cli import common
from app.core.money import usd
from app.core.priority import PRIORITY_CLASSES
from app.core.states import JobState

PRIORITY_CHOICE = click.Choice(list(PRIORITY_CLASSES))


@click.group(cls=common.OppenGroup)
def queue() -> None:
    """Submit, list, show, cancel, retry and re-prioritise training jobs."""


def _eta(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else ""


@queue.command("submit")
@click.argument("name")
@click.option("--priority", default="normal", show_default=True,
              metavar="urgent|normal|background")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML or JSON file of training options")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override one training option (repeatable)")
# Numbers are read as typed and judged by the submission contract, as every entry point's are.
@click.option("--cpus", default="1", show_default=True, metavar="NUMBER")
@click.option("--memory-mb", default="1024", show_default=True, metavar="INTEGER")
@click.option("--gpus", default="0", show_default=True, metavar="INTEGER")
@click.option("--team", default=None,
              help="Owning team (default: the server token's team; locally 'default')")
@click.option("--project", default="default", show_default=True)
@click.option("--max-attempts", default=None, metavar="INTEGER",
              help="Attempts when infrastructure fails the job (default: settings)")
@click.option("--max-runtime", "max_runtime_s", default=None, metavar="SECONDS",
              help="Seconds of running after which the job is stopped as a timeout")
@click.option("--spot", is_flag=True, help="Run on spot capacity (cheaper, interruptible)")
@click.option("--start-after", default=None,
              help="Do not start before this ISO time (pricing zone if no offset)")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON")
def queue_submit(name: str, priority: str, config_file: str | None, sets: tuple[str, ...],
                 cpus: str, memory_mb: str, gpus: str, team: str | None, project: str,
                 max_attempts: str | None, max_runtime_s: str | None, spot: bool,
                 start_after: str | None, as_json: bool) -> None:
    """Queue a training job called NAME."""
    from app.training.config import TrainConfig

    config = TrainConfig.from_file(config_file).to_dict() if config_file else {}
    config.update(common.parse_sets(sets))
    n = common.number
    item: dict[str, Any] = dict(name=name, config=config, priority=priority, cpus=n(cpus),
                                memory_mb=n(memory_mb), gpus=n(gpus), team=team,
                                project=project, max_attempts=n(max_attempts),
                                max_runtime_s=n(max_runtime_s), spot=spot,
                                start_after=start_after)
    d = common.operations().submit({k: v for k, v in item.items() if v is not None})
    if as_json:
        common.emit_json({"job": d})
    else:
        click.echo(f"queued job {d['id']} '{d['name']}' ({priority}), position {d['position']}, "
                   f"estimated {d['estimated_duration_s'] / 60:.1f} min and "
                   f"{usd(d['estimated_cost_usd'])}")
        for event in d["events"][:1]:
            for warning in event["reason"].split("; soft budget warning: ")[1:]:
                click.echo(f"warning: {warning}", err=True)


def _read_batch(path: str) -> list[Any]:
    """A JSON list of jobs, or a TOML file with [[jobs]] tables."""
    import tomllib

    from app.core.errors import ConfigError

    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)["jobs"] if file.suffix == ".toml" else json.loads(text)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: expected a JSON list of jobs or TOML [[jobs]] tables "
                          f"({exc})") from None
    if isinstance(data, dict) and "jobs" in data:
        data = data["jobs"]
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of jobs")
    return data


@queue.command("submit-batch")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def queue_submit_batch(file: str, as_json: bool) -> None:
    """Queue every job in FILE at once, or none of them.

    FILE is a JSON list (or TOML [[jobs]] tables) of objects with name and optionally config,
    priority, cpus, memory_mb, gpus, team, project, max_attempts, max_runtime_s.
    """
    from app.core.queue import BatchError

    items = _read_batch(file)
    try:
        ids = common.operations().submit_batch(items)["queued"]
    except BatchError as exc:
        if as_json:
            common.emit_json({"queued": [], "errors": exc.errors})
        else:
            click.echo(f"error: batch rejected, nothing queued ({len(exc.errors)} invalid "
                       f"of {len(items)}):", err=True)
            for e in exc.errors:
                click.echo(f"  item {e['index']} ({e['name']}): {e['error']}", err=True)
        raise SystemExit(common.EXIT_CONFIG_ERROR) from None
    if as_json:
        common.emit_json({"queued": ids, "errors": []})
    else:
        click.echo(f"queued {len(ids)} jobs: {ids[0]}..{ids[-1]}")


@queue.command("list")
@click.option("--state", multiple=True,
              type=click.Choice([state.value for state in JobState]))
@click.option("--team", default=None, help="Only this team's jobs")
@click.option("--priority", type=PRIORITY_CHOICE, default=None, help="Only this class")
@click.option("--limit", type=click.IntRange(1, 1000), default=200, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def queue_list(state: tuple[str, ...], team: str | None, priority: str | None, limit: int,
               offset: int, as_json: bool) -> None:
    """List jobs in queue order (highest priority first, FIFO within a class), with each
    waiting job's position, why it waits, and when it should start."""
    page = common.operations().list_jobs(list(state) or None, team, priority, limit, offset)
    if as_json:
        common.emit_json(page)
        return
    from rich.table import Table

    table = Table()
    for col in ("id", "name", "priority", "state", "pos", "waiting / outcome", "starts",
                "cost"):
        table.add_column(col, no_wrap=col != "name", min_width=8 if col == "name" else None)
    for d in page["jobs"]:
        # The reason's name only; `oppen queue show ID` gives the detail.
        why = d["pending_reason"] or (d["reason"] or "")[:40]
        position = d["position"]
        if d["state"] == "waiting":  # held by Kueue: its place in the cluster's queue
            why, position = "kueue: waiting for quota", d["kueue_position"]
        table.add_row(str(d["id"]), d["name"], d["priority_class"], d["state"],
                      str(position or ""), why, _eta(d["eta_start"])[11:16],
                      usd(d["estimated_cost_usd"]))
    common.console().print(table)
    _say_if_the_dispatcher_is_not_well()


def _say_if_the_dispatcher_is_not_well() -> None:
    """Waiting jobs wait for a dispatcher: say so when none leads or the leader is degraded."""
    lead = common.operations().queue_status()["dispatcher"]
    if lead is None or not lead.get("leading", True):
        click.echo("note: no dispatcher is running, so nothing starts (oppen dispatcher run, "
                   "or oppen serve)", err=True)
    elif lead.get("degraded"):
        click.echo(f"warning: the dispatcher is degraded: {lead['degraded']}", err=True)


def _attempt_line(a: dict[str, Any]) -> str:
    """E.g. "attempt 2 resumed from step 6,144: succeeded, $0.0123"."""
    start = f"resumed from step {a['resumed_from_step']:,}" \
        if a["resumed_from_step"] is not None else "from step 0"
    cost = f", {usd(a['cost_usd'])}" if a["cost_usd"] is not None else ""
    why = f" ({a['reason'][:120]})" if a["reason"] and a["outcome"] != "succeeded" else ""
    return f"attempt {a['number']} {start}: {a['outcome']}{cost}{why}"


@queue.command("show")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def queue_show(job_id: int, as_json: bool) -> None:
    """Show one job: why it waits, its estimates, and its state history."""
    d = common.operations().show_job(job_id)
    if as_json:
        common.emit_json({"job": d})
        return
    click.echo(f"job {d['id']} '{d['name']}': {d['state']} ({d['priority_class']}, team "
               f"{d['team']}, attempt {d['attempts']} of {d['max_attempts']})"
               + (f", position {d['position']}" if d["position"] else ""))
    if d["pending_reason"]:
        click.echo(f"  waiting: {d['pending_reason']} ({d['pending_detail']}); "
                   f"estimated start {_eta(d['eta_start']) or 'N/A'}")
    if d["state"] == "waiting":
        place = f", place {d['kueue_position']} in its queue" if d["kueue_position"] else ""
        click.echo(f"  waiting: admitted to Kueue, waiting for quota{place}; not charged")
    click.echo(f"  estimate: {d['estimated_duration_s'] / 60:.1f} min, "
               f"{usd(d['estimated_cost_usd'])}")
    if d["progress_step"] is not None:
        click.echo(f"  progress: step {d['progress_step']:,} at "
                   f"{d['progress_sps'] or 0:,.0f} steps/s")
    if d["mlflow_run_id"]:
        click.echo(f"  mlflow run: {d['mlflow_run_id']}")
    if d["state"] in ("failed", "cancelled", "succeeded", "budget_exhausted") and d["reason"]:
        click.echo(f"  outcome: {d['reason']}")
    for a in d["attempt_history"]:
        click.echo(f"  {_attempt_line(a)}")
    for e in d["events"]:
        click.echo(f"  {e['at']}  {e['from'] or '-'} -> {e['to']}  {e['reason']}")
    if d["state"] in ("queued", "dispatching", "waiting", "running"):
        _say_if_the_dispatcher_is_not_well()  # its waiting reason assumes one ticks


@queue.command("logs")
@click.argument("job_id", type=int)
@click.option("-n", "--lines", type=click.IntRange(1, 10000), default=50, show_default=True)
def queue_logs(job_id: int, lines: int) -> None:
    """Print the last lines of a job's current (or last) attempt."""
    click.echo(common.operations().job_logs(job_id, lines)["logs"])


@queue.command("priority")
@click.argument("job_id", type=int)
@click.argument("priority", type=PRIORITY_CHOICE)
def queue_priority(job_id: int, priority: str) -> None:
    """Move a queued job to another priority class."""
    d = common.operations().set_priority(job_id, priority)
    click.echo(f"job {d['id']}: {d['priority_class']}, position {d['position']}")


@queue.command("render")
@click.argument("job_id", type=int)
def queue_render(job_id: int) -> None:
    """Print the Kubernetes Job manifest the job's next attempt would run as (YAML)."""
    import yaml

    from app.core.executors.k8s_manifest import render_job

    common.local_only("queue render")
    services = common.services()
    job = services.queue.get(job_id)
    if job.state == "queued":
        job.attempts += 1  # the attempt that admission would start
    click.echo(yaml.safe_dump(render_job(job, services.job_template()), sort_keys=False), nl=False)


@queue.command("cancel")
@click.argument("job_id", type=int)
def queue_cancel(job_id: int) -> None:
    """Cancel a job (running jobs stop on the dispatcher's next tick)."""
    d = common.operations().cancel_job(job_id)
    click.echo(f"job {d['id']}: {d['state']} ({d['reason']})")


@queue.command("resume")
@click.argument("job_id", type=int)
def queue_resume(job_id: int) -> None:
    """Return a failed, cancelled or budget-stopped job to the queue; its next attempt
    continues from the job's latest checkpoint."""
    d = common.operations().resume_job(job_id)
    click.echo(f"job {d['id']}: {d['state']} ({d['reason']})")


@queue.command("retry", hidden=True)
@click.argument("job_id", type=int)
@click.pass_context
def queue_retry(ctx: click.Context, job_id: int) -> None:
    """The same as `queue resume` (kept for scripts written before it)."""
    ctx.invoke(queue_resume, job_id=job_id)
