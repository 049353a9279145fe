"""`oppen dashboard` (the operator's view) and `oppen ui` (MLflow's, for the plots)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import click

from app.cli import common


@click.command()
@click.option("--watch", "-w", is_flag=True, help="Refresh in place until Ctrl-C")
@click.option("-n", "--interval", type=click.FloatRange(min=0.2), default=2.0,
              show_default=True, help="Seconds between refreshes with --watch")
@click.option("--recent", type=click.IntRange(1, 200), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document (schema_version 2)")
def dashboard(watch: bool, interval: float, recent: int, as_json: bool) -> None:
    """Cluster, queue, running and recent jobs, costs, budgets, alerts and health."""
    from app.dashboard.data import DashboardData
    from app.dashboard.render import render
    from app.dashboard.render import watch as watch_loop

    ops = common.operations()
    if as_json:
        click.echo(json.dumps(ops.dashboard(recent), default=str, indent=2))
    elif watch:
        watch_loop(lambda: DashboardData.from_dict(ops.dashboard(recent)), common.console(),
                   interval)
    else:
        render(DashboardData.from_dict(ops.dashboard(recent)), common.console())


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(port: int, host: str) -> None:
    """Open the MLflow UI on Oppen's tracking store (Ctrl-C stops it)."""
    services = common.services()
    uri = services.settings.resolved_tracking_uri
    if uri.startswith(("http://", "https://")):
        click.echo(f"the tracking server is already a UI: open {uri}")
        return
    services.tracker.experiment_id()  # a fresh store is created before the UI reads it
    mlflow = shutil.which("mlflow") or f"{sys.executable} -m mlflow"
    command = [*mlflow.split(), "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port)]
    click.echo(f"MLflow UI on http://{host}:{port} (Ctrl-C to stop)")
    try:
        subprocess.run(command, check=False)
    except KeyboardInterrupt:
        pass
