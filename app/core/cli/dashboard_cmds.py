"""`oppen dashboard`: the operator's view."""

from __future__ import annotations

import json

import click

from app.core.cli import common


@click.command()
@click.option("--json", "as_json", is_flag=True)
def dashboard(as_json: bool) -> None:
    """Queued, running and recently finished jobs."""
    from app.core.dashboard import gather, render

    data = gather(common.services().engine)
    if as_json:
        click.echo(json.dumps(data.to_dict(), default=str, indent=2))
    else:
        render(data, common.console())
