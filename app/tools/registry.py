"""Builds the agent's tools over Oppen's operations (local, or an API server's when
OPPEN_SERVER_URL is set). Each is a thin wrapper: it calls one operation and phrases the
result, returning (text for the model, structured data for the interface) — LangChain's
content_and_artifact format. Text that comes from data (job names, reasons, logs) is quoted
as data, never as instructions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import ValidationError

from app.api.operations import Operations
from app.core.errors import OppenError
from app.core.money import usd
from app.core.submission import describe, field_errors
from app.tools import schemas as s

# Tools that spend money, change limits or destroy work: the agent asks a person first.
SPENDING_OR_DESTRUCTIVE = frozenset({
    "queue_training_job", "submit_batch", "cancel_job", "resume_job", "start_now",
    "set_budget", "hyperparameter_sweep"})
Result = tuple[str, dict[str, Any]]


def _config(total_timesteps: int, num_hosts: int, mode: str = "place",
            seed: int = 1) -> dict[str, Any]:
    return {"total_timesteps": total_timesteps, "num_hosts": num_hosts, "mode": mode,
            "seed": seed}


def _submission(name: str, priority: str, gpus: int, cpus: float, memory_mb: int,
                max_runtime_s: float | None, spot: bool,
                config: dict[str, Any]) -> dict[str, Any]:
    """A job for the submission contract, from a tool's arguments."""
    item = {"name": name, "priority": priority, "gpus": gpus, "cpus": cpus,
            "memory_mb": memory_mb, "spot": spot, "config": config}
    if max_runtime_s is not None:
        item["max_runtime_s"] = max_runtime_s
    return item


def _dispatcher_sentence(lead: dict[str, Any] | None) -> str:
    if lead is None or not lead.get("leading", True):
        return "No dispatcher is running."
    if lead.get("degraded"):
        return f"A dispatcher is running, degraded: {lead['degraded']}."
    return "A dispatcher is running."


def _job_line(d: dict[str, Any]) -> str:
    where = f", position {d['position']}" if d.get("position") else ""
    return f"#{d['id']} {d['name']!r} [{d['priority_class']}] {d['state']}{where}"


def build_tools(ops: Operations) -> list[BaseTool]:
    # --- jobs ------------------------------------------------------------------------------

    def queue_training_job(name: str, priority: str = "normal", total_timesteps: int = 4096,
                           num_hosts: int = 4, mode: str = "place", seed: int = 1,
                           gpus: int = 0, cpus: float = 1.0, memory_mb: int = 1024,
                           max_runtime_s: float | None = None, spot: bool = False) -> Result:
        view = ops.submit(_submission(name, priority, gpus, cpus, memory_mb, max_runtime_s,
                                      spot, _config(total_timesteps, num_hosts, mode, seed)))
        return (f"Queued job {view['id']} {view['name']!r} ({priority}, {total_timesteps:,} "
                f"steps, {num_hosts} hosts), position {view['position']}, estimated "
                f"{usd(view['estimated_cost_usd'])}.", view)

    def submit_batch(name: str, count: int, priority: str = "normal",
                     total_timesteps: int = 4096, num_hosts: int = 4) -> Result:
        items = [{"name": f"{name}-{i}", "priority": priority,
                  "config": _config(total_timesteps, num_hosts, seed=i)}
                 for i in range(1, count + 1)]
        done = ops.submit_batch(items)
        ids = done["queued"]
        return (f"Queued {len(ids)} {priority} jobs as one batch: ids {ids[0]}..{ids[-1]} "
                f"(seeds 1..{count}).", done)

    def queue_status() -> Result:
        data = ops.queue_status()
        c = data["counts"]
        lead = data["dispatcher"]
        text = (f"{c['queued']} queued, {c['dispatching'] + c['running']} running, "
                f"{c['succeeded']} succeeded, {c['failed']} failed, {c['cancelled']} cancelled. "
                + _dispatcher_sentence(lead))
        return text, data

    def list_jobs(state: str | None = None, limit: int = 20) -> Result:
        page = ops.list_jobs([state] if state else None, limit=limit)
        rows = page["jobs"]
        if not rows:
            return "No jobs" + (f" in state {state}." if state else "."), page
        return "; ".join(_job_line(r) for r in rows), page

    def job_details(job_id: int) -> Result:
        view = ops.show_job(job_id)
        history = " -> ".join(e["to"] for e in view["events"])
        text = f"Job {job_id} {view['name']!r} is {view['state']} (history: {history})."
        if view["pending_reason"]:
            text += (f" It waits because of {view['pending_reason']}: "
                     f"{view['pending_detail']}.")
            if view["eta_start"]:
                text += f" Estimated start {view['eta_start']}."
        if view["reason"] and view["state"] in ("failed", "cancelled", "succeeded",
                                                "budget_exhausted"):
            text += f" Outcome: {view['reason']!r}."
        if view["state"] == "waiting":
            place = f", place {view['kueue_position']}" if view["kueue_position"] else ""
            text += f" Kueue holds it until its queue has quota{place}; it is not charged."
        resumed = [a for a in view["attempt_history"] if a["resumed_from_step"] is not None]
        if resumed:
            text += " " + "; ".join(f"attempt {a['number']} resumed from step "
                                    f"{a['resumed_from_step']:,}" for a in resumed) + "."
        if view["mlflow_run_id"]:
            view["metrics"] = ops.job_metrics(job_id)["metrics"]
            ret = view["metrics"].get("charts/episodic_return")
            if ret is not None:
                text += f" Last episodic return {ret:.3f}."
        return text, view

    def cancel_job(job_id: int) -> Result:
        view = ops.cancel_job(job_id)
        return f"Job {job_id} is {view['state']} ({view['reason']!r}).", view

    def resume_job(job_id: int) -> Result:
        view = ops.resume_job(job_id)
        return (f"Job {job_id} is {view['state']} again; its next attempt continues from its "
                "latest checkpoint.", view)

    def start_now(job_id: int) -> Result:
        view = ops.start_now(job_id)
        why = view["pending_reason"] or "none"
        return (f"Job {job_id} is now urgent, position {view['position']}; waiting reason: "
                f"{why} ({view['pending_detail'] or 'starts on the next tick'}).", view)

    # --- budgets and costs -----------------------------------------------------------------

    def check_budget(name: str = "planned", priority: str = "normal",
                     total_timesteps: int = 4096, num_hosts: int = 4, mode: str = "place",
                     seed: int = 1, gpus: int = 0, cpus: float = 1.0, memory_mb: int = 1024,
                     max_runtime_s: float | None = None, spot: bool = False,
                     max_cost_usd: str | None = None) -> Result:
        found = ops.check_submission(
            _submission(name, priority, gpus, cpus, memory_mb, max_runtime_s, spot,
                        _config(total_timesteps, num_hosts, mode, seed)), max_cost_usd)
        cost = f"{usd(found['estimated_cost_usd'])}"
        if found["fits"]:
            text = (f"It fits: estimated {cost} and {found['estimated_duration_s'] / 60:.1f} "
                    "min" + (f", within the ${found['cap_usd']} cap" if found["cap_usd"] else "")
                    + ".")
        else:
            text = f"It does not fit: estimated {cost}; " + "; ".join(found["refusals"]) + "."
            if found["suggestions"]:
                text += " What would fit: " + "; ".join(found["suggestions"]) + "."
        return text, found

    def set_budget(name: str, limit_usd: str, scope: str = "global",
                   scope_value: str | None = None, period: str = "monthly",
                   hard: bool = True) -> Result:
        b = ops.set_budget(name, limit_usd, scope, scope_value, period, hard=hard)["budget"]
        return (f"Budget {b['name']}: ${b['limit_usd']} {b['period']} "
                f"({'hard' if b['hard'] else 'soft'}, {b['scope']} {b['scope_value']}); "
                f"${b['committed_usd']} committed.", b)

    def forecast_job_cost(job_id: int) -> Result:
        f = ops.forecast(job_id)["forecast"]
        if "final_cost_interval_usd" in f:
            low, high = f["final_cost_interval_usd"]
            text = (f"Job {job_id} should cost {usd(f['final_cost_usd'])} (95%: "
                    f"{usd(low)}-{usd(high)}), {f['remaining_s'] / 60:.1f} min "
                    "left.")
        else:
            text = f"Job {job_id} ({f['state']}) cost {usd(f['final_cost_usd'])}."
        return text, f

    def cost_report(period: str = "week", group_by: str = "team") -> Result:
        r = ops.cost_report(period, group_by)
        groups = ", ".join(f"{g['key']} {usd(g['cost_usd'])}" for g in r["groups"][:5])
        return (f"This {period}: {usd(r['total_usd'])} over {r['runs']} runs"
                + (f" ({groups})" if groups else "") + ".", r)

    def recommend_savings(job_id: int | None = None) -> Result:
        r = ops.recommend(job_id)
        advice = r["recommendations"]
        if not advice:
            return f"Job {r['job_id']} is already as cheap as the rules can make it.", r
        head = f"For job {r['job_id']}: " if r["job_id"] else "With no open job to price: "
        return head + "; ".join(
            a["advice"] + (f" (saves {usd(a['saving_usd'])})" if "saving_usd" in a
                           else "") for a in advice) + ".", r

    def compare_configs(configs: list[dict[str, Any]], gpus: int = 0,
                        priority: str = "normal") -> Result:
        rows = ops.compare(configs, gpus=gpus, priority=priority)["comparison"]
        return "; ".join(f"#{r['index']}: {usd(r['final_cost_usd'])}, "
                         f"{r['remaining_s'] / 60:.1f} min" for r in rows) + ".", {"rows": rows}

    def hyperparameter_sweep(name: str = "sweep", method: str = "random", n: int = 10,
                             space: dict[str, list[Any]] | None = None,
                             total_timesteps: int = 4096, priority: str = "normal",
                             max_total_usd: str | None = None, seed: int = 0) -> Result:
        done = ops.sweep(name, {"total_timesteps": total_timesteps}, method, space, n, seed,
                         priority, max_total_usd)
        ids = done["queued"]
        return (f"Queued a {method} sweep of {len(ids)} jobs ({ids[0]}..{ids[-1]}), estimated "
                f"{usd(done['estimated_total_usd'])} in all"
                + (f", within ${max_total_usd}" if max_total_usd else "") + ".", done)

    # --- the whole picture and results -----------------------------------------------------

    def dashboard() -> Result:
        d = ops.dashboard(5)
        c = d["counts"]
        alerts = [f"{a['level']}: {a['message']}" for a in d["alerts"]]
        health = ", ".join(f"{h['component']} {h['status']}" for h in d["health"])
        text = (f"{c['queued']} queued, {c['running'] + c['dispatching']} running, "
                f"{c['succeeded']} succeeded, {c['failed']} failed. Spend today "
                f"{usd(d['costs']['today_usd'])}, this month "
                f"{usd(d['costs']['month_usd'])}. Health: {health}. "
                + ("Alerts: " + "; ".join(alerts) + "." if alerts else "No alerts."))
        return text, d

    def run_metrics(job_id: int) -> Result:
        r = ops.job_metrics(job_id)
        if not r["run_id"]:
            return f"Job {job_id} has no MLflow run yet.", r
        keys = ("charts/global_step", "charts/SPS", "charts/episodic_return",
                "losses/value_loss", "eval/ppo_vs_best_heuristic_wait_ratio")
        shown = ", ".join(f"{k} {r['metrics'][k]:.4g}" for k in keys if k in r["metrics"])
        return f"Job {job_id} run {r['run_id']} ({r['status']}): {shown}.", r

    def compare_runs(job_ids: list[int]) -> Result:
        r = ops.compare_runs(job_ids)
        parts = []
        for run in r["runs"]:
            m = run["metrics"]
            parts.append(f"job {run['job_id']}: return {m.get('charts/episodic_return', 'N/A')}"
                         f", SPS {m.get('charts/SPS', 'N/A')}, vs best heuristic "
                         f"{m.get('eval/ppo_vs_best_heuristic_wait_ratio', 'N/A')}")
        return "; ".join(parts) + ".", r

    def evaluate_policy(job_id: int, seeds: list[int] | None = None) -> Result:
        r = ops.evaluation(job_id, seeds)
        if not r["evaluated"]:
            return f"Job {job_id} has no evaluation yet (it is recorded when training ends).", r
        ratio = r["ppo_vs_best_heuristic_wait_ratio"]
        waits = ", ".join(f"{name} {row['mean_wait_s']:.1f} s"
                          for name, row in r["results"].items())
        verdict = "" if ratio is None else (
            f" PPO's mean wait is {ratio:.2f}x the best heuristic's ({r['best_heuristic']}; "
            f"{'better' if ratio < 1 else 'not better'}).")
        how = f"fresh on seeds {r['seeds']}" if r["fresh"] else f"recorded, seeds {r['seeds']}"
        return f"Job {job_id} evaluation ({how}), mean wait: {waits}.{verdict}", r

    specs: list[tuple[Callable[..., Result], type[s.Args], str]] = [
        (queue_training_job, s.QueueTrainingJobArgs,
         "Queue one PPO training job that learns a cluster-scheduling policy in simrs. Spends "
         "compute; the person approves it first."),
        (submit_batch, s.SubmitBatchArgs,
         "Queue several training jobs at once (seeds 1..count), all or nothing. Spends compute."),
        (queue_status, s.NoArgs, "How many jobs are queued, running, finished; is a dispatcher "
                                 "running."),
        (list_jobs, s.ListJobsArgs, "List jobs in queue order (position, priority, state), "
                                    "optionally one state."),
        (job_details, s.JobIdArgs, "One job: state history, why it waits (pending reason, "
                                   "estimated start), outcome, MLflow metrics."),
        (cancel_job, s.JobIdArgs, "Cancel a queued or running job. Destroys work; approval "
                                  "first."),
        (resume_job, s.JobIdArgs, "Return a failed, cancelled or budget-stopped job to the queue; it continues from its latest checkpoint. Spends compute."),
        (start_now, s.JobIdArgs, "Make a queued job urgent so it starts on the next tick where "
                                 "capacity allows. Costs more (urgent rate)."),
        (check_budget, s.CheckBudgetArgs,
         "Check whether a planned training job fits the budgets (and an optional cap of its "
         "own) before queueing it; says what would fit if not. Changes nothing."),
        (set_budget, s.SetBudgetArgs, "Create or change a spending limit (admins)."),
        (forecast_job_cost, s.JobIdArgs,
         "A job's final cost with a 95% interval and its remaining time."),
        (cost_report, s.ReportArgs, "Spend this day, week or month, grouped."),
        (recommend_savings, s.RecommendArgs,
         "Ways to spend less on a job (off-peak, spot, priority, right-sizing), each with its "
         "saving; without a job, for the most expensive open one."),
        (compare_configs, s.CompareConfigsArgs,
         "Estimated cost and duration of training configs side by side."),
        (hyperparameter_sweep, s.SweepArgs,
         "Queue a grid or random hyperparameter sweep as one batch, only if its estimated "
         "total fits max_total_usd. Spends compute."),
        (dashboard, s.NoArgs, "The system at a glance: queue, running jobs, spend, alerts, "
                              "health."),
        (run_metrics, s.JobIdArgs, "The latest MLflow metrics of a job's run."),
        (compare_runs, s.CompareRunsArgs, "MLflow metrics of several jobs side by side."),
        (evaluate_policy, s.EvaluateArgs,
         "How a job's trained policy does against the heuristics (mean wait): the evaluation "
         "recorded when training ended, or afresh on the seeds given."),
    ]
    return [StructuredTool.from_function(func=_errors_to_model(f), name=f.__name__,
                                         description=d, args_schema=a,
                                         response_format="content_and_artifact",
                                         handle_tool_error=True,
                                         handle_validation_error=_validation_text)
            for f, a, d in specs]


def _validation_text(exc: ValidationError) -> str:
    """A bad argument from the model, worded as the submission contract words it."""
    return f"error: {describe(field_errors(exc.errors()))}"


def _errors_to_model(func: Callable[..., Any]) -> Callable[..., Any]:
    """A person's mistake (unknown job, bad value, a refused budget) goes back to the model
    as text."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OppenError as exc:
            raise ToolException(f"error: {exc}") from exc

    return wrapper
