"""`oppen cost …` and `oppen budget …`: prices, forecasts, reports, advice and limits."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from app.cli import common
from app.core.errors import ConfigError
from app.core.money import usd
from app.core.priority import PRIORITY_CLASSES

PRIORITY_CHOICE = click.Choice(list(PRIORITY_CLASSES))


def _check_time(value: str | None, label: str) -> None:
    """Fails on a time that is not ISO before anything is sent (the operations read a time
    without an offset in the pricing time zone)."""
    if value is None:
        return
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{label} {value!r} is not an ISO time like 2026-11-24T17:30") \
            from None


def _print(doc: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        common.emit_json(doc)
    else:
        for line in lines:
            click.echo(line)


@click.group(cls=common.OppenGroup)
def cost() -> None:
    """Estimate, forecast, report and cut what training costs."""


@cost.command("estimate")
@click.argument("job_id", type=int, required=False)
@click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--cpus", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--memory-gb", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--hours", type=float, default=None, help="Running time to price")
@click.option("--timesteps", type=int, default=None,
              help="Price this many steps at the throughput of comparable runs")
@click.option("--start", default=None, help="ISO start time in the pricing zone (default now)")
@click.option("--priority", type=PRIORITY_CHOICE, default="normal", show_default=True)
@click.option("--spot", is_flag=True, help="On spot capacity")
@click.option("--json", "as_json", is_flag=True)
def cost_estimate(job_id: int | None, gpus: int, cpus: float, memory_gb: float,
                  hours: float | None, timesteps: int | None, start: str | None, priority: str,
                  spot: bool, as_json: bool) -> None:
    """Price a queued job (JOB_ID) or a resource shape given directly."""
    ops = common.operations()
    if job_id is not None:
        doc = ops.estimate_job_cost(job_id)
    else:
        if hours is None and timesteps is None:
            raise ConfigError("give JOB_ID, or --hours or --timesteps for a resource shape")
        doc = ops.estimate_shape_cost(cpus, memory_gb, gpus, priority, spot, hours, timesteps,
                                      start)
    if "cost_usd" in doc:
        lines = [f"{usd(doc['cost_usd'])} for {doc['hours']} h from {doc['start']} "
                 f"({doc['peak_hours']} h peak, {doc['off_peak_hours']} h off-peak)"]
    else:
        low, high = doc["final_cost_interval_usd"]
        lines = [f"{usd(doc['final_cost_usd'])} (95%: {usd(low)}–"
                 f"{usd(high)}), {doc['remaining_s'] / 3600:.2f} h from "
                 f"{doc['start']}; throughput {doc['steps_per_second']:,} steps/s from "
                 f"{doc['throughput_source']}"]
    _print({"estimate": doc}, as_json, lines)


@cost.command("forecast")
@click.argument("job_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True)
def cost_forecast(job_id: int | None, as_json: bool) -> None:
    """A job's remaining time and final cost (95% interval), or the whole queue's; and each
    budget's burn rate and run-out date."""
    ops = common.operations()
    if job_id is not None:
        doc = ops.forecast(job_id)["forecast"]
        if "remaining_s" in doc:
            low, high = doc["final_cost_interval_usd"]
            line = (f"job {job_id} ({doc['state']}): {usd(doc['final_cost_usd'])} "
                    f"(95%: {usd(low)}–{usd(high)}); "
                    f"{doc['remaining_s'] / 60:.1f} min left, done about {doc['finish_at']}")
        else:
            line = f"job {job_id} ({doc['state']}): cost {usd(doc['final_cost_usd'])}"
        _print({"forecast": doc}, as_json, [line])
        return
    found = ops.forecast(None)
    queue, budgets = found["queue"], found["budgets"]
    lines = [f"job {q['job_id']:>5} {q['name'][:24]:<24} start {q['start_at'][11:16]} "
             f"finish {q['finish_at'][11:16]} {usd(q['final_cost_usd'])}"
             for q in queue] or ["no queued jobs"]
    for b in budgets:
        runs_out = b["runs_out_at"][:10] if b["runs_out_at"] else "not this period"
        lines.append(f"budget {b['name']}: burning {usd(b['burn_per_day_usd'])}/day, "
                     f"runs out {runs_out}")
    _print({"queue": queue, "budgets": budgets}, as_json, lines)


@cost.command("report")
@click.option("--period", type=click.Choice(["day", "week", "month"]), default="week",
              show_default=True)
@click.option("--by", "group_by", type=click.Choice(["team", "project", "priority", "status"]),
              default="team", show_default=True)
@click.option("--chart", type=click.Path(dir_okay=False), default=None,
              help="Also write a PNG of the period's spend per day here")
@click.option("--json", "as_json", is_flag=True)
def cost_report(period: str, group_by: str, chart: str | None, as_json: bool) -> None:
    """Spend this day, week or month, grouped, against the previous period."""
    from app.costs.reports import report_chart

    doc = common.operations().cost_report(period, group_by)
    if chart:
        doc["chart"] = str(report_chart(doc, Path(chart)))
    change = doc["change_vs_previous"]
    trend = "no spend in the previous period" if change is None else \
        f"{change * 100:+.1f}% vs previous {period}"
    lines = [f"{period} from {doc['start'][:10]}: {usd(doc['total_usd'])} over "
             f"{doc['runs']} runs (average {usd(doc['average_per_run_usd'])}); {trend}"]
    lines += [f"  {g['key']:<20} {usd(g['cost_usd'])}  ({g['runs']} runs)"
              for g in doc["groups"]]
    if chart:
        lines.append(f"chart: {doc['chart']}")
    _print({"report": doc}, as_json, lines)


@cost.command("recommend")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def cost_recommend(job_id: int, as_json: bool) -> None:
    """Ways to spend less on a job or run, each with its saving."""
    advice = common.operations().recommend(job_id)["recommendations"]
    lines = [f"save {usd(a['saving_usd'])} ({a['saving_fraction'] * 100:.0f}%): "
             f"{a['advice']}" for a in advice] or ["nothing to suggest: it is already as cheap "
                                                  "as the rules here can make it"]
    _print({"job_id": job_id, "recommendations": advice}, as_json, lines)


@cost.command("compare")
@click.argument("configs_file", type=click.Path(dir_okay=False))
@click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--cpus", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--memory-gb", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--priority", type=PRIORITY_CHOICE, default="normal", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def cost_compare(configs_file: str, gpus: int, cpus: float, memory_gb: float, priority: str,
                 as_json: bool) -> None:
    """Estimated cost, duration and expected quality of configs (a JSON list) side by side."""
    try:
        configs = json.loads(Path(configs_file).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{configs_file}: expected a JSON list of training configs ({exc})") \
            from None
    if not isinstance(configs, list):
        raise ConfigError(f"{configs_file}: expected a JSON list of training configs")
    rows = common.operations().compare(configs, cpus, memory_gb, gpus, priority)["comparison"]
    lines = []
    for r in rows:
        q = r["expected_quality"]["wait_ratio_vs_best_heuristic"]
        lines.append(f"#{r['index']}: {usd(r['final_cost_usd'])}, "
                     f"{r['remaining_s'] / 60:.1f} min, expected wait vs best heuristic "
                     f"{'N/A' if q is None else f'{q:.3f}'}  {json.dumps(r['config'])}")
    _print({"comparison": rows}, as_json, lines)


@click.group(cls=common.OppenGroup)
def budget() -> None:
    """Set and show spending limits (hard ones refuse work that would overspend)."""


@budget.command("set")
@click.argument("name")
@click.option("--limit", "limit_usd", required=True, help="Dollars per period")
@click.option("--scope", type=click.Choice(["global", "team", "project"]), default="global",
              show_default=True)
@click.option("--team", default=None, help="The team (for --scope team)")
@click.option("--project", default=None, help="The project (for --scope project)")
@click.option("--period", type=click.Choice(["weekly", "monthly", "custom"]), default="monthly",
              show_default=True)
@click.option("--start", default=None, help="Custom period start (ISO)")
@click.option("--end", default=None, help="Custom period end (ISO)")
@click.option("--soft", is_flag=True, help="Warn instead of refusing")
@click.option("--alerts", default="0.5,0.8,1.0", show_default=True,
              help="Alert thresholds as fractions of the limit")
@click.option("--json", "as_json", is_flag=True)
def budget_set(name: str, limit_usd: str, scope: str, team: str | None, project: str | None,
               period: str, start: str | None, end: str | None, soft: bool, alerts: str,
               as_json: bool) -> None:
    """Create or change the budget NAME."""
    try:
        thresholds = [float(x) for x in alerts.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--alerts expects fractions like 0.5,0.8,1.0, got {alerts!r}") from None
    for label, value in (("--start", start), ("--end", end)):
        _check_time(value, label)
    status = common.operations().set_budget(
        name, limit_usd, scope, team if scope == "team" else project, period, start, end,
        not soft, thresholds)["budget"]
    _print({"budget": status}, as_json,
           [f"budget {status['name']}: {usd(status['limit_usd'])} {status['period']} "
            f"({'hard' if status['hard'] else 'soft'}, {status['scope']} "
            f"{status['scope_value']}); {usd(status['committed_usd'])} committed so far"])


@budget.command("show")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
def budget_show(name: str | None, as_json: bool) -> None:
    """Every budget (or one): spent, committed, burn rate, projected run-out, alerts."""
    from app.costs.budgets import used_percent  # SQLAlchemy: kept off `oppen --help`

    rows = common.operations().list_budgets(name)["budgets"]
    lines = []
    for r in rows:
        out = r["runs_out_at"][:16] if r["runs_out_at"] else "lasts the period"
        alert = f"  ALERT: past {max(r['crossed']) * 100:.0f}%" if r["crossed"] else ""
        lines.append(f"{r['name']} ({'hard' if r['hard'] else 'soft'}, {r['scope']} "
                     f"{r['scope_value']}, {r['period']}): spent {usd(r['spent_usd'])}, "
                     f"committed {usd(r['committed_usd'])} of "
                     f"{usd(r['limit_usd'])} ({used_percent(r['used_fraction'])}); "
                     f"burn {usd(r['burn_per_day_usd'])}/day; runs out: {out}{alert}")
    _print({"budgets": rows}, as_json, lines or ["no budgets"])


@budget.command("delete")
@click.argument("name")
def budget_delete(name: str) -> None:
    """Remove the budget NAME."""
    common.operations().delete_budget(name)
    click.echo(f"budget {name} deleted")
