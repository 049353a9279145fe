"""The rich view of the dashboard: one-shot, or refreshed in place with --watch."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from app.core.money import usd
from app.costs.budgets import used_percent
from app.dashboard.data import DashboardData

STATE_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow",
               "budget_exhausted": "magenta", "pruned": "cyan",
               "running": "cyan", "dispatching": "cyan", "waiting": "yellow",
               "queued": "white"}
LEVEL_STYLE = {"ok": "green", "warn": "yellow", "error": "red"}
SPARKS = "▁▂▃▄▅▆▇█"
NA = "N/A"


def sparkline(values: Sequence[float], width: int = 16) -> str:
    if not values:
        return NA
    values = list(values)[-width:]
    lo, hi = min(values), max(values)
    if hi == lo:
        return SPARKS[3] * len(values)
    return "".join(SPARKS[int((v - lo) / (hi - lo) * (len(SPARKS) - 1))] for v in values)


def level(fraction: float | None, warn: float = 0.7, error: float = 0.9) -> str:
    """Green below ``warn``, yellow below ``error``, red at or above it."""
    if fraction is None:
        return "dim"
    return "green" if fraction < warn else "yellow" if fraction < error else "red"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NA
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes \
        else f"{secs}s"


def bar(fraction: float | None, width: int = 12) -> Text:
    if fraction is None:
        return Text(NA, style="dim")
    filled = int(round(fraction * width))
    return Text("█" * filled + "░" * (width - filled) + f" {fraction * 100:3.0f}%",
                style="cyan")


def _use(requested: float, allocatable: float | None) -> Text:
    if allocatable is None:
        return Text(f"{requested:g}/{NA}", style="dim")
    if allocatable == 0:
        return Text(f"{requested:g}/0", style="red" if requested else "dim")
    fraction = requested / allocatable
    return Text(f"{requested:g}/{allocatable:g}", style=level(fraction))


def view(data: DashboardData) -> RenderableType:
    c = data.counts
    summary = Text.assemble(
        ("queued ", "bold"), str(c.get("queued", 0)), "  ",
        ("running ", "bold"), str(c.get("running", 0) + c.get("dispatching", 0)), "  ",
        *((("waiting ", "bold"), (str(c["waiting"]), "yellow"), "  ") if c.get("waiting") else ()),
        ("succeeded ", "bold"), (str(c.get("succeeded", 0)), "green"), "  ",
        ("failed ", "bold"), (str(c.get("failed", 0)), "red" if c.get("failed") else ""), "  ",
        ("today ", "bold"), usd(data.costs.get("today_usd")), "  ",
        ("month ", "bold"), usd(data.costs.get("month_usd")))

    cluster = Table(title=f"Cluster ({data.cluster.source})", expand=True, title_justify="left")
    for col in ("node", "CPU", "memory GB", "GPU"):
        cluster.add_column(col)
    for n in data.cluster.nodes:
        cluster.add_row(n.name, _use(n.cpu_requested, n.cpu_allocatable),
                        _use(round(n.memory_requested_mb / 1024, 1),
                             round(n.memory_allocatable_mb / 1024, 1)
                             if n.memory_allocatable_mb else None),
                        _use(n.gpu_requested, n.gpu_allocatable))
    if not data.cluster.nodes:
        cluster.add_row(data.cluster.detail or NA, NA, NA, NA)

    by_class = "  ".join(f"{k} {v}" for k, v in data.queue_by_class.items())
    queued = Table(title=f"Queue ({by_class})", expand=True, title_justify="left")
    for col in ("pos", "id", "name", "priority", "waiting", "starts", "cost"):
        queued.add_column(col)
    # A job that fits waits for the next tick, and with no dispatcher for one to come.
    no_dispatcher = any(h.component == "dispatcher" and h.status == "error"
                        for h in data.health)
    for r in data.queued:
        why = r.pending_reason or NA
        if why == "next-tick" and no_dispatcher:
            why = "a dispatcher"
        queued.add_row(str(r.position or ""), str(r.id), r.name, r.priority_class, why,
                       (r.eta_start or NA)[11:16] or NA, usd(r.estimated_cost_usd))

    running = Table(title="Running", expand=True, title_justify="left")
    for col in ("id", "name", "progress", "steps/s", "elapsed", "ETA", "cost", "final",
                "reward"):
        running.add_column(col)
    for r in data.running:
        name = f"{r.name} ({r.workers} workers)" if r.workers > 1 else r.name
        if r.state == "waiting":  # held by Kueue: not running, not charged
            place = f" #{r.kueue_position}" if r.kueue_position else ""
            running.add_row(str(r.id), name, Text(f"kueue{place}: waiting for quota",
                                                    style="yellow"),
                            NA, NA, NA, usd(r.cost_so_far_usd), usd(r.forecast_cost_usd), "")
            continue
        running.add_row(str(r.id), name, bar(r.progress),
                        f"{r.steps_per_second:,.0f}" if r.steps_per_second else NA,
                        duration(r.elapsed_s), duration(r.eta_s), usd(r.cost_so_far_usd),
                        usd(r.forecast_cost_usd), sparkline(r.reward_curve))

    recent = Table(title="Recent", expand=True, title_justify="left")
    for col in ("id", "name", "outcome", "duration", "cost", "vs best heuristic"):
        recent.add_column(col)
    for r in data.recent:
        verdict = Text(NA, style="dim") if r.eval_ratio is None else Text(
            f"{r.eval_ratio:.2f}x wait", style="green" if r.eval_ratio < 1 else "yellow")
        recent.add_row(str(r.id), r.name, Text(r.state, style=STATE_STYLE.get(r.state, "")),
                       duration(r.duration_s), usd(r.cost_usd), verdict)

    budgets = Table(title="Budgets", expand=True, title_justify="left")
    for col in ("budget", "scope", "committed", "limit", "used", "burn/day", "runs out"):
        budgets.add_column(col)
    for b in data.costs.get("budgets", []):
        budgets.add_row(b["name"], f"{b['scope']} {b['scope_value']}", usd(b["committed_usd"]),
                        usd(b["limit_usd"]),
                        Text(used_percent(b["used_fraction"]),
                             style="red" if b["used_fraction"] is None
                             else level(b["used_fraction"], 0.8, 1.0)),
                        usd(b["burn_per_day_usd"]), (b["runs_out_at"] or "—")[:10])

    alerts = Text()
    for i, a in enumerate(data.alerts):
        alerts.append(("\n" if i else "") + f"{a.level.upper():5} {a.kind}: {a.message}",
                      style=LEVEL_STYLE[a.level])
    if not data.alerts:
        alerts.append("none", style="green")

    health = Text()
    for h in data.health:
        health.append(f"{h.component} ", style="bold")
        health.append(h.status, style=LEVEL_STYLE[h.status])
        health.append(f" ({h.detail})  ")

    sweeps = Table(title="Sweeps", expand=True, title_justify="left")
    for col in ("id", "name", "state", "trials", "best", "spent"):
        sweeps.add_column(col)
    for w in data.sweeps:
        ended = sum(n for state, n in w.trials.items()
                    if state in ("succeeded", "pruned", "failed", "cancelled"))
        pruned = w.trials.get("pruned", 0)
        best = NA if w.best_value is None else f"{w.best_value:.4g} " + " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in w.best_params.items())
        cap = f" / {usd(w.max_cost_usd)}" if w.max_cost_usd is not None else ""
        sweeps.add_row(str(w.id), w.name, w.state,
                       f"{ended}/{w.n_trials}" + (f" ({pruned} pruned)" if pruned else ""),
                       best, usd(w.spent_usd) + cap)

    parts: list[RenderableType] = [summary, cluster, queued, running, recent]
    if data.sweeps:
        parts.append(sweeps)
    if data.costs.get("budgets"):
        parts.append(budgets)
    parts += [Panel(alerts, title="Alerts", title_align="left"),
              Panel(health, title="Health", title_align="left")]
    return Panel(Group(*parts), title=f"Oppen — {data.generated_at}")


def render(data: DashboardData, console: Console) -> None:
    console.print(view(data))


def watch(gather: Callable[[], DashboardData], console: Console, every_s: float = 2.0,
          stop_after: int | None = None) -> int:
    """Redraws in place every ``every_s`` seconds until Ctrl-C (or SIGTERM); returns the
    frames drawn."""
    # Started in the background by a non-interactive shell, a process inherits SIGINT as
    # ignored; a watch must still stop on Ctrl-C, so it takes the signal back.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    frames = 0
    try:
        with Live(view(gather()), console=console, refresh_per_second=4,
                  screen=False, auto_refresh=False) as live:
            frames = 1
            while stop_after is None or frames < stop_after:
                time.sleep(every_s)
                live.update(view(gather()), refresh=True)
                frames += 1
    except KeyboardInterrupt:
        pass
    return frames
