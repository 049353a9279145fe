"""`oppen eval` and `oppen policy serve`: using trained policies."""

from __future__ import annotations

import time

import click

from app.cli import common


def parse_seeds(raw: str | None) -> list[int] | None:
    """`1,2,3`, or ranges such as `100-139` (both ends included), or both mixed."""
    if raw is None:
        return None
    spans: list[range] = []
    try:
        for part in (p.strip() for p in raw.split(",")):
            if not part:
                continue
            low, sep, high = part.partition("-")
            if sep and low:
                if int(high) < int(low):
                    raise ValueError
                spans.append(range(int(low), int(high) + 1))
            else:
                spans.append(range(int(part), int(part) + 1))
    except ValueError:
        raise common.OppenError(
            f"--seeds expects integers or low-high ranges separated by commas, got {raw!r}"
        ) from None
    # Counted before expanding, so a typo such as 0-10000000000 cannot exhaust memory.
    count = sum(len(span) for span in spans)
    if count == 0:
        raise common.OppenError("--seeds needs at least one seed")
    if any(span.start < 0 for span in spans):
        raise common.OppenError(f"--seeds must be >= 0, got {raw!r}")
    if count > 10_000:
        raise common.OppenError(f"--seeds names {count:,} seeds; at most 10,000")
    return [seed for span in spans for seed in span]


# What `oppen eval --set` may change: the generated workload, not the policy.
WORKLOAD_OPTIONS = ("episode_length", "num_hosts", "mean_interarrival_s", "max_jobs_per_step",
                    "host_cores", "host_mem_mb", "job_cores", "job_mem_mb")


@click.command("eval")
@click.option("--checkpoint", "checkpoint_path", required=True,
              type=click.Path(dir_okay=False), help="A checkpoint written by oppen train")
@click.option("--seeds", help="Workload seeds, comma-separated (default: the run's; under the "
              "rlscheduler protocol, RLScheduler's windows, or one drawn window per seed)")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False),
              help="The trace to evaluate on, where the run's own path does not exist here")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Evaluate on another workload than the run's: one of its workload options "
                   f"({', '.join(WORKLOAD_OPTIONS)}), e.g. episode_length=10000; repeatable")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(checkpoint_path: str, seeds: str | None, trace_path: str | None,
             sets: tuple[str, ...], as_json: bool) -> None:
    """Set a trained policy against its mode's baseline heuristics."""
    import dataclasses

    import torch

    from app.core.settings import load_settings
    from app.training.config import TrainConfig
    from app.training.evaluate import baselines, evaluate_config, policy_choosers
    from app.training.inference import LoadedPolicy

    loaded = LoadedPolicy.from_checkpoint(checkpoint_path,
                                          trace_dirs=load_settings().resolved_trace_dirs)
    cfg = loaded.config
    if trace_path is not None:
        if not cfg.trace:
            raise common.OppenError("--trace applies to policies trained on a trace")
        cfg = dataclasses.replace(cfg, trace=trace_path)
    overrides = common.parse_sets(sets)
    if overrides:
        unknown = sorted(set(overrides) - set(WORKLOAD_OPTIONS))
        if unknown:
            raise common.OppenError(f"--set: {', '.join(unknown)} is not a workload option; "
                                    f"choose from {', '.join(WORKLOAD_OPTIONS)}")
        if cfg.trace:
            raise common.OppenError("--set changes a generated workload; this policy was "
                                    "trained on a trace (use --trace)")
        if overrides.get("num_hosts", cfg.num_hosts) != cfg.num_hosts \
                and cfg.mode == "hierarchical":
            raise common.OppenError(f"--set num_hosts: a hierarchical policy reads exactly the "
                                    f"{cfg.num_hosts} hosts it was trained on")
        # Validated as a training config is: the same bounds and messages.
        cfg = TrainConfig.from_dict({**cfg.to_dict(), **overrides})
    choosers = {**policy_choosers(loaded.policy, torch.device("cpu"), cfg.mode),
                **baselines(cfg.mode)}
    started = time.monotonic()

    def progress(name: str, done: int, total: int) -> None:
        # Long evaluations (a 1,000-job episode per seed per policy) say how far they are.
        click.echo(f"evaluated {name} ({done} of {total}, {time.monotonic() - started:.1f} s)",
                   err=True)

    table = evaluate_config(cfg, choosers, parse_seeds(seeds), progress)
    used = parse_seeds(seeds) or list(cfg.eval_seeds)
    doc: dict[str, object] = {"checkpoint": checkpoint_path, "mode": cfg.mode,
                              "protocol": cfg.protocol}
    if overrides:
        doc["workload"] = {k: getattr(cfg, k) for k in overrides}
    if cfg.protocol == "rlscheduler":
        from app.training.rlscheduler_eval import windows

        used = windows(cfg.env_options()["trace"].num_jobs, parse_seeds(seeds))
        doc["windows"] = used
    else:
        doc["seeds"] = used
    if as_json:
        common.emit_json({**doc, "results": table})
        return
    from app.training.report import evaluation_markdown

    click.echo(evaluation_markdown(table, used), nl=False)


@click.group(cls=common.OppenGroup)
def policy() -> None:
    """Serve trained policies."""


@policy.command("select")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="A run's checkpoint folder (its --checkpoint-dir)")
@click.option("--seeds", required=True, help="Validation seeds, e.g. 100-139: workload seeds, "
              "or under the rlscheduler protocol one drawn window per seed. Keep them apart "
              "from the seeds you report")
@click.option("--copy-to", type=click.Path(dir_okay=False),
              help="Copy the chosen checkpoint here")
@click.option("--json", "as_json", is_flag=True)
def policy_select(run_dir: str, seeds: str, copy_to: str | None, as_json: bool) -> None:
    """Score every checkpoint of a run on validation episodes; the best first."""
    import shutil

    from app.training.selection import rank

    used = parse_seeds(seeds) or []
    ranked = rank(run_dir, used)
    if copy_to is not None:
        shutil.copyfile(ranked[0].path, copy_to)
    if as_json:
        common.emit_json({"run_dir": run_dir, "seeds": used, "chosen": str(ranked[0].path),
                          "checkpoints": [{"path": str(s.path), "global_step": s.global_step,
                                           "metric": s.metric} for s in ranked]})
        return
    click.echo(f"{len(ranked)} checkpoints on {len(used)} validation episodes "
               "(the run's headline metric, lower is better):")
    for s in ranked:
        click.echo(f"  {s.metric:12.4f}  step {s.global_step:>10,}  {s.path}")
    click.echo(f"chosen: {ranked[0].path}" + (f" (copied to {copy_to})" if copy_to else ""))


@policy.command("serve")
@click.option("--checkpoint", "checkpoint_path", required=True,
              type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--max-body-bytes", type=click.IntRange(1024, 1 << 30),
              default=16 * 1024 * 1024, show_default=True,
              help="Largest request body accepted (413 above)")
def policy_serve(checkpoint_path: str, host: str, port: int, max_body_bytes: int) -> None:
    """HTTP decisions: POST /v1/decide {hosts: [...], job: {...}} -> {host: i}."""
    import signal
    import sys

    import uvicorn

    from app.training.inference import LoadedPolicy
    from app.training.serve import create_app
    from app.web.access import log_requests_to_stderr

    app = create_app(LoadedPolicy.from_checkpoint(checkpoint_path), max_body_bytes)
    log_requests_to_stderr()
    click.echo(f"oppen policy serve: http://{host}:{port}/v1/decide "
               f"({checkpoint_path}); stop with Ctrl-C or SIGTERM", err=True)
    # uvicorn shuts down gracefully on SIGTERM or Ctrl-C, then raises the signal again
    # under the handlers it found: these make that a clean exit (status 0).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
