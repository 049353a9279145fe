"""`oppen dashboard` (the operator's view) and `oppen ui` (MLflow's, for the plots)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import click

from app.cli import common

# How long MLflow's server gets to stop after SIGTERM before it is killed.
STOP_GRACE_S = 10.0


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
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="MLflow server processes (one serves a person; each costs a start of MLflow)")
def ui(port: int, host: str, workers: int) -> None:
    """Open the MLflow UI on Oppen's tracking store (Ctrl-C stops it)."""
    services = common.services()
    uri = services.settings.resolved_tracking_uri
    if uri.startswith(("http://", "https://")):
        click.echo(f"the tracking server is already a UI: open {uri}")
        return
    services.tracker.experiment_id()  # a fresh store is created before the UI reads it
    mlflow = shutil.which("mlflow") or f"{sys.executable} -m mlflow"
    command = [*mlflow.split(), "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", str(workers)]
    click.echo(f"MLflow UI on http://{host}:{port} (Ctrl-C or SIGTERM to stop)")
    # MLflow's server runs in its own process group (it starts workers): a stop signal to
    # this command stops the whole group (SIGKILL after a grace), and this command exits 0.
    # MLflow's server-side job runner (seven huey consumers, each a start of MLflow) serves
    # GenAI scorers and prompt optimisation, which Oppen never asks for; it more than doubles
    # the start. A caller who sets the variable keeps their choice.
    env = {**os.environ}
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    server = subprocess.Popen(command, start_new_session=True, env=env)
    asked: list[float] = []

    def stop(*_: object) -> None:
        # Only signals here: waiting on the child from a handler would deadlock with the
        # wait below.
        asked.append(time.monotonic())
        _signal_group(server, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while server.poll() is None:
            try:
                server.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if asked and time.monotonic() - asked[0] > STOP_GRACE_S:
                    _signal_group(server, signal.SIGKILL)
    finally:
        _signal_group(server, signal.SIGKILL)  # workers left behind, if any
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal_group(server: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(server.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # already gone
