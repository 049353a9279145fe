"""`oppen queue …`: submit (one or a batch), list, show, follow the logs of, cancel, resume,
re-prioritise and render jobs. The controls over the whole queue (pause, front, status, ETA,
best) are in app.cli.queue_control_cmds."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from app.cli import common
from app.core.errors import OppenError
from app.core.money import usd
from app.core.priority import PRIORITY_CLASSES
from app.core.states import JobState

PRIORITY_CHOICE = click.Choice(list(PRIORITY_CLASSES))
PRIORITY_SHORT = {"urgent": "urgent", "normal": "normal", "background": "bg"}
STATE_SHORT = {"budget_exhausted": "budget-out", "dispatching": "starting"}
SHORT_REASONS = {"next-tick": "next tick", "concurrency-limit": "concurrency",
                 "resource-quota": "quota", "class-quota": "class quota", "budget": "budget",
                 "higher-priority-ahead": "jobs ahead", "backoff": "backoff",
                 "scheduled-start": "start time", "admission-paused": "pause"}


@click.group(cls=common.OppenGroup)
def queue() -> None:
    """Submit, list, show, cancel, resume, pause and re-prioritise training jobs."""


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
              help="Do not start before this: an ISO time (pricing zone if no offset), HH:MM, "
                   "tonight, tomorrow [HH:MM], off-peak, or 'in N minutes'")
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

    lead = common.operations().queue_status()["dispatcher"]
    leading = lead is not None and lead.get("leading", True)
    rows = []
    for d in page["jobs"]:
        # A short name for the reason; `oppen queue show ID` gives the detail.
        why = SHORT_REASONS.get(d["pending_reason"] or "", d["pending_reason"]) \
            or (d["reason"] or "")[:24]
        if d["pending_reason"] == "next-tick" and not leading:
            why = "a dispatcher"
        position = d["position"]
        if d["state"] == "waiting":  # held by Kueue: its place in the cluster's queue
            why, position = "kueue quota", d["kueue_position"]
        rows.append([str(d["id"]), d["name"], PRIORITY_SHORT[d["priority_class"]],
                     STATE_SHORT.get(d["state"], d["state"]), str(position or ""), why,
                     _eta(d["eta_start"])[11:16],
                     usd(d["estimated_cost_usd"] if d["state"] in ("queued", "waiting")
                         or d["cost_usd"] in (None, "0") else d["cost_usd"])])
    heads = ("id", "name", "prio", "state", "pos", "waits for", "starts", "cost")
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(heads)]
    console = common.console()
    # Every column whole; the name gives way to fit the terminal (80 columns included).
    room = console.width - sum(w for i, w in enumerate(widths) if i != 1) - 2 * (len(heads) - 1)
    widths[1] = max(6, min(widths[1], room))
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 1), show_edge=False)
    for i, col in enumerate(heads):
        table.add_column(col, no_wrap=True, overflow="ellipsis", width=widths[i],
                         justify="right" if col in ("id", "pos", "cost") else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    more = page["total"] - page["offset"] - len(page["jobs"])
    if more > 0:
        click.echo(f"... {more} more (of {page['total']}); --offset "
                   f"{page['offset'] + len(page['jobs'])} shows the next", err=True)
    _say_if_the_dispatcher_is_not_well(lead)


def _say_if_the_dispatcher_is_not_well(lead: dict[str, Any] | None) -> None:
    """Waiting jobs wait for a dispatcher: say so when none leads or the leader is degraded
    (``lead``: the lease as the queue status gives it)."""
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
    if d["state"] in ("failed", "cancelled", "succeeded", "budget_exhausted", "pruned") \
            and d["reason"]:
        click.echo(f"  outcome: {d['reason']}")
    for a in d["attempt_history"]:
        click.echo(f"  {_attempt_line(a)}")
    for e in d["events"]:
        click.echo(f"  {e['at']}  {e['from'] or '-'} -> {e['to']}  {e['reason']}")
    if d["state"] in ("queued", "dispatching", "waiting", "running"):
        # Its waiting reason assumes one ticks.
        _say_if_the_dispatcher_is_not_well(common.operations().queue_status()["dispatcher"])


@queue.command("logs")
@click.argument("job_id", type=int)
@click.option("-n", "--lines", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing new lines until the job ends (Ctrl-C stops)")
def queue_logs(job_id: int, lines: int, follow: bool) -> None:
    """Print the last lines of a job's current (or last) attempt."""
    ops = common.operations()
    if not follow:
        click.echo(ops.job_logs(job_id, lines)["logs"])
        return
    from app.cli.follow import follow_logs

    follow_logs(ops, job_id, lines, click.echo)


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
    """Print the Kubernetes Job manifest the job's next attempt would run as (YAML); for a
    data-parallel job, its headless Service too (two YAML documents)."""
    import yaml

    from app.core.executors.k8s_manifest import render_job, render_service

    common.local_only("queue render")
    services = common.services()
    job = services.queue.get(job_id)
    if job.state == "queued":
        job.attempts += 1  # the attempt that admission would start
    template = services.job_template()
    service = render_service(job, template)
    if service is not None:
        click.echo(yaml.safe_dump(service, sort_keys=False) + "---")
    click.echo(yaml.safe_dump(render_job(job, template), sort_keys=False), nl=False)


def _chosen(ops: Any, job_ids: tuple[int, ...], state: str | None,
            wanted: tuple[str, ...]) -> list[dict[str, Any]]:
    """The jobs named, or (``state``) every such job, each as listed."""
    if job_ids and state:
        common.fail("name jobs or --state, not both")
    if state:  # click has checked it is one of ``wanted``
        return ops.list_jobs([state], limit=1000)["jobs"]
    if not job_ids:
        common.fail(f"which jobs? give ids, or --state {wanted[0]}")
    return [ops.show_job(j) for j in dict.fromkeys(job_ids)]


def _confirm_many(jobs: list[dict[str, Any]], verb: str, yes: bool) -> None:
    """One confirmation that lists the jobs, for more than one."""
    if len(jobs) < 2 or yes:
        return
    for d in jobs:
        click.echo(f"  #{d['id']} {d['name']!r} {d['state']}", err=True)
    if not common.stdin_is_a_terminal():
        common.fail(f"{verb} {len(jobs)} jobs: re-run with --yes to confirm")
    if not click.confirm(f"{verb.capitalize()} these {len(jobs)} jobs?", err=True):
        common.fail("nothing changed")


def _act_on_each(jobs: list[dict[str, Any]], act: Any) -> None:
    failed = 0
    for d in jobs:
        try:
            done = act(d["id"])
            click.echo(f"job {done['id']}: {done['state']} ({done['reason']})")
        except OppenError as exc:
            failed += 1
            click.echo(f"error: job {d['id']}: {exc}", err=True)
    if failed:
        sys.exit(common.EXIT_ERROR)


def _bulk(ops: Any, job_ids: tuple[int, ...], state: str | None, wanted: tuple[str, ...],
          verb: str, act: Any, yes: bool) -> None:
    """The jobs chosen, confirmed once when several, then ``act`` on each."""
    jobs = _chosen(ops, job_ids, state, wanted)
    if not jobs:
        click.echo(f"no {state} jobs")
        return
    _confirm_many(jobs, verb, yes)
    _act_on_each(jobs, act)


@queue.command("cancel")
@click.argument("job_ids", type=int, nargs=-1)
@click.option("--state", type=click.Choice(["queued", "waiting", "running"]), default=None,
              help="Every job in this state instead of ids")
@click.option("--yes", is_flag=True, help="Do not ask before acting on several jobs")
def queue_cancel(job_ids: tuple[int, ...], state: str | None, yes: bool) -> None:
    """Cancel jobs (running ones stop on the dispatcher's next tick). Several jobs are
    listed and confirmed once."""
    ops = common.operations()
    _bulk(ops, job_ids, state, ("queued", "waiting", "running"), "cancel", ops.cancel_job, yes)


@queue.command("resume")
@click.argument("job_ids", type=int, nargs=-1)
@click.option("--state", type=click.Choice(["failed", "cancelled", "budget_exhausted"]),
              default=None, help="Every job in this state instead of ids")
@click.option("--yes", is_flag=True, help="Do not ask before acting on several jobs")
def queue_resume(job_ids: tuple[int, ...], state: str | None, yes: bool) -> None:
    """Return failed, cancelled or budget-stopped jobs to the queue; each next attempt
    continues from the job's latest checkpoint. Several jobs are listed and confirmed once."""
    ops = common.operations()
    _bulk(ops, job_ids, state, ("failed", "cancelled", "budget_exhausted"), "resume",
          ops.resume_job, yes)


@queue.command("retry", hidden=True)
@click.argument("job_ids", type=int, nargs=-1)
@click.option("--state", type=click.Choice(["failed", "cancelled", "budget_exhausted"]),
              default=None)
@click.option("--yes", is_flag=True)
@click.pass_context
def queue_retry(ctx: click.Context, job_ids: tuple[int, ...], state: str | None,
                yes: bool) -> None:
    """The same as `queue resume` (kept for scripts written before it)."""
    ctx.invoke(queue_resume, job_ids=job_ids, state=state, yes=yes)
