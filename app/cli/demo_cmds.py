"""`oppen demo`: the main job on embedded defaults."""

from __future__ import annotations

import sys

import click

from app.cli import common


@click.command()
@click.option("--timesteps", type=click.IntRange(min=128), default=2048, show_default=True,
              help="Training steps per demo job")
def demo(timesteps: int) -> None:
    """The main job: queue three jobs through the agent, dispatch them, show the dashboard."""
    from app.cli.demo import run_demo

    ok = run_demo(common.services(), common.console(), timesteps)
    if not ok:
        sys.exit(common.EXIT_ERROR)
