"""`oppen sim replay`: run a heuristic over an SWF trace in simrs."""

from __future__ import annotations

import click

from app.cli import common

# simrs.PRIORITIES with simrs.CLAIRVOYANT_PRIORITIES, and simrs.PLACEMENTS, listed so
# `--help` needs no simrs import.
POLICIES = ["fcfs", "sjf", "smallest", "f1", "wfp3", "unicep", "clairvoyant"]
PLACEMENTS = ["first_fit", "best_fit", "best_fit_mem", "worst_fit", "random", "tetris"]


@click.group(cls=common.OppenGroup)
def sim() -> None:
    """Drive the simulator directly."""


@sim.command("replay")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False),
              help="SWF trace file")
@click.option("--workload", "workload_path", type=click.Path(dir_okay=False),
              help="Instead of a trace: a training config whose generated workload is "
                   "replayed as hierarchical episodes (a job from the whole queue, then its "
                   "host: --policy, then --placement), one per --seeds")
@click.option("--seeds", help="With --workload: episode seeds, e.g. 42,43 or 100-109 "
              "(default: the config's eval_seeds)")
@click.option("--policy", type=click.Choice(POLICIES), required=True,
              help="The job rule; clairvoyant is shortest actual run time first, which no "
                   "scheduler knows: a bound on what better run-time estimates gain over sjf")
@click.option("--backfill", type=click.Choice(["none", "shadow", "easy"]), default="none",
              show_default=True)
@click.option("--protocol", type=click.Choice(["full", "rlscheduler"]), default="full",
              show_default=True,
              help="full: textbook replay (true waits, makespan utilisation); rlscheduler: "
                   "SC'20's 10 windows of 1,024 jobs and its semantics")
@click.option("--metric", type=click.Choice(["bsld", "util"]), default="bsld",
              show_default=True)
@click.option("--placement", type=click.Choice(PLACEMENTS),
              default="first_fit", show_default=True)
@click.option("--load-scale", type=click.FloatRange(min=0.0, min_open=True), default=1.0,
              show_default=True, help="Compress inter-arrival times by this factor")
@click.option("--start", type=click.IntRange(min=0), default=0, help="First job (full)")
@click.option("--length", type=click.IntRange(min=1), default=None, help="Jobs (full)")
@click.option("--json", "as_json", is_flag=True)
def sim_replay(trace_path: str | None, workload_path: str | None, seeds: str | None,
               policy: str, backfill: str, protocol: str, metric: str, placement: str,
               load_scale: float, start: int, length: int | None, as_json: bool) -> None:
    """Replay a trace with a heuristic and print per-window values and their mean; with
    --workload, a generated hierarchical workload with a heuristic pair, per seed."""
    if (trace_path is None) == (workload_path is None):
        raise common.OppenError("give --trace FILE or --workload CONFIG (one of the two)")
    if workload_path is not None:
        _replay_workload(workload_path, seeds, policy, placement, metric, as_json)
        return
    if seeds is not None:
        raise common.OppenError("--seeds applies to --workload; a trace replays its own jobs")
    from app.training.replay import replay

    result = replay(trace_path, policy, backfill, protocol, metric, placement, load_scale,
                    start, length)
    if as_json:
        common.emit_json(result.to_dict())
        return
    label = "average bounded slowdown" if metric == "bsld" else "utilisation"
    click.echo(f"{policy} backfill={backfill} protocol={protocol}: {label}")
    for w in result.windows:
        click.echo(f"  jobs {w['start']}..{w['start'] + w['length'] - 1}: {w['value']:.4f}")
    click.echo(f"mean: {result.mean:.4f}")


def _replay_workload(path: str, seeds: str | None, policy: str, placement: str, metric: str,
                     as_json: bool) -> None:
    from app.cli.policy_cmds import parse_seeds
    from app.training.replay import replay_workload

    result = replay_workload(path, policy, placement, metric, parse_seeds(seeds))
    if as_json:
        common.emit_json(result.to_dict())
        return
    label = "average bounded slowdown" if metric == "bsld" else "utilisation"
    click.echo(f"{result.policy} on {path} (hierarchical): {label}, mean wait")
    for w in result.windows:
        click.echo(f"  seed {w['seed']}, {w['length']:,} jobs: {w['value']:.4f}, "
                   f"{w['mean_wait_s']:,.1f} s")
    click.echo(f"mean: {result.mean:.4f}, {result.details['mean_wait_s']:,.1f} s")
