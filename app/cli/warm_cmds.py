"""`oppen warm start|stop|status`: the warm-start server that local jobs and `oppen train`
fork from, so a short run does not spend seconds importing PyTorch and MLflow."""

from __future__ import annotations

import time

import click

from app.cli import common


@click.group(cls=common.OppenGroup)
def warm() -> None:
    """The warm-start server (the dispatcher starts one by itself)."""


@warm.command("start")
@click.option("--wait/--no-wait", default=True, help="Return once it answers")
def warm_start(wait: bool) -> None:
    """Start a warm-start server for this home, unless one runs; it exits when idle."""
    from app.core.executors import warm as server

    services = common.services()
    spec = services.warm_server()
    server.launch_server(spec.socket, spec.entry, spec.preload, {
        "OPPEN_HOME": str(services.settings.resolved_home),
        "OPPEN_DATABASE_URL": services.settings.resolved_database_url,
        "OPPEN_MLFLOW_TRACKING_URI": services.settings.resolved_tracking_uri},
        services.settings.python_executable, spec.idle_s,
        services.settings.logs_dir / "warm-server.log", spec.warmup)
    deadline = time.monotonic() + 120
    while wait and not server.answering(spec.socket):
        if time.monotonic() > deadline:
            common.fail(f"the warm-start server did not answer within 2 minutes; see "
                        f"{services.settings.logs_dir / 'warm-server.log'}")
        time.sleep(0.2)
    click.echo(f"warm-start server at {spec.socket}"
               + ("" if wait else " (starting)") + f"; it exits after {spec.idle_s:g} s idle")


@warm.command("stop")
def warm_stop() -> None:
    """Stop the warm-start server (runs it started go on)."""
    from app.core.executors import warm as server
    from app.core.settings import load_settings

    path = load_settings().warm_socket
    click.echo("stopped" if server.stop_server(path) else "no warm-start server was running")


@warm.command("status")
def warm_status() -> None:
    """Whether a warm-start server answers for this home."""
    from app.core.executors import warm as server
    from app.core.settings import load_settings

    path = load_settings().warm_socket
    click.echo(f"running at {path}" if server.answering(path) else "not running")
