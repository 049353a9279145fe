"""The API's request and response bodies. Requests are strict (unknown fields are errors, and a
validation error names the field); responses describe exactly what the operations return, so
the OpenAPI schema can be checked against the server's real answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.submission import NAME_PATTERN, JobSubmission, Priority

State = Literal["queued", "dispatching", "waiting", "running", "succeeded", "failed",
                "cancelled", "budget_exhausted", "pruned"]


__all__ = ["JobSubmission"]  # the one submission contract, re-exported for the routes


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests --------------------------------------------------------------------------------


class BatchSubmission(Strict):
    # Items are validated by the queue, all of them, so a rejected batch lists every bad
    # item (by index) in one answer, exactly as `oppen queue submit-batch` does locally.
    jobs: list[dict[str, Any]] = Field(min_length=1, max_length=10_000,
                                       description="Jobs, each as in POST /jobs")


class SubmissionCheck(Strict):
    job: dict[str, Any] = Field(description="A job as in POST /jobs (name optional)")
    max_cost_usd: str | None = Field(default=None, pattern=r"^\d{1,12}(\.\d{1,6})?$",
                                     description="A cap for this job alone")


class RunComparison(Strict):
    job_ids: list[Annotated[int, Field(ge=1, le=2**53)]] = Field(min_length=2, max_length=20)


class PriorityChange(Strict):
    priority: Priority


class ShapeEstimate(Strict):
    cpus: float = Field(default=1.0, ge=0, le=1024)
    memory_gb: float = Field(default=1.0, ge=0, le=16 * 1024)
    gpus: int = Field(default=0, ge=0, le=64)
    priority: Priority = "normal"
    spot: bool = False
    hours: float | None = Field(default=None, gt=0, le=24 * 366)
    timesteps: int | None = Field(default=None, gt=0, le=10**12)
    start: datetime | None = None


class Comparison(Strict):
    configs: list[dict[str, Any]] = Field(min_length=1, max_length=100)
    cpus: float = Field(default=1.0, ge=0, le=1024)
    memory_gb: float = Field(default=1.0, ge=0, le=16 * 1024)
    gpus: int = Field(default=0, ge=0, le=64)
    priority: Priority = "normal"


class BudgetTerms(Strict):
    limit_usd: str = Field(pattern=r"^\d{1,12}(\.\d{1,6})?$", description="Dollars per period")
    scope: Literal["global", "team", "project"] = "global"
    scope_value: str | None = Field(default=None, min_length=1, max_length=100,
                                    pattern=NAME_PATTERN)
    period: Literal["weekly", "monthly", "custom"] = "monthly"
    start: datetime | None = None
    end: datetime | None = None
    hard: bool = True
    thresholds: list[float] = Field(default=[0.5, 0.8, 1.0], min_length=0, max_length=10)


class TokenRequest(Strict):
    team: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    role: Literal["viewer", "submitter", "admin"]
    name: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


# --- responses -------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong, written for a person")
    kind: str = Field(description="validation | invalid | invalid_batch | unauthenticated | "
                                  "forbidden | not_found | conflict | budget_exceeded | "
                                  "too_slow | too_large | internal")
    errors: list[dict[str, Any]] = Field(default_factory=list,
                                         description="Per field or per batch item")


class Event(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    at: str
    from_: str | None = Field(alias="from")
    to: str
    reason: str


class Attempt(BaseModel):
    """One attempt: its own start and end, how it ended, where it resumed, what it cost."""

    number: int
    started_at: str | None
    ended_at: str | None
    outcome: str
    reason: str
    resumed_from_step: int | None
    cost_usd: str | None


class JobOut(BaseModel):
    id: int
    name: str
    state: State
    priority_class: Priority
    priority: int
    team: str
    project: str
    position: int | None
    pending_reason: str | None
    pending_detail: str | None
    eta_start: str | None
    cpus: float
    memory_mb: int
    gpus: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    attempts: int
    max_attempts: int
    not_before: str | None
    max_runtime_s: float | None
    estimated_duration_s: float | None
    estimated_cost_usd: str | None
    cost_usd: str | None
    spot: bool
    kueue_position: int | None
    resumed_from_step: int | None
    attempt_history: list[Attempt]
    progress_step: int | None
    progress_sps: float | None
    eval_ratio: float | None = Field(
        default=None, description="PPO's mean wait over the best heuristic's at the end of "
                                  "training (lower is better); None before")
    exit_code: int | None
    reason: str | None
    mlflow_run_id: str | None
    config: dict[str, Any]
    events: list[Event]


class JobList(BaseModel):
    jobs: list[JobOut]
    limit: int
    offset: int
    total: int = Field(description="How many jobs match, in all pages")


class Paused(BaseModel):
    since: str
    by: str
    reason: str


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class PauseResult(BaseModel):
    paused: Paused | None
    was_paused: bool | None = None


class BatchResult(BaseModel):
    queued: list[int]
    errors: list[dict[str, Any]]


class Logs(BaseModel):
    job_id: int
    attempt: int
    logs: str


class RunMetrics(BaseModel):
    job_id: int
    run_id: str | None
    status: str | None
    metrics: dict[str, float]
    params: dict[str, str]


class Evaluation(BaseModel):
    job_id: int
    run_id: str | None
    evaluated: bool
    fresh: bool = Field(description="Evaluated now on the given seeds, not the recorded table")
    seeds: list[int]
    results: dict[str, dict[str, float]] = Field(description="policy -> mean_wait_s, ...")
    best_heuristic: str | None
    metric: str = Field("mean_wait_s", description="The column the run is judged by")
    ppo_vs_best_heuristic_ratio: float | None = None
    ppo_vs_best_heuristic_wait_ratio: float | None


class Check(BaseModel):
    fits: bool
    estimated_cost_usd: str
    estimated_duration_s: float
    cap_usd: str | None
    budgets: list[dict[str, Any]]
    refusals: list[str]
    suggestions: list[str]


class SweepOut(BaseModel):
    sweep: dict[str, Any] = Field(description="The sweep (oppen sweep show --json)")


class SweepList(BaseModel):
    sweeps: list[dict[str, Any]]


class Lease(BaseModel):
    holder: str
    expires_at: str
    heartbeat_at: str
    leading: bool = Field(description="The lease has not expired: a dispatcher leads now")
    degraded: str | None = Field(description="Why the leader's last tick went wrong, if it did")


class QueueStatus(BaseModel):
    counts: dict[str, int]
    queued_by_class: dict[str, int]
    dispatcher: Lease | None
    paused: Paused | None = None
    team: str | None


class BudgetOut(BaseModel):
    name: str
    scope: str
    scope_value: str
    period: str
    hard: bool
    limit_usd: str
    window_start: str
    window_end: str
    spent_usd: str
    committed_usd: str
    remaining_usd: str
    used_fraction: float | None = Field(description="committed / limit; null when anything "
                                                    "is committed against a $0 limit")
    thresholds: list[float]
    crossed: list[float]
    burn_per_day_usd: str
    runs_out_at: str | None


class BudgetList(BaseModel):
    budgets: list[BudgetOut]


class BudgetOne(BaseModel):
    budget: BudgetOut


class Deleted(BaseModel):
    deleted: str


class HealthCheck(BaseModel):
    component: str
    status: Literal["ok", "warn", "error"]
    detail: str


class Health(BaseModel):
    status: Literal["ok", "warn", "error"]
    checks: list[HealthCheck]


class TokenOut(BaseModel):
    id: int
    name: str
    team: str
    role: str
    created_at: str
    last_used_at: str | None
    revoked: bool


class NewToken(TokenOut):
    token: str = Field(description="The bearer token; shown this once, stored only hashed")


class TokenList(BaseModel):
    tokens: list[TokenOut]


class Liveness(BaseModel):
    status: Literal["ok"]
