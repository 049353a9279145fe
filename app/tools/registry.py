"""Builds the agent's tools over Oppen's operations (local, or an API server's when
OPPEN_SERVER_URL is set). Each returns (text for the model, structured data for the
interface): LangChain's content_and_artifact format."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from app.api.operations import Operations
from app.core.errors import OppenError
from app.tools.schemas import JobIdArgs, ListJobsArgs, NoArgs, QueueTrainingJobArgs

# Tools that spend money or destroy work: the agent asks a person before running them.
SPENDING_OR_DESTRUCTIVE = frozenset({"queue_training_job", "cancel_job"})


def build_tools(ops: Operations) -> list[BaseTool]:
    def queue_training_job(name: str, priority: str = "normal", total_timesteps: int = 4096,
                           num_hosts: int = 4, seed: int = 1) -> tuple[str, dict[str, Any]]:
        view = ops.submit({"name": name, "priority": priority,
                           "config": {"total_timesteps": total_timesteps,
                                      "num_hosts": num_hosts, "seed": seed}})
        return (f"Queued job {view['id']} '{view['name']}' ({priority}, {total_timesteps} "
                f"steps), position {view['position']}.", view)

    def queue_status() -> tuple[str, dict[str, Any]]:
        data = ops.queue_status()
        c = data["counts"]
        text = (f"{c['queued']} queued, {c['dispatching'] + c['running']} running, "
                f"{c['succeeded']} succeeded, {c['failed']} failed, {c['cancelled']} cancelled.")
        return text, data

    def list_jobs(state: str | None = None) -> tuple[str, dict[str, Any]]:
        rows = ops.list_jobs([state] if state else None)["jobs"]
        if not rows:
            return "No jobs" + (f" in state {state}." if state else "."), {"jobs": []}
        lines = [f"#{r['id']} {r['name']} [{r['priority_class']}] {r['state']}" for r in rows[:20]]
        more = f" (+{len(rows) - 20} more)" if len(rows) > 20 else ""
        return "; ".join(lines) + more, {"jobs": rows}

    def job_details(job_id: int) -> tuple[str, dict[str, Any]]:
        view = ops.show_job(job_id)
        history = " -> ".join(e["to"] for e in view["events"])
        text = f"Job {job_id} '{view['name']}' is {view['state']} (history: {history})."
        if view["mlflow_run_id"]:
            view["metrics"] = ops.job_metrics(job_id)["metrics"]
            ret = view["metrics"].get("charts/episodic_return")
            if ret is not None:
                text += f" Last episodic return {ret:.3f}."
        return text, view

    def cancel_job(job_id: int) -> tuple[str, dict[str, Any]]:
        view = ops.cancel_job(job_id)
        return (f"Job {job_id} is {view['state']} ({view['reason']}).",
                {"id": view["id"], "state": view["state"]})

    specs = [
        (queue_training_job, QueueTrainingJobArgs,
         "Queue a PPO training job that learns a cluster placement policy in simrs. Spends "
         "compute; ask before using."),
        (queue_status, NoArgs, "Summarise the queue: how many jobs are queued, running, "
                               "succeeded, failed or cancelled."),
        (list_jobs, ListJobsArgs, "List jobs in queue order, optionally only one state."),
        (job_details, JobIdArgs, "Show one job: state, history and its MLflow metrics."),
        (cancel_job, JobIdArgs, "Cancel a queued or running job. Destroys work; ask first."),
    ]
    return [StructuredTool.from_function(func=_errors_to_model(f), name=f.__name__,
                                         description=d, args_schema=s,
                                         response_format="content_and_artifact",
                                         handle_tool_error=True)
            for f, s, d in specs]


def _errors_to_model(func: Callable[..., Any]) -> Callable[..., Any]:
    """A person's mistake (unknown job, bad value) goes back to the model as text."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OppenError as exc:
            raise ToolException(f"error: {exc}") from exc

    return wrapper
