"""`oppen serve` (the API server with the dispatcher beside it) and `oppen token …`."""

from __future__ import annotations

import click

from app.cli import common


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 in a pod)")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--dispatcher/--no-dispatcher", default=True, show_default=True,
              help="Run the dispatcher in this process too")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between dispatcher ticks (default: settings)")
def serve(host: str, port: int, dispatcher: bool, interval: float | None) -> None:
    """Serve the Oppen API over HTTP, dispatching queued jobs, until SIGTERM/Ctrl-C."""
    from app.api.serve import run_server

    common.local_only("serve")
    run_server(common.services(), host, port, dispatcher, interval)


@click.group(cls=common.OppenGroup)
def token() -> None:
    """Create, list and revoke the API server's bearer tokens."""


@token.command("create")
@click.option("--team", required=True, help="The team the token acts for")
@click.option("--role", type=click.Choice(["viewer", "submitter", "admin"]), required=True,
              help="viewer reads; submitter also submits and cancels; admin manages all")
@click.option("--name", default="", help="A label to recognise it by")
@click.option("--json", "as_json", is_flag=True)
def token_create(team: str, role: str, name: str, as_json: bool) -> None:
    """Create a token; it is printed once and stored only hashed."""
    made = common.operations().create_token(team, role, name)
    if as_json:
        common.emit_json({"token": made})
        return
    click.echo(made["token"])
    click.echo(f"token {made['id']} '{made['name']}': team {made['team']}, role {made['role']}. "
               "Keep it now: only its hash is stored.", err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
def token_list(as_json: bool) -> None:
    """Every token (never the secrets)."""
    rows = common.operations().list_tokens()["tokens"]
    if as_json:
        common.emit_json({"tokens": rows})
        return
    for t in rows:
        state = "revoked" if t["revoked"] else f"last used {t['last_used_at'] or 'never'}"
        click.echo(f"{t['id']:>4} {t['name']:<24} team {t['team']:<16} {t['role']:<9} {state}")
    if not rows:
        click.echo("no tokens")


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke a token; requests with it are refused at once."""
    t = common.operations().revoke_token(token_id)
    click.echo(f"token {t['id']} '{t['name']}' revoked")
