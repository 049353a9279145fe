"""Shared pieces of the command line: the error-handling group, JSON output, services."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console

from app.core.errors import ConfigError, OppenError

SCHEMA_VERSION = 1
EXIT_ERROR = 1
# Bad configuration or input, as with click's usage errors; the dispatcher does not retry it.
EXIT_CONFIG_ERROR = 2


def sleep_idle_openmp_threads() -> None:
    """Training commands call this first: PyTorch's idle OpenMP threads then sleep instead of
    spinning on the cores that simrs's threads (the environments, the fused place layers)
    need next. Place training measured 25-40% faster so, PyTorch-only training no slower
    (docs/benchmarks.md); single PyTorch decisions were slower, so serving keeps the default.
    A person's own OMP_WAIT_POLICY wins."""
    if "torch" not in sys.modules:  # the runtime reads the setting once, when torch loads
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def console() -> Console:
    return Console(no_color="NO_COLOR" in os.environ, highlight=False)


def emit_json(payload: dict[str, Any]) -> None:
    """One document on stdout, with the schema version first."""
    click.echo(json.dumps({"schema_version": SCHEMA_VERSION, **payload}, default=str, indent=2))


def services() -> Any:
    from app.services import Services

    return Services()


def operations() -> Any:
    """The API server's operations when OPPEN_SERVER_URL is set, else the local database's,
    so every command reads and behaves the same either way."""
    from app.core.settings import load_settings

    settings = load_settings()
    if settings.server_url:
        from app.api.client import RemoteOperations

        return RemoteOperations(settings.server_url, settings.token)
    from app.api.operations import LocalOperations
    from app.services import Services

    return LocalOperations(Services(settings))


def local_only(what: str) -> None:
    """For commands that need this machine's database or files, not a server's."""
    from app.core.settings import load_settings

    if load_settings().server_url:
        raise ConfigError(f"{what} works on the local database only; unset OPPEN_SERVER_URL "
                          f"(or run it where the server runs)")


def stdin_is_a_terminal() -> bool:
    return sys.stdin.isatty()


def fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class OppenGroup(click.Group):
    """Turns Oppen's own errors (and the simulator's) into one line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG_ERROR)
        except OppenError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # The reader left (`oppen ... | head`): stop quietly with the shell's SIGPIPE
            # status, and point stdout at /dev/null so the exit's flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:  # noqa: BLE001 - last line of defence for people
            if type(exc).__module__.startswith("simrs"):
                fail(str(exc))
            if os.environ.get("OPPEN_DEBUG"):
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (set OPPEN_DEBUG=1 for details)")


def parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    """--set KEY=VALUE pairs; values are read as JSON where they parse, else as text."""
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


def number(text: str | None) -> int | float | str | None:
    """A number option as typed, for the submission contract to judge: a whole number stays
    whole (however large), "nan", "inf" and "1e300" become floats, anything else stays text.
    So `--gpus inf` is refused by the contract in the same words as JSON's Infinity."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
