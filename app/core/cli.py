"""The `oppen` command line. Every failure a person can cause prints one line on stderr and
exits non-zero; read commands take --json and print one document with a schema_version."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console

from app.core.errors import OppenError

SCHEMA_VERSION = 1
EXIT_ERROR = 1


def _console() -> Console:
    return Console(no_color="NO_COLOR" in os.environ, highlight=False)


def _emit_json(payload: dict[str, Any]) -> None:
    click.echo(json.dumps({"schema_version": SCHEMA_VERSION, **payload}, default=str, indent=2))


def _services() -> Any:
    from app.core.services import Services

    return Services()


class OppenGroup(click.Group):
    """Turns Oppen's own errors (and the simulator's) into one line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except OppenError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - last line of defence for people
            if type(exc).__module__.startswith("simrs"):
                _fail(str(exc))
            if os.environ.get("OPPEN_DEBUG"):
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc} (set OPPEN_DEBUG=1 for details)")


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_ERROR)


@click.group(cls=OppenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="oppen", prog_name="oppen")
def cli() -> None:
    """Oppen: queue, watch and talk to PPO training jobs for cluster schedulers."""


# ---------------------------------------------------------------- queue
@cli.group(cls=OppenGroup)
def queue() -> None:
    """Submit, list, show, cancel and retry training jobs."""


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise OppenError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


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
    config.update(_parse_sets(sets))
    services = _services()
    job = services.queue.submit(name, config, priority, cpus, memory_mb, gpus)
    view = services.queue.show(job.id)
    if as_json:
        _emit_json({"job": view.to_dict()})
    else:
        click.echo(f"queued job {job.id} '{job.name}' ({priority}), position {view.position}")


@queue.command("list")
@click.option("--state", multiple=True,
              type=click.Choice(["queued", "dispatching", "running", "succeeded", "failed",
                                 "cancelled"]))
@click.option("--json", "as_json", is_flag=True)
def queue_list(state: tuple[str, ...], as_json: bool) -> None:
    """List jobs in queue order (highest priority first, FIFO within a class)."""
    views = _services().queue.list(list(state) or None)
    if as_json:
        _emit_json({"jobs": [v.to_dict() for v in views]})
        return
    from rich.table import Table

    table = Table()
    for col in ("id", "name", "priority", "state", "pos", "reason"):
        table.add_column(col)
    for v in views:
        j = v.job
        table.add_row(str(j.id), j.name, j.priority_class, j.state,
                      str(v.position or ""), (j.reason or "")[:50])
    _console().print(table)


@queue.command("show")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def queue_show(job_id: int, as_json: bool) -> None:
    """Show one job with its state history."""
    d = _services().queue.show(job_id).to_dict()
    if as_json:
        _emit_json({"job": d})
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
    job = _services().queue.cancel(job_id)
    click.echo(f"job {job.id}: {job.state} ({job.reason})")


@queue.command("retry")
@click.argument("job_id", type=int)
def queue_retry(job_id: int) -> None:
    """Return a failed job to the queue."""
    job = _services().queue.retry(job_id)
    click.echo(f"job {job.id}: {job.state}")


# ---------------------------------------------------------------- dispatcher
@cli.group(cls=OppenGroup)
def dispatcher() -> None:
    """Run the dispatcher that launches queued jobs."""


@dispatcher.command("run")
@click.option("--once", is_flag=True, help="Run a single tick and exit")
@click.option("--exit-when-idle", is_flag=True, help="Stop once nothing is queued or running")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between ticks (default: settings)")
def dispatcher_run(once: bool, exit_when_idle: bool, interval: float | None) -> None:
    """Dispatch until SIGTERM/Ctrl-C (or once, or until idle)."""
    services = _services()
    d = services.dispatcher()

    def show(report: Any) -> None:
        for job_id in report.launched:
            click.echo(f"launched job {job_id}")
        for job_id, state in report.finished:
            click.echo(f"job {job_id} {state}")
        if not report.leader:
            click.echo("another dispatcher holds the lease; standing by")

    if once:
        show(d.tick())
        d.lease.release()
        return
    d.run(interval or services.settings.dispatch_interval_s, exit_when_idle, on_tick=show)


# ---------------------------------------------------------------- train
@cli.command()
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
    services = _services()
    if job_id is not None:
        if config_file:
            raise OppenError("give --config or --job-id, not both")
        data = dict(services.queue.get(job_id).config)
    else:
        data = TrainConfig.from_file(config_file).to_dict() if config_file else {}
    data.update(_parse_sets(sets))
    cfg = TrainConfig.from_dict(data)
    record = (lambda run_id: services.queue.record_run(job_id, run_id)) if job_id else None
    outcome = run_training(cfg, services.tracker, job_id, on_run_started=record)
    if as_json:
        _emit_json({"run_id": outcome.run_id, "global_step": outcome.global_step,
                    "steps_per_second": outcome.steps_per_second,
                    "evaluation": outcome.evaluation})
        return
    click.echo(f"run {outcome.run_id}: {outcome.global_step} steps at "
               f"{outcome.steps_per_second:,.0f} steps/s")
    for name, row in outcome.evaluation.items():
        click.echo(f"  {name:>10}: mean wait {row['mean_wait_s']:.1f}s, "
                   f"bounded slowdown {row['mean_bounded_slowdown']:.3f}")


# ---------------------------------------------------------------- dashboard
@cli.command()
@click.option("--json", "as_json", is_flag=True)
def dashboard(as_json: bool) -> None:
    """Queued, running and recently finished jobs."""
    from app.core.dashboard import gather, render

    data = gather(_services().engine)
    if as_json:
        click.echo(json.dumps(data.to_dict(), default=str, indent=2))
    else:
        render(data, _console())


# ---------------------------------------------------------------- agent
def _approver(yes: bool, interactive: bool) -> Any:
    def approve(request: dict[str, Any]) -> bool:
        summary = f"{request['name']}({json.dumps(request['args'])})"
        if yes:
            return True
        if not interactive:
            click.echo(f"refused {summary}: it spends or destroys; re-run with --yes to allow",
                       err=True)
            return False
        return click.confirm(f"Run {summary}?", default=False)

    return approve


@cli.command()
@click.argument("text")
@click.option("--yes", is_flag=True, help="Approve spending or destructive actions")
@click.option("--json", "as_json", is_flag=True)
def ask(text: str, yes: bool, as_json: bool) -> None:
    """One turn with the agent."""
    from app.core.agent.agent import Agent

    if not text.strip():
        raise OppenError("ask needs some text")
    result = Agent(_services()).ask(text, _approver(yes, sys.stdin.isatty() and not as_json))
    if as_json:
        _emit_json({"answer": result.answer, "tool_calls": result.tool_calls,
                    "tool_results": result.tool_results, "refused": result.refused})
    else:
        click.echo(result.answer)


@cli.command()
@click.option("--yes", is_flag=True, help="Approve spending or destructive actions")
def chat(yes: bool) -> None:
    """The conversational REPL (exit with 'exit' or Ctrl-D)."""
    from app.core.agent.agent import Agent

    agent = Agent(_services())
    console = _console()
    console.print("Oppen chat. Ask about the queue or queue jobs; 'exit' to leave.")
    approve = _approver(yes, sys.stdin.isatty())
    while True:
        try:
            line = input("oppen> ")
        except EOFError:
            click.echo()
            return
        if line.strip() in {"exit", "quit"}:
            return
        if not line.strip():
            continue
        try:
            console.print(agent.ask(line, approve).answer)
        except OppenError as exc:
            click.echo(f"error: {exc}", err=True)


# ---------------------------------------------------------------- config & demo
@cli.group(cls=OppenGroup)
def config() -> None:
    """Inspect the effective configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True)
def config_show(as_json: bool) -> None:
    """Each setting, its value and where it came from (env, file or default)."""
    from app.core.settings import describe_sources, load_settings

    rows = describe_sources(load_settings())
    if as_json:
        _emit_json({"settings": {n: {"value": v, "source": s} for n, v, s in rows}})
        return
    for name, value, source in rows:
        click.echo(f"{name:22} {str(value):50} ({source})")


@cli.command()
@click.option("--timesteps", type=click.IntRange(min=128), default=2048, show_default=True,
              help="Training steps per demo job")
def demo(timesteps: int) -> None:
    """The main job: queue three jobs through the agent, dispatch them, show the dashboard."""
    from app.core.demo import run_demo

    ok = run_demo(_services(), _console(), timesteps)
    if not ok:
        sys.exit(EXIT_ERROR)


def main() -> None:
    # MLflow logs store migrations at INFO; people (and job logs) only need its warnings.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    cli(prog_name="oppen")
