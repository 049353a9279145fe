"""Argument schemas of the tools: what the model may pass, with descriptions it reads. Every
argument is bounded, so a model (or a person) cannot ask for something absurd."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.submission import Cpus, Gpus, JobName, MemoryMb, Priority, RuntimeS

Money = Field(pattern=r"^\d{1,9}(\.\d{1,6})?$", description="Dollars, e.g. '5' or '0.50'")


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class NoArgs(Args):
    pass


class JobIdArgs(Args):
    job_id: int = Field(ge=1, le=2**53, description="The job's numeric id")


class TrainingJobArgs(Args):
    # The submission contract's own field types: the agent is refused as the CLI and the API.
    name: JobName = Field(default="chat", description="Short name for the job, e.g. "
                                                      "'place-64-hosts'")
    priority: Priority = Field(default="normal",
                               description="urgent (1000), normal (100) or background (10)")
    total_timesteps: int = Field(default=4096, ge=512, le=1_000_000_000,
                                 description="Environment steps to train for")
    num_hosts: int = Field(default=4, ge=1, le=4096, description="Hosts in the simulated cluster")
    mode: Literal["place", "pick", "hierarchical"] = Field(
        default="place", description="place: choose a host; pick: choose the next job; "
                                     "hierarchical: both")
    seed: int = Field(default=1, ge=0, le=2**31, description="Training seed")
    num_workers: int = Field(default=1, ge=1, le=256,
                             description="Data-parallel training workers (DD-PPO); cpus, "
                                         "memory and gpus are all of theirs together")
    gpus: Gpus = Field(default=0, description="GPUs for the job")
    cpus: Cpus = Field(default=1.0, description="CPU cores for the job")
    memory_mb: MemoryMb = Field(default=1024, description="Memory for the job, in MB")
    max_runtime_s: RuntimeS | None = Field(
        default=None, description="Stop the job after this many seconds; omit for no limit")
    spot: bool = Field(default=False, description="Run on spot capacity (cheaper)")
    start_after: str | None = Field(
        default=None, max_length=40, pattern=r"^[\w:+ .-]+$",
        description="Start no earlier than this: ISO 8601, HH:MM, tonight, tomorrow [HH:MM], "
                    "off-peak, or 'in N minutes'; omit to start as soon as admitted")


class QueueTrainingJobArgs(TrainingJobArgs):
    pass


class CheckBudgetArgs(TrainingJobArgs):
    name: JobName = Field(default="planned", description="Name of the planned job")
    count: int = Field(default=1, ge=1, le=200, description="How many such jobs (a batch or a "
                                                            "sweep's trials)")
    max_cost_usd: str | None = Field(default=None, pattern=r"^\d{1,9}(\.\d{1,6})?$",
                                     description="A cap for all of them together, in dollars")


class SubmitBatchArgs(TrainingJobArgs):
    name: JobName = Field(default="batch",
                          description="Prefix; jobs are named prefix-1, prefix-2, ...")
    count: int = Field(ge=1, le=100, description="How many jobs (seeds seed..seed+count-1)")


class JobIdsArgs(Args):
    job_ids: list[Annotated[int, Field(ge=1, le=2**53)]] = Field(
        min_length=1, max_length=100, description="The jobs, by numeric id")


class LogsArgs(Args):
    job_id: int = Field(ge=1, le=2**53, description="The job's numeric id")
    lines: int = Field(default=50, ge=1, le=2000, description="The last this many lines")


class PauseArgs(Args):
    reason: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$",
                        description="Why, shown to everyone while paused")


class BestRunsArgs(Args):
    limit: int = Field(default=5, ge=1, le=20, description="How many to rank")


class EvaluateArgs(Args):
    job_id: int = Field(ge=1, le=2**53, description="The job's numeric id")
    seeds: list[int] | None = Field(
        default=None, min_length=1, max_length=10,
        description="Evaluate the trained policy afresh on these seeds; omit for the "
                    "evaluation recorded when training ended")


class ListJobsArgs(Args):
    state: Literal["queued", "dispatching", "waiting", "running", "succeeded", "failed",
                   "cancelled", "budget_exhausted", "pruned"] | None \
        = Field(default=None, description="Only jobs in this state; omit for all")
    limit: int = Field(default=20, ge=1, le=200, description="At most this many")
    last: int | None = Field(default=None, ge=1, le=200,
                             description="The most recently submitted this many, newest first")


class SetBudgetArgs(Args):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    limit_usd: str = Money
    scope: Literal["global", "team", "project"] = "global"
    scope_value: str | None = Field(default=None, max_length=100,
                                    description="The team or project (for those scopes)")
    period: Literal["weekly", "monthly"] = "monthly"
    hard: bool = Field(default=True, description="Hard refuses work that would overspend")


class ReportArgs(Args):
    period: Literal["day", "week", "month"] = "week"
    group_by: Literal["team", "project", "priority", "status"] = "team"


class RecommendArgs(Args):
    job_id: int | None = Field(default=None, ge=1, le=2**53,
                               description="The job; omit for the most expensive open one")


class CompareConfigsArgs(Args):
    configs: list[dict[str, Any]] = Field(min_length=1, max_length=20,
                                          description="Training configs (option -> value)")
    gpus: int = Field(default=0, ge=0, le=8)
    priority: Priority = "normal"


class CompareRunsArgs(Args):
    job_ids: list[Annotated[int, Field(ge=1, le=2**53)]] = Field(
        min_length=2, max_length=20, description="Jobs to compare")


class SweepArgs(Args):
    name: str = Field(default="sweep", min_length=1, max_length=100,
                      pattern=r"^[^\x00-\x1f\x7f]+$",
                      description="The sweep's name (a number is added if it is taken)")
    method: Literal["tpe", "random", "grid", "qmc", "cmaes"] = Field(
        default="tpe", description="The sampler: tpe (adaptive), random, grid, qmc, cmaes")
    n: int = Field(default=10, ge=1, le=1000, description="Trials to run")
    space: dict[str, list[Any]] | None = Field(
        default=None, description="option -> [low, high] or a list of choices (grid: the "
                                  "values); omit for lr, ent_coef, clip_coef, gamma")
    total_timesteps: int = Field(default=4096, ge=512, le=1_000_000_000)
    num_hosts: int = Field(default=4, ge=1, le=4096, description="Hosts in the simulated cluster")
    priority: Priority = "normal"
    max_total_usd: str | None = Field(default=None, pattern=r"^\d{1,9}(\.\d{1,6})?$",
                                      description="Hard cap on the whole study's spend")
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    parallelism: int = Field(default=2, ge=1, le=64, description="Trials running at once")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class SweepResultsArgs(Args):
    sweep: str | None = Field(default=None, min_length=1, max_length=200,
                              description="A sweep's name or id; omit for the newest")
