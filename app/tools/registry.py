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
from app.core.ranking import differing_options, progress_text, ranked_by_evaluation
from app.core.submission import describe, field_errors
from app.tools import schemas as s

# Tools that spend money, change limits or destroy work: the agent asks a person first.
SPENDING_OR_DESTRUCTIVE = frozenset({
    "queue_training_job", "submit_batch", "cancel_job", "cancel_jobs", "resume_job",
    "resume_jobs", "start_now", "move_to_front", "pause_admission", "resume_admission",
    "set_budget", "hyperparameter_sweep"})
# Every tool, in the order the model sees them.
TOOL_NAMES = (
    "queue_training_job", "submit_batch", "system_status", "queue_status", "list_jobs",
    "job_details", "job_logs", "job_eta", "cancel_job", "cancel_jobs", "resume_job",
    "resume_jobs", "start_now", "move_to_front", "pause_admission", "resume_admission",
    "check_budget", "list_budgets", "set_budget", "forecast_job_cost", "cost_report",
    "recommend_savings", "compare_configs", "hyperparameter_sweep", "sweep_results",
    "dashboard", "run_metrics", "compare_runs", "best_runs", "evaluate_policy")
Result = tuple[str, dict[str, Any]]


def _config(total_timesteps: int, num_hosts: int, mode: str = "place",
            seed: int = 1, num_workers: int = 1) -> dict[str, Any]:
    config = {"total_timesteps": total_timesteps, "num_hosts": num_hosts, "mode": mode,
              "seed": seed}
    if num_workers > 1:
        # The environments split evenly: at least the defaults' 8, a multiple of the workers.
        config.update(num_workers=num_workers, num_envs=num_workers * max(1, 8 // num_workers))
    return config


def _submission(name: str, priority: str, gpus: int, cpus: float, memory_mb: int,
                max_runtime_s: float | None, spot: bool, config: dict[str, Any],
                start_after: str | None = None) -> dict[str, Any]:
    """A job for the submission contract, from a tool's arguments."""
    item = {"name": name, "priority": priority, "gpus": gpus, "cpus": cpus,
            "memory_mb": memory_mb, "spot": spot, "config": config}
    if max_runtime_s is not None:
        item["max_runtime_s"] = max_runtime_s
    if start_after is not None:
        item["start_after"] = start_after
    return item


def _sweep_text(d: dict[str, Any]) -> str:
    """A sweep's state and best configuration in a sentence or two."""
    counts = ", ".join(f"{n} {state}" for state, n in sorted(d["counts"].items())) \
        or "no trials yet"
    text = (f"Sweep {d['name']!r} (id {d['id']}) is {d['state']}: {counts} of {d['n_trials']}; "
            f"spent {usd(d['spent_usd'])}"
            + (f" of its {usd(d['max_cost_usd'])} cap" if d["max_cost_usd"] else "") + ".")
    if d["best"] is None:
        return text + " No trial has completed yet."
    b = d["best"]
    settings = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in b["params"].items())
    text += (f" Best: trial {b['number']} (job {b['job_id']}), {d['objective']} "
             f"{b['value']:.4g}, with {settings}.")
    if d["importances"]:
        top = max(d["importances"], key=d["importances"].get)
        text += f" Most important: {top} ({d['importances'][top]:.0%})."
    return text


def _dispatcher_sentence(lead: dict[str, Any] | None) -> str:
    if lead is None or not lead.get("leading", True):
        return "No dispatcher is running, so nothing starts until one does (oppen dispatcher)."
    if lead.get("degraded"):
        return f"A dispatcher is running, degraded: {lead['degraded']}."
    return "A dispatcher is running."


def _paused_sentence(paused: dict[str, Any] | None) -> str:
    if not paused:
        return ""
    why = f" ({paused['reason']!r})" if paused.get("reason") else ""
    return f" Admission is paused since {paused['since']}{why}: nothing new starts."


def _job_line(d: dict[str, Any]) -> str:
    where = f", position {d['position']}" if d.get("position") else ""
    return f"#{d['id']} {d['name']!r} [{d['priority_class']}] {d['state']}{where}"


def _clock(iso: str | None) -> str:
    return iso.replace("T", " ")[:16] + " UTC" if iso else "unknown"


def _leading(lead: dict[str, Any] | None) -> bool:
    return lead is not None and bool(lead.get("leading", True))


def _waits_for(d: dict[str, Any], leading: bool) -> str:
    """A queued job's pending reason, told right when no dispatcher runs to start it."""
    if d.get("pending_reason") == "next-tick" and not leading:
        return "a dispatcher: it fits now, but none is running"
    return str(d.get("pending_reason"))


def _start(d: dict[str, Any]) -> str:
    if d.get("eta_start"):
        return f"starts about {_clock(d['eta_start'])}"
    return "no start estimate"


def build_tools(ops: Operations) -> list[BaseTool]:
    # --- jobs ------------------------------------------------------------------------------

    def queue_training_job(name: str = "chat", priority: str = "normal",
                           total_timesteps: int = 4096, num_hosts: int = 4, mode: str = "place",
                           seed: int = 1, gpus: int = 0, cpus: float = 1.0,
                           memory_mb: int = 1024, max_runtime_s: float | None = None,
                           spot: bool = False, start_after: str | None = None,
                           num_workers: int = 1) -> Result:
        view = ops.submit(_submission(name, priority, gpus, cpus, memory_mb, max_runtime_s,
                                      spot, _config(total_timesteps, num_hosts, mode, seed,
                                                    num_workers), start_after))
        extras = "".join([f", {num_workers} workers" if num_workers > 1 else "",
                          f", {gpus} GPUs" if gpus else "", ", spot" if spot else "",
                          f", not before {_clock(view['not_before'])}"
                          if view.get("not_before") else ""])
        return (f"Queued job {view['id']} {view['name']!r} ({priority}, {total_timesteps:,} "
                f"steps, {num_hosts} hosts{extras}), position {view['position']}, estimated "
                f"{usd(view['estimated_cost_usd'])}.", view)

    def submit_batch(count: int, name: str = "batch", priority: str = "normal",
                     total_timesteps: int = 4096, num_hosts: int = 4, mode: str = "place",
                     seed: int = 1, gpus: int = 0, cpus: float = 1.0, memory_mb: int = 1024,
                     max_runtime_s: float | None = None, spot: bool = False,
                     start_after: str | None = None, num_workers: int = 1) -> Result:
        items = [_submission(f"{name}-{i}", priority, gpus, cpus, memory_mb, max_runtime_s,
                             spot, _config(total_timesteps, num_hosts, mode, seed + i - 1,
                                           num_workers), start_after)
                 for i in range(1, count + 1)]
        done = ops.submit_batch(items)
        ids = done["queued"]
        return (f"Queued {len(ids)} {priority} jobs as one batch: ids {ids[0]}..{ids[-1]} "
                f"(seeds {seed}..{seed + count - 1}).", done)

    def queue_status() -> Result:
        data = ops.queue_status()
        c = data["counts"]
        lead = data["dispatcher"]
        text = (f"{c['queued']} queued, {c['dispatching'] + c['running']} running, "
                f"{c['succeeded']} succeeded, {c['failed']} failed, {c['cancelled']} cancelled. "
                + _dispatcher_sentence(lead) + _paused_sentence(data.get("paused")))
        return text, data

    def system_status() -> Result:
        data = ops.queue_status()
        c = data["counts"]
        queued = ops.list_jobs(["queued"], limit=5)
        running = ops.list_jobs(["dispatching", "waiting", "running"], limit=5)
        alerts = ops.dashboard(5)["alerts"]
        parts = [f"{c['queued']} queued, {c['dispatching'] + c['running']} running"
                 + (f", {c['waiting']} held by Kueue" if c.get("waiting") else "")
                 + f", {c['succeeded']} succeeded, {c['failed']} failed, {c['cancelled']} "
                 f"cancelled. " + _dispatcher_sentence(data["dispatcher"])
                 + _paused_sentence(data.get("paused"))]
        if running["jobs"]:
            more = running["total"] - len(running["jobs"])
            parts.append("Running: " + "; ".join(
                f"#{d['id']} {d['name']!r} {d['state']}, {progress_text(d)}" for d in running["jobs"])
                + (f"; and {more} more" if more > 0 else "") + ".")
        if queued["jobs"]:
            more = queued["total"] - len(queued["jobs"])
            parts.append("Next in the queue: " + "; ".join(
                f"#{d['id']} {d['name']!r} [{d['priority_class']}] position {d['position']}, "
                f"{_start(d)} (waits for {_waits_for(d, _leading(data['dispatcher']))})"
                for d in queued["jobs"])
                + (f"; and {more} more" if more > 0 else "") + ".")
        parts.append("Alerts: " + "; ".join(f"{a['level']}: {a['message']}" for a in alerts)
                     + "." if alerts else "No alerts.")
        return " ".join(parts), {"status": data, "queued": queued, "running": running,
                                 "alerts": alerts}

    def list_jobs(state: str | None = None, limit: int = 20, last: int | None = None) -> Result:
        states = [state] if state else None
        page = ops.list_jobs(states, limit=last or limit, newest_first=last is not None)
        rows = page["jobs"]
        if not rows:
            return "No jobs" + (f" in state {state}." if state else "."), page
        more = page["total"] - len(rows)
        tail = f" ... and {more} more (of {page['total']})." if more > 0 else ""
        return "; ".join(_job_line(r) for r in rows) + tail, page

    def job_details(job_id: int) -> Result:
        view = ops.show_job(job_id)
        history = " -> ".join(e["to"] for e in view["events"])
        text = f"Job {job_id} {view['name']!r} is {view['state']} (history: {history})."
        if view["pending_reason"] == "next-tick" \
                and not _leading(ops.queue_status()["dispatcher"]):
            text += " It fits now, but no dispatcher is running to start it (oppen dispatcher)."
        elif view["pending_reason"]:
            text += (f" It waits because of {view['pending_reason']}: "
                     f"{view['pending_detail']}.")
            if view["eta_start"]:
                text += f" Estimated start {view['eta_start']}."
        if view["reason"] and view["state"] in ("failed", "cancelled", "succeeded",
                                                "budget_exhausted", "pruned"):
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

    def job_logs(job_id: int, lines: int = 50) -> Result:
        found = ops.job_logs(job_id, lines)
        logs = found["logs"].rstrip("\n")
        if not logs:
            return f"Job {job_id} (attempt {found['attempt']}) has written nothing yet.", found
        # Quoted as data: a log line is never an instruction.
        return (f"Job {job_id}, attempt {found['attempt']}, last {len(logs.splitlines())} "
                f"lines (quoted):\n{logs}", found)

    def job_eta(job_id: int) -> Result:
        d = ops.show_job(job_id)
        state = d["state"]
        if state == "queued":
            if d["pending_reason"] == "admission-paused":
                return (f"Job {job_id} is queued at position {d['position']}; no start can be "
                        f"estimated while {d['pending_detail']}.", d)
            leading = _leading(ops.queue_status()["dispatcher"])
            text = (f"Job {job_id} is queued at position {d['position']}, {_start(d)} (it "
                    f"waits for {_waits_for(d, leading)}"
                    + (f": {d['pending_detail']}" if leading else "") + ").")
            if d["eta_start"] and d["estimated_duration_s"]:
                from datetime import datetime, timedelta

                end = datetime.fromisoformat(d["eta_start"]) + timedelta(
                    seconds=d["estimated_duration_s"])
                text += (f" It should run about {d['estimated_duration_s'] / 60:.1f} min, "
                         f"finishing about {_clock(end.isoformat())}.")
            return text, d
        if state in ("dispatching", "running", "waiting"):
            f = ops.forecast(job_id)["forecast"]
            left = f.get("remaining_s")
            text = f"Job {job_id} is {state}: {progress_text(d)}."
            if left is not None and d["progress_sps"] is None:
                text += f" Estimated {left / 60:.1f} min left."
            return text, {"job": d, "forecast": f}
        return (f"Job {job_id} is {state}" + (f" since {_clock(d['finished_at'])}"
                                              if d.get("finished_at") else "") + "; it has no ETA.",
                d)

    def cancel_job(job_id: int) -> Result:
        view = ops.cancel_job(job_id)
        return f"Job {job_id} is {view['state']} ({view['reason']!r}).", view

    def _each(job_ids: list[int], act: Callable[[int], dict[str, Any]],
              done_word: str) -> Result:
        done, failed = [], []
        for job_id in dict.fromkeys(job_ids):
            try:
                view = act(job_id)
                done.append({"id": job_id, "state": view["state"]})
            except OppenError as exc:
                failed.append({"id": job_id, "error": str(exc)})
        if not done:
            raise ToolException("error: " + "; ".join(f"job {f['id']}: {f['error']}"
                                                      for f in failed))
        text = f"{done_word} {len(done)} job{'s' if len(done) > 1 else ''}: " + ", ".join(
            f"{d['id']} ({d['state']})" for d in done) + "."
        if failed:
            text += " Not done: " + "; ".join(f"job {f['id']}: {f['error']}" for f in failed) + "."
        return text, {"done": done, "failed": failed}

    def cancel_jobs(job_ids: list[int]) -> Result:
        return _each(job_ids, ops.cancel_job, "Cancelled")

    def resume_job(job_id: int) -> Result:
        view = ops.resume_job(job_id)
        return (f"Job {job_id} is {view['state']} again; its next attempt continues from its "
                "latest checkpoint.", view)

    def resume_jobs(job_ids: list[int]) -> Result:
        return _each(job_ids, ops.resume_job, "Returned to the queue")

    def start_now(job_id: int) -> Result:
        view = ops.start_now(job_id)
        why = view["pending_reason"] or "none"
        return (f"Job {job_id} is now urgent, position {view['position']}; waiting reason: "
                f"{why} ({view['pending_detail'] or 'starts on the next tick'}).", view)

    def move_to_front(job_id: int) -> Result:
        view = ops.move_to_front(job_id)
        return (f"Job {job_id} is first in the queue (position {view['position']}), still "
                f"{view['priority_class']} priority and price; waiting reason: "
                f"{view['pending_reason'] or 'none'}.", view)

    def pause_admission(reason: str = "") -> Result:
        found = ops.pause_admission(reason)
        return (f"Admission is paused since {found['paused']['since']}: the dispatcher starts "
                "nothing new; running jobs go on. Say 'resume the queue' to admit again.", found)

    def resume_admission() -> Result:
        found = ops.resume_admission()
        return ("Admission resumed: queued jobs start as capacity allows." if found["was_paused"]
                else "Admission was not paused; nothing changed."), found

    # --- budgets and costs -----------------------------------------------------------------

    def check_budget(name: str = "planned", priority: str = "normal",
                     total_timesteps: int = 4096, num_hosts: int = 4, mode: str = "place",
                     seed: int = 1, gpus: int = 0, cpus: float = 1.0, memory_mb: int = 1024,
                     max_runtime_s: float | None = None, spot: bool = False,
                     start_after: str | None = None, count: int = 1,
                     max_cost_usd: str | None = None, num_workers: int = 1) -> Result:
        from decimal import Decimal

        # Each of ``count`` alike jobs gets an equal share of the cap.
        share = None if max_cost_usd is None else str(
            (Decimal(max_cost_usd) / count).quantize(Decimal("0.000001")))
        found = ops.check_submission(
            _submission(name, priority, gpus, cpus, memory_mb, max_runtime_s, spot,
                        _config(total_timesteps, num_hosts, mode, seed, num_workers),
                        start_after), share)
        each = Decimal(found["estimated_cost_usd"])
        total = each * count
        fits = found["fits"]
        short = [b for b in found["budgets"] if Decimal(b["remaining_usd"]) < total]
        if count > 1 and short and fits:
            fits = False
            found["refusals"] = [f"{b['name']} has {usd(b['remaining_usd'])} left, the "
                                 f"{count} jobs need {usd(total)}" for b in short]
        found = {**found, "fits": fits, "count": count, "estimated_total_usd": str(total)}
        what = f"{count} such jobs: {usd(total)} ({usd(each)} each)" if count > 1 \
            else usd(each)
        minutes = found["estimated_duration_s"] / 60
        if fits:
            text = (f"It fits: estimated {what} and {minutes:.1f} min"
                    + (" each" if count > 1 else "")
                    + (f", within the ${max_cost_usd} cap" if max_cost_usd else "") + ".")
        else:
            text = f"It does not fit: estimated {what}; " + "; ".join(found["refusals"]) + "."
            if found["suggestions"]:
                text += " What would fit: " + "; ".join(found["suggestions"]) + "."
        return text, found

    def list_budgets() -> Result:
        budgets = ops.list_budgets()["budgets"]
        if not budgets:
            return "No budgets are set: nothing limits spending.", {"budgets": []}
        return "; ".join(
            f"{b['name']} ({b['scope']} {b['scope_value']}, {b['period']}, "
            f"{'hard' if b['hard'] else 'soft'}): {usd(b['committed_usd'])} committed of "
            f"{usd(b['limit_usd'])}, {usd(b['remaining_usd'])} left" for b in budgets) + ".", \
            {"budgets": budgets}

    def set_budget(name: str, limit_usd: str, scope: str = "global",
                   scope_value: str | None = None, period: str = "monthly",
                   hard: bool = True) -> Result:
        b = ops.set_budget(name, limit_usd, scope, scope_value, period, hard=hard)["budget"]
        return (f"Budget {b['name']}: {usd(b['limit_usd'])} {b['period']} "
                f"({'hard' if b['hard'] else 'soft'}, {b['scope']} {b['scope_value']}); "
                f"{usd(b['committed_usd'])} committed.", b)

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

    def hyperparameter_sweep(name: str = "sweep", method: str = "tpe", n: int = 10,
                             space: dict[str, list[Any]] | None = None,
                             total_timesteps: int = 4096, num_hosts: int = 4,
                             priority: str = "normal", max_total_usd: str | None = None,
                             pruner: str = "median", parallelism: int = 2,
                             seed: int | None = None) -> Result:
        from app.sweeps.space import DEFAULT_SPACE, from_lists

        taken = {w["name"] for w in ops.list_sweeps()["sweeps"]}
        chosen, k = name, 1
        while chosen in taken:
            k += 1
            chosen = f"{name}-{k}"
        request: dict[str, Any] = {
            "name": chosen, "n_trials": n, "sampler": method, "pruner": pruner,
            "parallelism": parallelism, "priority": priority,
            "space": from_lists(space, grid=method == "grid") if space else DEFAULT_SPACE,
            "base_config": {"total_timesteps": total_timesteps, "num_hosts": num_hosts}}
        if max_total_usd is not None:
            request["max_cost_usd"] = max_total_usd
        if seed is not None:
            request["seed"] = seed
        made = ops.create_sweep(request)["sweep"]
        cap = f", capped at {usd(made['max_cost_usd'])}" if made["max_cost_usd"] else ""
        return (f"Created sweep {made['name']!r} (id {made['id']}): a {made['n_trials']}-trial "
                f"{made['sampler']} study with {made['pruner']} pruning{cap}, "
                f"{made['parallelism']} trials at a time, {made['direction']} "
                f"{made['objective']} over " + ", ".join(made["space"]) +
                ". The dispatcher queues its trials.", {"sweep": made})

    def sweep_results(sweep: str | None = None) -> Result:
        if sweep is None:
            found = ops.list_sweeps()["sweeps"]
            if not found:
                return "There are no sweeps yet.", {"sweep": None}
            sweep = str(found[0]["id"])
        d = ops.show_sweep(sweep)["sweep"]
        return _sweep_text(d), {"sweep": d}

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

    def best_runs(limit: int = 5) -> Result:
        text, data = _best_runs(limit)
        sweeps = ops.list_sweeps()["sweeps"]
        if sweeps:  # the newest sweep's best configuration answers "which config was best?"
            d = ops.show_sweep(str(sweeps[0]["id"]))["sweep"]
            data["sweep"] = d
            text = _sweep_text(d) + " " + text
        return text, data

    def _best_runs(limit: int) -> Result:
        page = ops.list_jobs(["succeeded"], limit=1000, newest_first=True)
        rated = ranked_by_evaluation(page["jobs"])
        unrated = len(page["jobs"]) - len(rated)
        if not rated:
            return ("No finished job has an evaluation yet (one is recorded when training "
                    "ends)." + (f" {unrated} succeeded without one." if unrated else ""),
                    {"ranked": [], "unrated": unrated})
        top = rated[:limit]
        keys = differing_options(top, at_most=4)

        def settings(j: dict[str, Any]) -> str:
            shown = ", ".join(f"{k}={j['config'].get(k)}" for k in keys)
            return f" ({shown})" if shown else ""

        text = ("Ranked by evaluation (PPO's mean wait over the best heuristic's; lower is "
                "better): " + "; ".join(f"{i + 1}. job {j['id']} {j['name']!r} "
                                        f"{j['eval_ratio']:.3f}x{settings(j)}"
                                        for i, j in enumerate(top)) + ".")
        if len(rated) > limit:
            text += f" {len(rated) - limit} more evaluated."
        if unrated:
            text += f" {unrated} succeeded without an evaluation."
        return text, {"ranked": top, "unrated": unrated}

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
         "Queue several alike training jobs at once (seeds seed..seed+count-1), all or "
         "nothing. Spends compute."),
        (system_status, s.NoArgs,
         "The full status: jobs per state, the dispatcher, whether admission is paused, "
         "running jobs with progress, the next queued jobs with positions and estimated "
         "starts, and alerts."),
        (queue_status, s.NoArgs, "Only the counts: jobs per state, the dispatcher, the pause."),
        (list_jobs, s.ListJobsArgs, "List jobs in queue order (position, priority, state), "
                                    "optionally one state, or the last N submitted; says how "
                                    "many more there are."),
        (job_details, s.JobIdArgs, "One job: state history, why it waits (pending reason, "
                                   "estimated start), outcome, MLflow metrics."),
        (job_logs, s.LogsArgs, "The last lines a job's current attempt wrote."),
        (job_eta, s.JobIdArgs, "When a job should start and finish, or how long it has left."),
        (cancel_job, s.JobIdArgs, "Cancel a queued or running job. Destroys work; approval "
                                  "first."),
        (cancel_jobs, s.JobIdsArgs, "Cancel several jobs, named by id, with one approval."),
        (resume_job, s.JobIdArgs, "Return a failed, cancelled or budget-stopped job to the "
                                  "queue; it continues from its latest checkpoint. Spends "
                                  "compute."),
        (resume_jobs, s.JobIdsArgs, "Resume several jobs, named by id, with one approval."),
        (start_now, s.JobIdArgs, "Make a queued job urgent so it starts on the next tick where "
                                 "capacity allows. Costs more (urgent rate)."),
        (move_to_front, s.JobIdArgs, "Put a queued job first in the queue, keeping its priority "
                                     "class and price (admins)."),
        (pause_admission, s.PauseArgs, "Pause admission: the dispatcher starts nothing new, "
                                       "running jobs go on (admins)."),
        (resume_admission, s.NoArgs, "Resume admission after a pause (admins)."),
        (check_budget, s.CheckBudgetArgs,
         "Check whether planned training jobs (count alike ones) fit the budgets and an "
         "optional cap for all of them, before queueing; says what would fit if not. Changes "
         "nothing: use it to answer 'can I afford', 'how much would'."),
        (list_budgets, s.NoArgs, "Every budget: committed, limit, what is left."),
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
         "Create a hyperparameter search: an Optuna study of n trials (tpe by default, with "
         "median pruning of unpromising trials), run as queued jobs, its total spend capped "
         "by max_total_usd. Spends compute."),
        (sweep_results, s.SweepResultsArgs,
         "A sweep's progress and results: its best trial and configuration, trial counts "
         "(complete, pruned, failed), spend and parameter importances."),
        (dashboard, s.NoArgs, "The dashboard's numbers: queue, spend, alerts, health."),
        (run_metrics, s.JobIdArgs, "The latest MLflow metrics of a job's run."),
        (compare_runs, s.CompareRunsArgs, "MLflow metrics of several jobs side by side."),
        (best_runs, s.BestRunsArgs, "Which finished runs (and their configurations) did best, "
                                    "ranked by their evaluation against the heuristics."),
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
