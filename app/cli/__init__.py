"""The `oppen` command line. Every failure a person can cause prints one line on stderr and
exits non-zero; read commands take --json and print one document with a schema_version."""

from __future__ import annotations

import os
import sys

import click

from app.cli import queue_control_cmds  # noqa: F401 - adds its commands to `queue`
from app.cli.agent_cmds import ask, chat, mcp_cmd
from app.cli.bench_cmds import bench
from app.cli.common import OppenGroup
from app.cli.config_cmds import config
from app.cli.cost_cmds import budget, cost
from app.cli.dashboard_cmds import dashboard, ui
from app.cli.db_cmds import db
from app.cli.demo_cmds import demo
from app.cli.dispatcher_cmds import dispatcher
from app.cli.policy_cmds import eval_cmd, policy
from app.cli.queue_cmds import queue
from app.cli.server_cmds import serve, token
from app.cli.sim_cmds import sim
from app.cli.sweep_cmds import sweep
from app.cli.train_cmds import train
from app.cli.warm_cmds import warm


@click.group(cls=OppenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="oppen", prog_name="oppen")
def cli() -> None:
    """Oppen: queue, watch and talk to PPO training jobs for cluster schedulers."""


for command in (ask, bench, budget, chat, config, cost, dashboard, db, demo, dispatcher,
                eval_cmd, mcp_cmd, policy, queue, serve, sim, sweep, token, train, ui, warm):
    cli.add_command(command)


def main() -> None:
    # MLflow logs store migrations at INFO; people (and job logs) only need its warnings.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    try:
        code = cli.main(prog_name="oppen", standalone_mode=False)
    except click.UsageError as exc:
        # One line, like every other error, with where to look for the right usage.
        where = exc.ctx.command_path if exc.ctx else "oppen"
        click.echo(f"error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
