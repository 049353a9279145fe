"""`oppen bench …`: measured figures, each against a baseline taken in the same run."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli import common


def default_trace() -> Path | None:
    """The shared lublin_256 trace beside the checkout, when present."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "traces" / "lublin_256.swf"
        if candidate.is_file():
            return candidate
    return None


@click.group(cls=common.OppenGroup)
def bench() -> None:
    """Benchmarks (medians over repeats, ratios against a same-run baseline)."""


@bench.command("sim")
@click.option("--seconds", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Length of each timed sample")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None,
              help="SWF trace for the EASY replay timing (default: shared lublin_256)")
@click.option("--mode", type=click.Choice(["vector", "hierarchical"]), default="vector",
              show_default=True, help="vector: throughput against the Python reference; "
              "hierarchical: 10,000 jobs x 1,000 hosts in one pass, decision latency and memory")
@click.option("--json", "as_json", is_flag=True)
def bench_sim(seconds: float, repeats: int, trace_path: str | None, mode: str,
              as_json: bool) -> None:
    """simrs vector-env throughput, the Python reference, and a full EASY replay; or the
    hierarchical mode at production scale (--mode hierarchical)."""
    if mode == "hierarchical":
        _bench_hierarchical(as_json)
        return
    from app.bench.sim import run

    trace = Path(trace_path) if trace_path else default_trace()
    if trace_path and not trace.is_file():
        raise common.OppenError(f"trace not found: {trace_path}")
    r = run(seconds, repeats, trace)
    if as_json:
        common.emit_json({"benchmark": "sim", **r.to_dict()})
        return
    click.echo(f"place  (64 hosts, 256 envs): {r.place_steps_per_s:,.0f} steps/s")
    click.echo(f"pick   (window 128, 256 envs): {r.pick_steps_per_s:,.0f} steps/s")
    click.echo(f"python reference place: {r.reference_place_steps_per_s:,.0f} steps/s "
               f"-> simrs is {r.place_vs_reference:,.0f}x faster "
               f"(reference verified: {r.reference_verified})")
    if r.easy_replay_ms is not None:
        click.echo(f"EASY replay of {r.easy_replay_jobs:,} jobs: {r.easy_replay_ms:.1f} ms")


@bench.command("dashboard")
@click.option("--jobs", type=click.IntRange(min=1, max=100_000), default=10_000,
              show_default=True)
@click.option("--running", type=click.IntRange(min=1, max=1000), default=100,
              show_default=True)
@click.option("--repeats", type=click.IntRange(min=1, max=100), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_dashboard(jobs: int, running: int, repeats: int, as_json: bool) -> None:
    """Dashboard gather + render at JOBS jobs against RUNNING jobs alone (same run)."""
    from app.bench.dashboard import run

    if running > jobs:
        raise common.ConfigError("--running must not exceed --jobs")
    r = run(jobs, running, repeats)
    if as_json:
        common.emit_json({"benchmark": "dashboard", **r.to_dict()})
        return
    click.echo(f"dashboard, {r.jobs:,} jobs ({r.running} running): "
               f"{r.gather_render_ms:.0f} ms median; {r.baseline_jobs} jobs: "
               f"{r.baseline_gather_render_ms:.0f} ms ({r.scale_ratio:.1f}x)")


@bench.command("queue")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--database-url", default=None,
              help="Benchmark this (empty) PostgreSQL database instead of a temporary SQLite")
@click.option("--json", "as_json", is_flag=True)
def bench_queue(repeats: int, database_url: str | None, as_json: bool) -> None:
    """Queue and dispatcher with 10,000 jobs: batch submit, tick, list, status."""
    from app.bench.queue import run

    r = run(repeats, database_url)
    if as_json:
        common.emit_json({"benchmark": "queue", **r})
        return
    m, ok = r["median_ms"], r["meets_targets"]
    mark = {True: "ok", False: "MISSED"}
    click.echo(f"{r['database']}, {r['jobs']:,} jobs, medians of {r['repeats']}:")
    click.echo(f"  batch submit      {m['submit_batch_10k']:9.1f} ms  (< 1000: "
               f"{mark[ok['submit_batch_10k']]}); one at a time {m['submit_one_ms']:.2f} ms/job "
               f"-> batch {r['baseline']['batch_speedup']}x faster")
    click.echo(f"  tick, 10k queued  {m['tick_10k_queued']:9.1f} ms  (< 50: "
               f"{mark[ok['tick_10k_queued']]})")
    click.echo(f"  tick, 100 running {m['tick_100_running']:9.1f} ms")
    click.echo(f"  list (200 shown)  {m['list_10k']:9.1f} ms  (< 100: {mark[ok['list_10k']]})")
    click.echo(f"  status counts     {m['status_10k']:9.1f} ms  (< 100: {mark[ok['status_10k']]})")


@bench.command("api")
@click.option("--rate", type=click.FloatRange(min=1), default=200.0, show_default=True,
              help="Submissions per second to sustain")
@click.option("--seconds", type=click.FloatRange(min=1), default=30.0, show_default=True)
@click.option("--readers", type=click.IntRange(min=1), default=50, show_default=True,
              help="Concurrent dashboard clients")
@click.option("--reads-each", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_api(rate: float, seconds: float, readers: int, reads_each: int, as_json: bool) -> None:
    """Load-test `oppen serve` on loopback: submissions at a rate, then dashboard readers."""
    from app.bench.api import run

    r = run(rate, seconds, readers, reads_each)
    if as_json:
        common.emit_json({"benchmark": "api", **r})
        return
    s, d, ok = r["submit"], r["dashboard"], r["meets_targets"]
    click.echo(f"submissions: {s['accepted']}/{s['requests']} accepted at {s['achieved_rate']}/s "
               f"over {s['seconds']} s (target {rate:g}/s: {'ok' if ok['rate'] else 'MISSED'}); "
               f"latency median {s['median_ms']} ms, p99 {s['p99_ms']} ms "
               f"(< {r['target_p99_ms']:g}: {'ok' if ok['p99'] else 'MISSED'}), "
               f"max {s['max_ms']} ms; {s['error_count']} errors; lost {s['lost']}")
    click.echo(f"dashboard: {d['clients']} clients, {d['reads']} reads in {d['seconds']} s, "
               f"median {d['median_ms']} ms, p99 {d['p99_ms']} ms; {d['error_count']} errors")


@bench.command("infer")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(dir_okay=False),
              help="A place-mode checkpoint (default: an untrained policy of the same shape)")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_infer(checkpoint_path: str | None, repeats: int, as_json: bool) -> None:
    """Policy decision latency and batched throughput for 64 hosts."""
    from app.bench.infer import run

    r = run(checkpoint_path, repeats)
    if as_json:
        common.emit_json({"benchmark": "infer", **r})
        return
    base = r["pytorch"]
    click.echo(f"single decision (64 hosts, {r['path']}): median {r['single_decision_us']:.1f} us"
               f" (PyTorch {base['single_decision_us']:.1f} us, {r['single_speedup']:.1f}x)")
    click.echo(f"batched ({r['batch_size']}): {r['batched_decisions_per_s']:,.0f} decisions/s"
               f" (PyTorch {base['batched_decisions_per_s']:,.0f}/s, "
               f"{r['batched_speedup']:.1f}x)")


@bench.command("sweep")
@click.option("--part", type=click.Choice(["all", "search", "latency"]), default="all",
              show_default=True)
@click.option("--seeds", default="1,2,3", show_default=True, help="Sampler seeds")
@click.option("--trials", type=click.IntRange(min=2, max=200), default=16, show_default=True,
              help="Trials per study")
@click.option("--repeats", type=click.IntRange(min=1, max=20), default=3, show_default=True,
              help="Foreground runs per start (cold, warm)")
@click.option("--dispatcher-trials", type=click.IntRange(min=2, max=50), default=6,
              show_default=True, help="Trials per sweep through the dispatcher")
@click.option("--steps", type=click.IntRange(min=2048, max=10_000_000), default=8192,
              show_default=True, help="Training steps per search trial")
@click.option("--json", "as_json", is_flag=True)
def bench_sweep(part: str, seeds: str, trials: int, repeats: int, dispatcher_trials: int,
                steps: int, as_json: bool) -> None:
    """TPE with median pruning against random search (best found, CPU-seconds), and what a
    short trial costs to start, cold and warm."""
    from app.bench.sweep import run

    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise common.OppenError(f"--seeds: expected numbers like 1,2,3, got {seeds!r}") \
            from None
    if not seed_list:
        raise common.OppenError("--seeds: give at least one seed")
    r = run(part, seed_list, trials, repeats, dispatcher_trials, steps)
    if as_json:
        common.emit_json({"benchmark": "sweep", **r})
        return
    if "search" in r:
        sr = r["search"]
        for row in sr["runs"]:
            click.echo(f"{row['method']:12} seed {row['seed']}: best mean wait "
                       f"{row['best']:.1f} s, {row['cpu_s']:.1f} CPU-s, "
                       f"{row['pruned']}/{row['trials']} pruned")
        med = sr["median"]
        click.echo(f"median best: TPE+median {med['tpe-median']['best']:.1f} s, random "
                   f"{med['random-none']['best']:.1f} s; compute TPE/random "
                   f"{sr['compute_ratio']:.2f} (goal <= 0.60, and at least as good)")
    if "cheap_trials" in r:
        ct = r["cheap_trials"]
        fg, dp = ct["foreground"], ct["dispatcher"]
        click.echo(f"1,024-step oppen train: cold {fg['cold_median_s']:.2f} s, warm "
                   f"{fg['warm_median_s']:.2f} s (goal 3 s)")
        click.echo(f"a trial through the dispatcher, queued to ended: cold "
                   f"{dp['cold_median_s']:.2f} s, warm {dp['warm_median_s']:.2f} s "
                   "(goal 5 s)")


@bench.command("train")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=3, show_default=True,
              help="PPO updates per sample")
@click.option("--workers", "workers", metavar="N,N,...",
              help="Data-parallel PPO instead: steps/s and scaling efficiency for each "
                   "worker count (real `oppen train` runs; 1 is always measured)")
@click.option("--mode", type=click.Choice(["place", "pick", "hierarchical"]), default="place",
              show_default=True,
              help="pick, hierarchical: the fused per-entity layers against PyTorch's, paired")
@click.option("--json", "as_json", is_flag=True)
def bench_train(repeats: int, iterations: int, workers: str | None, mode: str,
                as_json: bool) -> None:
    """End-to-end PPO steps/s (place, 64 hosts) against a SyncVectorEnv Python loop; with
    --workers, data-parallel PPO's steps/s per worker count; with --mode pick or
    hierarchical, training through simrs's fused layers against PyTorch's."""
    if workers is not None:
        if mode != "place":
            raise common.OppenError("--workers measures place training; leave out --mode")
        _bench_workers(workers, repeats, iterations, as_json)
        return
    common.sleep_idle_openmp_threads()  # as `oppen train` runs
    if mode != "place":
        _bench_entity_layers(mode, repeats, iterations, as_json)
        return
    from app.bench.train import run

    r = run(repeats, iterations)
    if as_json:
        common.emit_json({"benchmark": "train", **r})
        return
    click.echo(f"PPO on simrs: {r['train_steps_per_s']:,.0f} steps/s; through SyncVectorEnv: "
               f"{r['sync_vector_env_steps_per_s']:,.0f} steps/s ({r['ratio']:.1f}x)")
    share = r["env_share"]
    click.echo(f"time in the environment: {share['simrs']:.0%} on simrs, "
               f"{share['sync_vector_env']:.0%} through SyncVectorEnv; the environments alone "
               f"differ {r['env_only_ratio']:.1f}x")


def _bench_entity_layers(mode: str, repeats: int, iterations: int, as_json: bool) -> None:
    from app.bench.entity_train import run

    r = run(mode, repeats, iterations)
    if as_json:
        common.emit_json({"benchmark": "train-layers", **r})
        return
    click.echo(f"{mode} PPO (hidden {r['hidden']}, {r['num_envs']} envs x "
               f"{r['rollout_steps']} steps, {r['update_epochs']} epochs): fused layers "
               f"{r['fused_steps_per_s']:,.0f} steps/s, PyTorch's layers "
               f"{r['torch_layers_steps_per_s']:,.0f} steps/s ({r['fused_speedup']:.2f}x; "
               f"medians of {repeats}); host_layers=auto chooses {r['auto_chooses']}")


def _bench_hierarchical(as_json: bool) -> None:
    from app.bench.hierarchical import run

    r = run()
    if as_json:
        common.emit_json({"benchmark": "sim-hierarchical", **r})
        return
    click.echo(f"hierarchical, {r['jobs']:,} jobs on {r['hosts']:,} hosts, one pass:")
    for p in r["pairs"]:
        d = p["decision"]
        click.echo(f"  {p['pair']:>16}: {p['decisions']:,} decisions in {p['episode_s']:.2f} s,"
                   f" decision median {d['median_us']:.1f} us (p99 {d['p99_us']:.1f}), "
                   f"peak queue {p['peak_queue']:,}, RSS {p['rss_start_mb']:.0f} -> "
                   f"{p['rss_peak_mb']:.0f} MB, mean bounded slowdown "
                   f"{p['mean_bounded_slowdown']:.3f}")
    n = r["policy"]
    click.echo(f"  policy network (hidden {n['hidden']}): job decision median "
               f"{n['job_phase']['median_us']:,.0f} us, host decision "
               f"{n['host_phase']['median_us']:,.0f} us "
               f"({r['policy_vs_pair_median']:,.0f}x a pair's)")


def _bench_workers(text: str, repeats: int, iterations: int, as_json: bool) -> None:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise common.OppenError(f"--workers: expected counts such as 1,2, got {text!r}") from None
    if not counts or any(not 1 <= c <= 64 for c in counts):
        raise common.OppenError(f"--workers: counts from 1 to 64, got {text!r}")
    from app.bench.workers import run

    r = run(counts, repeats, iterations)
    if as_json:
        common.emit_json({"benchmark": "train-workers", **r})
        return
    click.echo(f"data-parallel PPO, {r['num_envs']} environments in all, {r['cpus']} CPUs "
               f"(medians of {r['repeats']}):")
    for row in r["counts"]:
        click.echo(f"  {row['workers']:>2} worker(s): {row['steps_per_s']:>9,.0f} steps/s, "
                   f"{row['speedup']:.2f}x one worker, efficiency {row['efficiency']:.0%}, "
                   f"{row['communication_share']:.0%} of the time in collectives")


@bench.command("preemption")
@click.option("--repeats", type=click.IntRange(min=1, max=20), default=3, show_default=True)
@click.option("--preemptions", type=click.IntRange(min=1, max=10), default=2, show_default=True,
              help="Interruptions of the interrupted run")
@click.option("--signal", "how", type=click.Choice(["sigterm", "sigkill"]), default="sigterm",
              show_default=True, help="sigterm: a reclaim with notice; sigkill: a node gone")
@click.option("--json", "as_json", is_flag=True)
def bench_preemption(repeats: int, preemptions: int, how: str, as_json: bool) -> None:
    """What preemption costs a job that resumes from its checkpoints (real training runs)."""
    from app.bench.preemption import run

    r = run(repeats, preemptions, how)
    if as_json:
        common.emit_json({"benchmark": "preemption", **r.to_dict()})
        return
    click.echo(f"uninterrupted: {r.uninterrupted_s:.1f} s; {r.preemptions} x {r.signal}: "
               f"{r.interrupted_s:.1f} s -> {r.ratio:.2f}x the time "
               f"(medians of {r.repeats})")
    click.echo(f"per preemption: {r.restart_s_per_preemption:.1f} s of restart, "
               f"{r.lost_steps_per_preemption:,.0f} steps trained again (a checkpoint every "
               f"{r.steps_per_checkpoint:,} steps)")
    click.echo(f"final parameters bit-identical to the uninterrupted run's: {r.resumed_exactly}"
               + ("" if r.resumed_exactly or r.signal != "sigterm" else
                  " (a SIGTERM between checkpoints adds a checkpoint boundary, where episodes "
                  "restart; a SIGKILL resumes from a regular one)"))
