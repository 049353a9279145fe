"""`oppen dispatcher run`: the dispatcher in the foreground."""

from __future__ import annotations

from typing import Any

import click

from app.cli import common


@click.group(cls=common.OppenGroup)
def dispatcher() -> None:
    """Run the dispatcher that launches queued jobs."""


@dispatcher.command("run")
@click.option("--once", is_flag=True, help="Run a single tick and exit")
@click.option("--exit-when-idle", is_flag=True, help="Stop once nothing is queued or running")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between ticks (default: settings)")
def dispatcher_run(once: bool, exit_when_idle: bool, interval: float | None) -> None:
    """Dispatch until SIGTERM/Ctrl-C (or once, or until idle)."""
    services = common.services()
    d = services.dispatcher()

    def show(report: Any) -> None:
        for job_id in report.launched:
            click.echo(f"launched job {job_id}")
        for job_id in report.adopted:
            click.echo(f"found job {job_id} running after a restart")
        for job_id, state in report.finished:
            click.echo(f"job {job_id} {state}")
        for job_id in report.retried:
            click.echo(f"job {job_id} failed by infrastructure; queued for a retry")
        if not report.leader:
            click.echo("another dispatcher holds the lease; standing by")

    if once:
        show(d.tick())
        d.lease.release()
        return
    d.run(interval or services.settings.dispatch_interval_s, exit_when_idle, on_tick=show)
