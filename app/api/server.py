"""The HTTP API over LocalOperations: routes parse the request, name the caller from its bearer
token, and hand over; no logic of their own. Errors map to statuses in one place."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api import schemas as m
from app.api.access import Principal
from app.api.errors import STATUS
from app.api.operations import MAX_PAGE, LocalOperations
from app.api.tokens import TokenService
from app.core.errors import AuthenticationError, OppenError
from app.core.queue import BatchError
from app.core.submission import SubmissionError, describe, field_errors
from app.core.wal_checkpoint import WalCheckpointer
from app.dashboard.schema import SCHEMA as DASHBOARD_SCHEMA
from app.sweeps.contract import SweepRequest
from app.web.access import AccessLog
from app.web.limits import BodyLimit

log = logging.getLogger(__name__)
API = "/api/v1"
WORKER_THREADS = 4
# Most specific first: the first match decides the status.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": m.ErrorBody, "description": text} for code, text in [
        (400, "The request cannot be carried out as asked"),
        (401, "No valid bearer token"), (403, "The token's role or team does not allow it"),
        (404, "No such job, budget or token (or not visible to this token)"),
        (409, "Conflicts with the job's state, or a hard budget refused it"),
        (408, "The request body did not arrive in time"),
        (413, "The request body is too large"),
        (422, "A field is missing or invalid; the error names it"),
        (500, "A fault in the server")]}


def error_response(status: int, kind: str, message: str,
                   errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, "kind": kind, "errors": errors or []}, status,
                        headers=headers)


BEARER = HTTPBearer(auto_error=False)


async def caller(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
                 ) -> LocalOperations:
    """The operations as the token's holder; 401 without a valid token. Run on the event
    loop, not a worker thread: a known token is answered from memory."""
    principal: Principal | None = request.app.state.tokens.authenticate(
        credentials.credentials if credentials else None)
    if principal is None:
        raise AuthenticationError("a valid bearer token is required "
                                  "(Authorization: Bearer <token>)")
    state = request.app.state
    return LocalOperations(state.services, principal, state.write_lock, state.tokens)


Ops = Annotated[LocalOperations, Depends(caller)]
# Bounded so an id past what the database stores is a 422, never an overflow.
JobId = Annotated[int, Path(ge=1, le=2**53)]
TokenId = Annotated[int, Path(ge=1, le=2**53)]
BudgetName = Annotated[str, Path(min_length=1, max_length=100, pattern=m.NAME_PATTERN)]
SweepRef = Annotated[str, Path(min_length=1, max_length=200, pattern=m.NAME_PATTERN,
                               description="The sweep's name or id")]


def create_app(services: Any, on_start: Callable[[], Any] | None = None,
               on_stop: Callable[[Any], None] | None = None) -> FastAPI:
    """The API over ``services``. ``on_start``/``on_stop`` run the dispatcher beside it."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Routes are plain functions run in worker threads. A few threads keep both cores
        # busy; dozens only fight over the GIL (and SQLite's one writer), which showed as
        # seconds of latency under load.
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        checkpointer = WalCheckpointer(services.engine)
        checkpointer.start()
        handle = on_start() if on_start else None
        try:
            yield
        finally:
            if on_stop is not None:
                on_stop(handle)
            checkpointer.stop()

    app = FastAPI(title="Oppen API", version="1", lifespan=lifespan, responses=ERRORS,
                  description="Queue, budget, cost and watch PPO training jobs. Every endpoint "
                              "but /healthz needs `Authorization: Bearer <token>` "
                              "(`oppen token create`).")
    app.state.services = services
    app.state.tokens = TokenService(services.engine)
    app.state.write_lock = threading.Lock() if services.engine.dialect.name == "sqlite" \
        else nullcontext()

    @app.exception_handler(OppenError)
    async def oppen_error(_: Request, exc: OppenError) -> JSONResponse:
        for cls, status, kind in STATUS:
            if isinstance(exc, cls):
                errors = exc.errors if isinstance(exc, BatchError) else \
                    exc.fields if isinstance(exc, SubmissionError) else None
                return error_response(status, kind, str(exc), errors)
        return error_response(400, "invalid", str(exc))  # pragma: no cover - OppenError above

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "invalid", 408: "too_slow", 413: "too_large",
                 401: "unauthenticated"}
        return error_response(exc.status_code, kinds.get(exc.status_code, "invalid"),
                              str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Worded as the submission contract words its errors, wherever they are caught.
        fields = field_errors(list(exc.errors()), drop_prefix=("body",))
        return error_response(422, "validation", describe(fields), fields)

    @app.exception_handler(Exception)
    async def fault(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return error_response(500, "internal", f"internal error ({type(exc).__name__})")


    # --- jobs ------------------------------------------------------------------------------

    @app.post(f"{API}/jobs", status_code=201, response_model=m.JobOut, tags=["jobs"])
    async def submit(body: m.JobSubmission, ops: Ops,
                     idempotency_key: Annotated[str | None, Header(
                         alias="Idempotency-Key", max_length=200,
                         description="Retries with the same key (per team) queue one job")
                     ] = None) -> Any:
        """Queue one training job (validated, estimated and budget-checked)."""
        # On the event loop rather than a worker thread: submissions take the one write lock
        # in turn anyway, and the thread hand-off cost more than the submission (measured
        # with `oppen bench api`: 97/s and seconds of latency in threads, 200/s here). The
        # answer skips re-validation against JobOut; schemathesis checks it matches.
        return JSONResponse(ops.submit(body.model_dump(exclude_none=True), idempotency_key),
                            status_code=201)

    @app.post(f"{API}/jobs/batch", status_code=201, response_model=m.BatchResult,
              tags=["jobs"])
    def submit_batch(body: m.BatchSubmission, ops: Ops) -> Any:
        """Queue every job or none; 422 lists each invalid item."""
        return ops.submit_batch(body.jobs)

    @app.post(f"{API}/jobs/check", response_model=m.Check, tags=["jobs"])
    def check(body: m.SubmissionCheck, ops: Ops) -> Any:
        """Would this job be accepted now (budgets, an optional cap)? Changes nothing."""
        return ops.check_submission(body.job, body.max_cost_usd)

    @app.post(f"{API}/runs/compare", response_model=dict[str, Any], tags=["jobs"])
    def compare_runs(body: m.RunComparison, ops: Ops) -> Any:
        """The MLflow metrics of several jobs' runs side by side."""
        return ops.compare_runs(body.job_ids)

    @app.get(f"{API}/jobs", response_model=m.JobList, tags=["jobs"])
    def list_jobs(ops: Ops, state: Annotated[list[m.State] | None, Query()] = None,
                  team: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
                  priority: m.Priority | None = None,
                  limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
                  offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
                  order: Literal["queue", "newest"] = "queue") -> Any:
        """Jobs in queue order (or newest first), with position, pending reason and ETA for
        waiting ones; ``total`` says how many match in all."""
        return ops.list_jobs(list(state) if state else None, team, priority, limit, offset,
                             newest_first=order == "newest")

    def job_path(path: str) -> str:
        return f"{API}/jobs/{{job_id}}{path}"

    @app.get(job_path(""), response_model=m.JobOut, tags=["jobs"])
    def show(job_id: JobId, ops: Ops) -> Any:
        """One job with its state history and why it waits."""
        return ops.show_job(job_id)

    @app.post(job_path("/cancel"), response_model=m.JobOut, tags=["jobs"])
    def cancel(job_id: JobId, ops: Ops) -> Any:
        """Cancel: queued jobs at once, running ones on the dispatcher's next tick."""
        return ops.cancel_job(job_id)

    @app.post(job_path("/resume"), response_model=m.JobOut, tags=["jobs"])
    def resume(job_id: JobId, ops: Ops) -> Any:
        """Return a failed, cancelled or budget-stopped job to the queue; it continues from
        its latest checkpoint."""
        return ops.resume_job(job_id)

    @app.post(job_path("/retry"), response_model=m.JobOut, tags=["jobs"])
    def retry(job_id: JobId, ops: Ops) -> Any:
        """The same as /resume (its name before checkpoints were resumed)."""
        return ops.resume_job(job_id)

    @app.post(job_path("/priority"), response_model=m.JobOut, tags=["jobs"])
    def set_priority(job_id: JobId, body: m.PriorityChange, ops: Ops) -> Any:
        """Move a queued job to another priority class."""
        return ops.set_priority(job_id, body.priority)

    @app.get(job_path("/logs"), response_model=m.Logs, tags=["jobs"])
    def logs(job_id: JobId, ops: Ops,
             lines: Annotated[int, Query(ge=1, le=10_000)] = 50) -> Any:
        """The last lines of the job's current (or last) attempt."""
        return ops.job_logs(job_id, lines)

    @app.get(job_path("/metrics"), response_model=m.RunMetrics, tags=["jobs"])
    def metrics(job_id: JobId, ops: Ops) -> Any:
        """The latest value of every metric (and the params) of the job's MLflow run."""
        return ops.job_metrics(job_id)

    @app.get(job_path("/evaluation"), response_model=m.Evaluation, tags=["jobs"])
    def evaluation(job_id: JobId, ops: Ops,
                   seed: Annotated[list[Annotated[int, Query(ge=0, le=2**31)]] | None,
                                   Query(max_length=10)] = None) -> Any:
        """The job's policy against the heuristics: the recorded table, or with `seed`
        (repeatable, at most 10) a fresh evaluation of its checkpoint on those seeds."""
        return ops.evaluation(job_id, list(seed) if seed else None)

    @app.post(job_path("/start-now"), response_model=m.JobOut, tags=["jobs"])
    def start_now(job_id: JobId, ops: Ops) -> Any:
        """Move a queued job to urgent so the next tick starts it where capacity allows."""
        return ops.start_now(job_id)

    @app.post(job_path("/front"), response_model=m.JobOut, tags=["jobs"])
    def move_to_front(job_id: JobId, ops: Ops) -> Any:
        """Put a queued job first in queue order, its priority class kept (admins)."""
        return ops.move_to_front(job_id)

    @app.get(f"{API}/queue", response_model=m.QueueStatus, tags=["jobs"])
    def queue_status(ops: Ops) -> Any:
        """Jobs per state, queued jobs per class, the dispatcher's lease, and whether
        admission is paused."""
        return ops.queue_status()

    @app.post(f"{API}/queue/pause", response_model=m.PauseResult, tags=["jobs"])
    def pause_admission(body: m.PauseRequest, ops: Ops) -> Any:
        """Admit nothing new until unpaused; running jobs go on (admins)."""
        return ops.pause_admission(body.reason)

    @app.post(f"{API}/queue/unpause", response_model=m.PauseResult, tags=["jobs"])
    def resume_admission(ops: Ops) -> Any:
        """Admit queued jobs again (admins)."""
        return ops.resume_admission()

    # --- costs -----------------------------------------------------------------------------

    @app.get(job_path("/cost"), response_model=dict[str, Any], tags=["costs"])
    def job_cost(job_id: JobId, ops: Ops) -> Any:
        """The job's estimated cost from its expected start."""
        return ops.estimate_job_cost(job_id)

    @app.get(job_path("/forecast"), response_model=dict[str, Any], tags=["costs"])
    def job_forecast(job_id: JobId, ops: Ops) -> Any:
        """Remaining time and final cost (95% interval), from live progress when running."""
        return ops.forecast(job_id)

    @app.get(job_path("/recommendations"), response_model=dict[str, Any], tags=["costs"])
    def recommendations(job_id: JobId, ops: Ops) -> Any:
        """Ways to spend less on the job, each with its saving."""
        return ops.recommend(job_id)

    @app.get(f"{API}/costs/recommendations", response_model=dict[str, Any], tags=["costs"])
    def general_recommendations(ops: Ops) -> Any:
        """Savings for this team's most expensive open job, or what the price list rewards."""
        return ops.recommend(None)

    @app.get(f"{API}/queue/forecast", response_model=dict[str, Any], tags=["costs"])
    def queue_forecast(ops: Ops) -> Any:
        """When each waiting job should start and finish and what it will cost; budgets'
        burn rates and run-out dates."""
        return ops.forecast(None)

    @app.post(f"{API}/costs/estimate", response_model=dict[str, Any], tags=["costs"])
    def estimate(body: m.ShapeEstimate, ops: Ops) -> Any:
        """Price a resource shape for some hours or timesteps."""
        return ops.estimate_shape_cost(body.cpus, body.memory_gb, body.gpus, body.priority,
                                       body.spot, body.hours, body.timesteps,
                                       body.start.isoformat() if body.start else None)

    @app.get(f"{API}/costs/report", response_model=dict[str, Any], tags=["costs"])
    def report(ops: Ops, period: Literal["day", "week", "month"] = "week",
               by: Literal["team", "project", "priority", "status"] = "team") -> Any:
        """Spend this day, week or month, grouped, against the previous period."""
        return ops.cost_report(period, by)

    @app.post(f"{API}/costs/compare", response_model=dict[str, Any], tags=["costs"])
    def compare(body: m.Comparison, ops: Ops) -> Any:
        """Cost, duration and expected quality of configs side by side."""
        return ops.compare(body.configs, body.cpus, body.memory_gb, body.gpus, body.priority)

    # --- budgets ---------------------------------------------------------------------------

    @app.get(f"{API}/budgets", response_model=m.BudgetList, tags=["budgets"])
    def budgets(ops: Ops) -> Any:
        """Every budget this token may see: spent, committed, burn rate, run-out date."""
        return ops.list_budgets()

    @app.get(f"{API}/budgets/{{name}}", response_model=m.BudgetList, tags=["budgets"])
    def budget(name: BudgetName, ops: Ops) -> Any:
        """One budget."""
        return ops.list_budgets(name)

    @app.put(f"{API}/budgets/{{name}}", response_model=m.BudgetOne, tags=["budgets"])
    def set_budget(name: BudgetName, body: m.BudgetTerms, ops: Ops) -> Any:
        """Create or change a budget (admins)."""
        return ops.set_budget(name, body.limit_usd, body.scope, body.scope_value, body.period,
                              body.start.isoformat() if body.start else None,
                              body.end.isoformat() if body.end else None, body.hard,
                              body.thresholds)

    @app.delete(f"{API}/budgets/{{name}}", response_model=m.Deleted, tags=["budgets"])
    def delete_budget(name: BudgetName, ops: Ops) -> Any:
        """Remove a budget (admins)."""
        return ops.delete_budget(name)

    # --- sweeps ----------------------------------------------------------------------------

    @app.post(f"{API}/sweeps", status_code=201, response_model=m.SweepOut, tags=["sweeps"])
    def create_sweep(body: SweepRequest, ops: Ops) -> Any:
        """Create a hyperparameter search (an Optuna study); the dispatcher queues its
        trials (submitters, for their team)."""
        return ops.create_sweep(body)

    @app.get(f"{API}/sweeps", response_model=m.SweepList, tags=["sweeps"])
    def list_sweeps(ops: Ops) -> Any:
        """Every sweep this token may see, newest first."""
        return ops.list_sweeps()

    @app.get(f"{API}/sweeps/{{ref}}", response_model=m.SweepOut, tags=["sweeps"])
    def show_sweep(ref: SweepRef, ops: Ops) -> Any:
        """A sweep's trials, best trial and configuration, and parameter importances."""
        return ops.show_sweep(ref)

    @app.post(f"{API}/sweeps/{{ref}}/stop", response_model=m.SweepOut, tags=["sweeps"])
    def stop_sweep(ref: SweepRef, ops: Ops) -> Any:
        """Stop asking for trials; cancel the sweep's queued and running trials."""
        return ops.stop_sweep(ref)

    @app.post(f"{API}/sweeps/{{ref}}/resume", response_model=m.SweepOut, tags=["sweeps"])
    def resume_sweep(ref: SweepRef, ops: Ops) -> Any:
        """Ask for trials again, until the sweep's trial count is reached."""
        return ops.resume_sweep(ref)

    # --- the whole picture -----------------------------------------------------------------

    dashboard_schema = {k: v for k, v in DASHBOARD_SCHEMA.items()
                        if k not in ("$schema", "title")}

    @app.get(f"{API}/dashboard", tags=["system"], responses={
        200: {"description": "The dashboard (schema_version 2), as `oppen dashboard --json`",
              "content": {"application/json": {"schema": dashboard_schema}}}})
    def dashboard(ops: Ops, recent: Annotated[int, Query(ge=1, le=200)] = 10) -> Any:
        """Cluster, queue, running and recent jobs, costs, budgets, alerts and health."""
        return JSONResponse(ops.dashboard(recent))

    @app.get(f"{API}/health", response_model=m.Health, tags=["system"])
    def health(ops: Ops) -> Any:
        """Database, tracking store, dispatcher lease and executor."""
        return ops.health()

    @app.get("/healthz", response_model=m.Liveness, tags=["system"])
    def liveness() -> Any:
        """Liveness for probes; needs no token and says nothing else."""
        return {"status": "ok"}

    # --- tokens ----------------------------------------------------------------------------

    @app.post(f"{API}/tokens", status_code=201, response_model=m.NewToken, tags=["tokens"])
    def create_token(body: m.TokenRequest, ops: Ops) -> Any:
        """Create a token (admins); the secret is in this response only."""
        return ops.create_token(body.team, body.role, body.name)

    @app.get(f"{API}/tokens", response_model=m.TokenList, tags=["tokens"])
    def list_tokens(ops: Ops) -> Any:
        """Every token, without its secret (admins)."""
        return ops.list_tokens()

    @app.delete(f"{API}/tokens/{{token_id}}", response_model=m.TokenOut, tags=["tokens"])
    def revoke_token(token_id: TokenId, ops: Ops) -> Any:
        """Revoke a token (admins); it stops working at once."""
        return ops.revoke_token(token_id)

    app.add_middleware(BodyLimit, limit=services.settings.server_max_body_bytes,
                       refuse=lambda limit: error_response(
                           413, "too_large", f"request body over the limit of {limit} bytes"))
    app.add_middleware(AccessLog)
    return app
