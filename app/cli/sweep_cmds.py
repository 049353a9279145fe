"""`oppen sweep create|list|show|stop|resume`: hyperparameter searches as Optuna studies whose
trials the dispatcher queues as jobs (docs/sweeps.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from app.cli import common
from app.core.errors import ConfigError
from app.core.money import usd


@click.group(cls=common.OppenGroup)
def sweep() -> None:
    """Hyperparameter searches: Optuna studies run as queued jobs."""


def _file(path: str) -> dict[str, Any]:
    """A sweep described in TOML or JSON (keys as `sweep create`'s options; [space] and
    [base_config] tables)."""
    import json
    import tomllib

    text = Path(path).read_text()
    try:
        data = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'TOML'}: "
                          f"{exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of sweep settings")
    return data


def parse_params(params: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``NAME=KIND:LOW:HIGH[:STEP]`` or ``NAME=choice:A,B,C`` into space tables (the
    space's own checks come when the sweep is created)."""
    from app.sweeps.space import ALIASES

    raw: dict[str, Any] = {}
    for text in params:
        name, sep, rest = text.partition("=")
        kind, _, args = rest.partition(":")
        if not sep or not name.strip() or not args:
            raise ConfigError(f"--param {text!r}: expected NAME=log:LOW:HIGH, "
                              "NAME=uniform:LOW:HIGH, NAME=int:LOW:HIGH[:STEP] or "
                              "NAME=choice:A,B,C")
        name, kind = name.strip(), ALIASES.get(kind.strip().lower(), kind.strip().lower())
        if name in raw:
            raise ConfigError(f"--param {name} is given twice")
        if kind == "categorical":
            raw[name] = {"type": kind, "choices": [_choice(v) for v in args.split(",")]}
            continue
        parts = args.split(":")
        if len(parts) not in (2, 3):
            raise ConfigError(f"--param {text!r}: a range is KIND:LOW:HIGH[:STEP]")
        numbers = [common.number(p.strip()) for p in parts]
        if any(isinstance(n, str) for n in numbers):
            raise ConfigError(f"--param {text!r}: the bounds must be numbers")
        raw[name] = {"type": kind, "low": numbers[0], "high": numbers[1]}
        if len(numbers) == 3:
            raw[name]["step"] = numbers[2]
    return raw


def _choice(text: str) -> Any:
    """A choice as typed: true/false, a number, else the word."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return common.number(text)


@sweep.command("create")
@click.argument("name", required=False)
@click.option("--file", "spec_file", type=click.Path(dir_okay=False, exists=True),
              help="TOML or JSON: the sweep's settings, with [space] and [base_config]")
@click.option("--param", "params", multiple=True, metavar="NAME=KIND:LOW:HIGH",
              help="An option to search: lr=log:1e-5:1e-2, ent_coef=uniform:0:0.05, "
                   "rollout_steps=int:32:256:32, clip_coef=choice:0.1,0.2,0.3")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="A training option every trial shares")
@click.option("--trials", "n_trials", type=int, help="Trials to run [20]")
@click.option("--parallel", "parallelism", type=int, help="Trials running at once [2]")
@click.option("--sampler", type=click.Choice(["tpe", "random", "grid", "qmc", "cmaes"]))
@click.option("--pruner", type=click.Choice(["median", "successive_halving", "hyperband",
                                             "none"]))
@click.option("--objective", help="mean_wait_s, mean_bounded_slowdown, p95_bounded_slowdown, "
                                  "mean_turnaround_s, makespan_s, utilization, versus_baseline")
@click.option("--direction", type=click.Choice(["minimize", "maximize"]))
@click.option("--seed", help="The sampler's seed, for a search that repeats")
@click.option("--max-cost", "max_cost_usd", help="Hard cap on the sweep's spend, in dollars")
@click.option("--priority", type=click.Choice(["urgent", "normal", "background"]))
@click.option("--team")
@click.option("--project")
@click.option("--cpus", help="Each trial's CPUs")
@click.option("--memory-mb", help="Each trial's memory")
@click.option("--gpus", help="Each trial's GPUs")
@click.option("--json", "as_json", is_flag=True)
def sweep_create(name: str | None, spec_file: str | None, params: tuple[str, ...],
                 sets: tuple[str, ...], as_json: bool, **options: Any) -> None:
    """Create a sweep; the dispatcher queues its trials from its next tick."""
    request: dict[str, Any] = _file(spec_file) if spec_file else {}
    if name:
        request["name"] = name
    if "name" not in request:
        raise ConfigError("give the sweep a name (oppen sweep create NAME ...)")
    if params:
        request["space"] = {**request.get("space", {}), **parse_params(params)}
    if sets:
        request["base_config"] = {**request.get("base_config", {}), **common.parse_sets(sets)}
    for key, value in options.items():
        if value is None:
            continue
        request[key] = common.number(value) if key in ("seed", "cpus", "memory_mb", "gpus") \
            else value
    if "space" not in request:
        raise ConfigError("give the options to search: --param NAME=KIND:LOW:HIGH (or a "
                          "[space] table in --file)")
    made = common.operations().create_sweep(request)["sweep"]
    if as_json:
        common.emit_json({"sweep": made})
        return
    cap = f", capped at {usd(made['max_cost_usd'])}" if made["max_cost_usd"] is not None \
        else ""
    click.echo(f"sweep {made['id']} '{made['name']}': {made['n_trials']} trials, "
               f"{made['parallelism']} at a time, {made['sampler']} sampler, "
               f"{made['pruner']} pruner, {made['direction']} {made['objective']}{cap}")
    for option, text in made["space"].items():
        click.echo(f"  {option:16} {text}")
    click.echo("the dispatcher queues its trials (oppen dispatcher run); "
               f"follow it with: oppen sweep show {made['name']}")


@sweep.command("list")
@click.option("--json", "as_json", is_flag=True)
def sweep_list(as_json: bool) -> None:
    """Every sweep you may see, newest first."""
    found = common.operations().list_sweeps()["sweeps"]
    if as_json:
        common.emit_json({"sweeps": found})
        return
    if not found:
        click.echo("no sweeps")
        return
    click.echo(f"{'ID':>4}  {'NAME':20} {'STATE':10} {'TRIALS':>9}  {'SAMPLER':8} "
               f"{'PRUNER':10} OBJECTIVE")
    for s in found:
        trials = f"{s['trials_finished']}/{s['n_trials']}"
        click.echo(f"{s['id']:>4}  {s['name'][:20]:20} {s['state']:10} {trials:>9}  "
                   f"{s['sampler']:8} {s['pruner'][:10]:10} {s['objective']}")


def _value(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())


@sweep.command("show")
@click.argument("sweep_ref", metavar="SWEEP")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False),
              help="Write the optimisation history and importances as PNGs here")
@click.option("--json", "as_json", is_flag=True)
def sweep_show(sweep_ref: str, plots_dir: str | None, as_json: bool) -> None:
    """A sweep's trials, its best trial and configuration, and parameter importances."""
    ops = common.operations()
    d = ops.show_sweep(sweep_ref)["sweep"]
    written: list[str] = []
    if plots_dir:
        common.local_only("writing a sweep's plots")
        from app.sweeps.results import write_plots

        services = common.services()
        written = [str(p) for p in write_plots(services.sweeps,
                                               services.sweeps.get(d["id"]), Path(plots_dir))]
    best_checkpoint = _checkpoint_of(d["best"]["job_id"]) if d["best"] else None
    if as_json:
        common.emit_json({"sweep": d, "plots": written, "best_checkpoint": best_checkpoint})
        return
    counts = ", ".join(f"{n} {state}" for state, n in sorted(d["counts"].items())) or "none yet"
    cap = f" of {usd(d['max_cost_usd'])} cap" if d["max_cost_usd"] is not None else ""
    click.echo(f"sweep {d['id']} '{d['name']}': {d['state']}"
               + (f" ({d['reason']})" if d["reason"] else ""))
    click.echo(f"  {d['sampler']} sampler, {d['pruner']} pruner, {d['direction']} "
               f"{d['objective']}; {d['n_trials']} trials, {d['parallelism']} at a time")
    click.echo(f"  trials: {counts}; spent {usd(d['spent_usd'])}{cap}")
    if d["best"]:
        b = d["best"]
        click.echo(f"best: trial {b['number']} (job {b['job_id']}), {d['objective']} "
                   f"{_value(b['value'])}: {_params(b['params'])}")
        if best_checkpoint:
            click.echo(f"  evaluate: oppen eval --checkpoint {best_checkpoint}")
            click.echo(f"  serve:    oppen policy serve --checkpoint {best_checkpoint}")
    if d["trials"]:
        # A pruned trial's value is its last report to the study.
        click.echo(f"{'#':>3}  {'STATE':8} {'VALUE':>10} {'COST':>10} {'PRUNED AT':>9}  "
                   f"{'JOB':>5}  PARAMS")
        for t in d["trials"]:
            pruned = "-" if t["pruned_at_step"] is None else f"{t['pruned_at_step']:,}"
            job = "-" if t["job_id"] is None else str(t["job_id"])
            click.echo(f"{t['number']:>3}  {t['state']:8} {_value(t['value']):>10} "
                       f"{usd(t['cost_usd']):>10} {pruned:>9}  {job:>5}  "
                       f"{_params(t['params'])}")
    if d["importances"]:
        click.echo("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                               d["importances"].items()))
    for path in written:
        click.echo(f"plot: {path}")


def _checkpoint_of(job_id: int | None) -> str | None:
    """Where the best trial's policy is, for `oppen eval` and `oppen policy serve`: its
    local checkpoint when this machine ran it, else its durable store."""
    if job_id is None:
        return None
    services = common.services()
    local = services.settings.resolved_home / "checkpoints" / f"job-{job_id}" / "latest.pt"
    if local.exists():
        return str(local)
    if services.settings.checkpoint_uri:
        from app.training.checkpoint_store import store_for_job

        return store_for_job(services.settings.checkpoint_uri, services.settings.resolved_home,
                             job_id).location
    return None


@sweep.command("stop")
@click.argument("sweep_ref", metavar="SWEEP")
@click.option("--json", "as_json", is_flag=True)
def sweep_stop(sweep_ref: str, as_json: bool) -> None:
    """Stop asking for trials and cancel the sweep's queued and running ones."""
    d = common.operations().stop_sweep(sweep_ref)["sweep"]
    if as_json:
        common.emit_json({"sweep": d})
        return
    click.echo(f"sweep {d['id']} '{d['name']}': stopped; resume with oppen sweep resume "
               f"{d['name']}")


@sweep.command("resume")
@click.argument("sweep_ref", metavar="SWEEP")
@click.option("--json", "as_json", is_flag=True)
def sweep_resume(sweep_ref: str, as_json: bool) -> None:
    """Ask for trials again, until the sweep's trial count is reached."""
    d = common.operations().resume_sweep(sweep_ref)["sweep"]
    if as_json:
        common.emit_json({"sweep": d})
        return
    click.echo(f"sweep {d['id']} '{d['name']}': running; the dispatcher queues its next "
               "trials")
