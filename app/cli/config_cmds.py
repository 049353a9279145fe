"""`oppen config show`: the effective settings and their sources."""

from __future__ import annotations

import click

from app.cli import common


@click.group(cls=common.OppenGroup)
def config() -> None:
    """Inspect the effective configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True)
def config_show(as_json: bool) -> None:
    """Each setting, its value and where it came from (env, file or default)."""
    from app.core.settings import describe_sources, load_settings

    rows = describe_sources(load_settings())
    if as_json:
        common.emit_json({"settings": {n: {"value": v, "source": s} for n, v, s in rows}})
        return
    for name, value, source in rows:
        click.echo(f"{name:22} {str(value):50} ({source})")
