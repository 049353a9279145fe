"""Everything a person (or the agent) can ask of Oppen, as one interface with two
implementations: LocalOperations over the services in this process, and RemoteOperations
(app.api.client) over HTTP against `oppen serve`, whose routes call LocalOperations. So the
CLI, the dashboard and the agent's tools behave the same either way, and authorization lives
in one place.

Every method returns plain JSON-able data, raises Oppen's errors (ConfigError, NotFoundError,
InvalidTransitionError, AuthenticationError, PermissionDeniedError, BudgetExceeded), and checks
the principal's role and team before it touches anything. A job of another team is reported as
not existing, so a token cannot probe which ids are taken.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from app.api.access import LOCAL_ADMIN, Principal, Role
from app.api.tokens import TokenService, token_dict
from app.core.errors import ConfigError, NotFoundError, PermissionDeniedError
from app.core.models import Job
from app.core.queue import SUBMISSION_FIELDS

# The most jobs one listing returns, and one batch may hold.
MAX_PAGE = 1000
MAX_BATCH = 10_000
MAX_ID = 2**53
BUDGET_DEFAULT_THRESHOLDS = (0.5, 0.8, 1.0)


class Operations(ABC):
    """The interface; see the module docstring."""

    # --- jobs ------------------------------------------------------------------------------
    @abstractmethod
    def submit(self, item: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    def submit_batch(self, items: list[dict[str, Any]]) -> dict[str, Any]: ...

    @abstractmethod
    def list_jobs(self, states: list[str] | None = None, team: str | None = None,
                  priority: str | None = None, limit: int = 200,
                  offset: int = 0) -> dict[str, Any]: ...

    @abstractmethod
    def show_job(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def cancel_job(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def retry_job(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def set_priority(self, job_id: int, priority: str) -> dict[str, Any]: ...

    @abstractmethod
    def job_logs(self, job_id: int, lines: int = 50) -> dict[str, Any]: ...

    @abstractmethod
    def job_metrics(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def compare_runs(self, job_ids: list[int]) -> dict[str, Any]: ...

    @abstractmethod
    def evaluation(self, job_id: int, seeds: list[int] | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def start_now(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def check_submission(self, item: dict[str, Any],
                         max_cost_usd: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def sweep(self, name: str, base_config: dict[str, Any] | None = None,
              method: str = "random", space: dict[str, Any] | None = None, n: int = 10,
              seed: int = 0, priority: str = "normal",
              max_total_usd: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def queue_status(self) -> dict[str, Any]: ...

    # --- costs and budgets -----------------------------------------------------------------
    @abstractmethod
    def estimate_job_cost(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def estimate_shape_cost(self, cpus: float = 1.0, memory_gb: float = 1.0, gpus: int = 0,
                            priority: str = "normal", spot: bool = False,
                            hours: float | None = None, timesteps: int | None = None,
                            start: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def forecast(self, job_id: int | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def cost_report(self, period: str = "week", group_by: str = "team") -> dict[str, Any]: ...

    @abstractmethod
    def recommend(self, job_id: int | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def compare(self, configs: list[dict[str, Any]], cpus: float = 1.0, memory_gb: float = 1.0,
                gpus: int = 0, priority: str = "normal") -> dict[str, Any]: ...

    @abstractmethod
    def list_budgets(self, name: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def set_budget(self, name: str, limit_usd: str, scope: str = "global",
                   scope_value: str | None = None, period: str = "monthly",
                   start: str | None = None, end: str | None = None, hard: bool = True,
                   thresholds: list[float] | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def delete_budget(self, name: str) -> dict[str, Any]: ...

    # --- the whole picture -----------------------------------------------------------------
    @abstractmethod
    def dashboard(self, recent: int = 10) -> dict[str, Any]: ...

    @abstractmethod
    def health(self) -> dict[str, Any]: ...

    # --- tokens ----------------------------------------------------------------------------
    @abstractmethod
    def create_token(self, team: str, role: str, name: str = "") -> dict[str, Any]: ...

    @abstractmethod
    def list_tokens(self) -> dict[str, Any]: ...

    @abstractmethod
    def revoke_token(self, token_id: int) -> dict[str, Any]: ...


def _when(value: str | None, zone: Any, label: str) -> datetime | None:
    """An ISO time; without an offset it is read in the pricing time zone."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} {value!r} is not an ISO time like 2026-11-24T17:30") \
            from None
    return at if at.tzinfo else at.replace(tzinfo=zone)


class LocalOperations(Operations):
    """Over the services of this process, as ``principal`` (the local owner by default).
    ``write_lock``, when given, serialises the changing operations of this process: SQLite
    takes one writer at a time, and waiting on a lock is far cheaper than its busy handler's
    sleep-and-retry when a server's threads write at once."""

    def __init__(self, services: Any, principal: Principal = LOCAL_ADMIN,
                 write_lock: AbstractContextManager[Any] | None = None,
                 tokens: TokenService | None = None) -> None:
        self.services = services
        self.principal = principal
        self._write_lock = write_lock if write_lock is not None else nullcontext()
        # The server passes its own, so a revocation also clears what it remembers.
        self._token_service = tokens

    # --- helpers ---------------------------------------------------------------------------

    def _visible(self, job_id: int) -> Job:
        """The job, if this principal may see it; otherwise exactly as if it did not exist."""
        job = None
        if isinstance(job_id, int) and 1 <= job_id <= MAX_ID:  # beyond: no such row, ever
            try:
                job = self.services.queue.get(job_id)
            except NotFoundError:
                job = None
        if job is None or not self.principal.sees_team(job.team):
            raise NotFoundError(f"no job with id {job_id}")
        return job

    def _own_item(self, item: Any) -> dict[str, Any]:
        """A submission, with the team filled in (and checked) from the token."""
        if not isinstance(item, dict):
            raise ConfigError("each job must be an object with at least a name")
        item = dict(item)
        team = item.get("team")
        if self.principal.is_admin:
            item.setdefault("team", self.principal.team)
        elif team is None:
            item["team"] = self.principal.team
        elif team != self.principal.team:
            raise PermissionDeniedError(
                f"this token submits for team {self.principal.team}, not {team}")
        return item

    def _submission(self, item: Any, default_name: str | None = None) -> dict[str, Any]:
        """One job as submitted: an object of known fields, with a name, its team settled."""
        item = self._own_item(item)
        if default_name is not None:
            item.setdefault("name", default_name)
        if "name" not in item:
            raise ConfigError("a job needs a name")
        unknown = set(item) - SUBMISSION_FIELDS
        if unknown:
            raise ConfigError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        return item

    # --- jobs ------------------------------------------------------------------------------

    def submit(self, item: dict[str, Any]) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "submitting a job")
        queue = self.services.queue
        spec = queue.validate(**self._submission(item))
        with self._write_lock:
            view = queue.store_one(spec)
        return view.to_dict()

    def submit_batch(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "submitting jobs")
        if not isinstance(items, list):
            raise ConfigError("a batch is a list of jobs")
        if len(items) > MAX_BATCH:
            raise ConfigError(f"a batch holds at most {MAX_BATCH} jobs, got {len(items)}")
        owned = [self._own_item(i) if isinstance(i, dict) else i for i in items]
        with self._write_lock:
            ids = self.services.queue.submit_batch(owned)
        return {"queued": ids, "errors": []}

    def list_jobs(self, states: list[str] | None = None, team: str | None = None,
                  priority: str | None = None, limit: int = 200,
                  offset: int = 0) -> dict[str, Any]:
        if not 1 <= limit <= MAX_PAGE:
            raise ConfigError(f"limit must be between 1 and {MAX_PAGE}")
        views = self.services.queue.list(states or None, limit=limit, offset=offset,
                                         team=self.principal.team_filter(team),
                                         priority_class=priority)
        return {"jobs": [v.to_dict() for v in views], "limit": limit, "offset": offset}

    def show_job(self, job_id: int) -> dict[str, Any]:
        self._visible(job_id)
        return self.services.queue.show(job_id).to_dict()

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "cancelling a job")
        self._visible(job_id)
        with self._write_lock:
            self.services.queue.cancel(job_id)
        return self.services.queue.show(job_id).to_dict()

    def retry_job(self, job_id: int) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "retrying a job")
        self._visible(job_id)
        with self._write_lock:
            self.services.queue.retry(job_id)
        return self.services.queue.show(job_id).to_dict()

    def set_priority(self, job_id: int, priority: str) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "changing a job's priority")
        self._visible(job_id)
        with self._write_lock:
            self.services.queue.set_priority(job_id, priority)
        return self.services.queue.show(job_id).to_dict()

    def job_logs(self, job_id: int, lines: int = 50) -> dict[str, Any]:
        if not 1 <= lines <= 10_000:
            raise ConfigError("lines must be between 1 and 10000")
        job = self._visible(job_id)
        if job.executor_ref is None:
            raise ConfigError(f"job {job_id} has no attempt with logs yet ({job.state})")
        return {"job_id": job_id, "attempt": job.attempts,
                "logs": self.services.executor.logs(job.executor_ref, lines)}

    def job_metrics(self, job_id: int) -> dict[str, Any]:
        """The latest value of every metric of the job's MLflow run (none before it starts)."""
        job = self._visible(job_id)
        if job.mlflow_run_id is None:
            return {"job_id": job_id, "run_id": None, "status": None, "metrics": {},
                    "params": {}}
        summary = self.services.tracker.run_summary(job.mlflow_run_id)
        return {"job_id": job_id, "run_id": summary.run_id, "status": summary.status,
                "metrics": summary.metrics, "params": summary.params}

    def compare_runs(self, job_ids: list[int]) -> dict[str, Any]:
        if not isinstance(job_ids, list) or not 2 <= len(job_ids) <= 20:
            raise ConfigError("compare 2 to 20 jobs")
        return {"runs": [self.job_metrics(int(j)) for j in job_ids]}

    def evaluation(self, job_id: int, seeds: list[int] | None = None) -> dict[str, Any]:
        """The job's policy against the heuristics: the table its run recorded when training
        ended, or (``seeds``) a fresh evaluation of its checkpoint on those seeds."""
        from app.training import job_evaluation

        job = self._visible(job_id)
        out: dict[str, Any] = {"job_id": job_id, "run_id": job.mlflow_run_id,
                               "evaluated": False, "fresh": seeds is not None, "seeds": [],
                               "results": {}, "best_heuristic": None,
                               "ppo_vs_best_heuristic_wait_ratio": None}
        if job.mlflow_run_id is None:
            return out
        tracker = self.services.tracker
        found = job_evaluation.fresh(tracker, job.mlflow_run_id, seeds) if seeds is not None \
            else job_evaluation.recorded(tracker, job.mlflow_run_id)
        if found is not None:
            out.update(found, evaluated=True)
        return out

    def start_now(self, job_id: int) -> dict[str, Any]:
        """Moves a queued job to urgent, so the next tick starts it where capacity allows;
        the answer says whether it fits now or what it waits for."""
        self.set_priority(job_id, "urgent")
        return self.show_job(job_id)

    def check_submission(self, item: dict[str, Any],
                         max_cost_usd: str | None = None) -> dict[str, Any]:
        from decimal import Decimal, InvalidOperation

        from app.costs.pricing import to_micros

        item = self._submission(item, default_name="planned")
        cap = None
        if max_cost_usd is not None:
            try:
                cap = to_micros(Decimal(str(max_cost_usd)))
            except (InvalidOperation, ValueError):
                raise ConfigError(f"max_cost_usd {max_cost_usd!r} is not an amount") from None
            if cap < 0:
                raise ConfigError("max_cost_usd must not be negative")
        queue = self.services.queue
        return queue.check(queue.validate(**item), cap)

    def sweep(self, name: str, base_config: dict[str, Any] | None = None,
              method: str = "random", space: dict[str, Any] | None = None, n: int = 10,
              seed: int = 0, priority: str = "normal",
              max_total_usd: str | None = None) -> dict[str, Any]:
        """Expands a grid or random sweep, prices every config, and queues them as one batch
        only if the total fits ``max_total_usd`` (and the budgets)."""
        from decimal import Decimal, InvalidOperation

        from app.core import sweep as sweeps
        from app.costs.pricing import to_micros, usd_text

        self.principal.require(Role.SUBMITTER, "submitting a sweep")
        base = dict(base_config or {})
        if method == "grid":
            configs = sweeps.grid(base, space or {})
        elif method == "random":
            configs = sweeps.sample(base, space or sweeps.DEFAULT_SPACE, n, seed)
        else:
            raise ConfigError(f"method must be grid or random, got {method!r}")
        items = [self._own_item({"name": f"{name}-{i + 1}", "config": c, "priority": priority})
                 for i, c in enumerate(configs)]
        queue = self.services.queue
        specs = [queue.validate(**item) for item in items]
        total = sum(queue.estimate(spec).cost_micros for spec in specs)
        if max_total_usd is not None:
            try:
                cap = to_micros(Decimal(str(max_total_usd)))
            except (InvalidOperation, ValueError):
                raise ConfigError(f"max_total_usd {max_total_usd!r} is not an amount") from None
            # Checked at the dearest price until they are stored, which may be past a peak
            # boundary: the stored estimates never add up to more than the cap.
            dearest = queue.dearest_total(specs)
            if dearest > cap:
                each = dearest / len(specs)
                fit = int(cap // each) if each else len(specs)
                raise ConfigError(
                    f"the sweep's {len(specs)} jobs are estimated at {usd_text(dearest)} USD, "
                    f"over the {usd_text(cap)} cap; about {fit} of them would fit")
        with self._write_lock:
            ids = queue.store(specs)
        return {"queued": ids, "configs": configs, "estimated_total_usd": usd_text(total),
                "max_total_usd": max_total_usd}

    def queue_status(self) -> dict[str, Any]:
        from app.core.lease import Lease

        team = self.principal.team_filter(None)
        data = self.services.queue.status_counts(team)
        lease = Lease(self.services.engine, "status", self.services.settings.lease_ttl_s)
        current = lease.current()
        data["dispatcher"] = None if current is None else {
            "holder": current.holder, "expires_at": current.expires_at.isoformat(),
            "heartbeat_at": current.heartbeat_at.isoformat()}
        data["team"] = team
        return data

    # --- costs and budgets -----------------------------------------------------------------

    def estimate_job_cost(self, job_id: int) -> dict[str, Any]:
        self._visible(job_id)
        return self.services.costs.estimate_job(job_id)

    def estimate_shape_cost(self, cpus: float = 1.0, memory_gb: float = 1.0, gpus: int = 0,
                            priority: str = "normal", spot: bool = False,
                            hours: float | None = None, timesteps: int | None = None,
                            start: str | None = None) -> dict[str, Any]:
        from app.core.priority import priority_value
        from app.costs.calculator import Shape

        if hours is None and timesteps is None:
            raise ConfigError("give hours or timesteps to price a resource shape")
        if cpus < 0 or memory_gb < 0 or gpus < 0:
            raise ConfigError("cpus, memory_gb and gpus must not be negative")
        if hours is not None and not 0 < hours <= 24 * 366:
            raise ConfigError("hours must be positive and at most a year")
        if timesteps is not None and not 0 < timesteps <= 10**12:
            raise ConfigError("timesteps must be positive")
        priority_value(priority)
        return self.services.costs.estimate_shape(
            Shape(cpus, memory_gb, gpus, priority, spot),
            _when(start, self.services.pricing.zone, "start"), hours, timesteps)

    def forecast(self, job_id: int | None = None) -> dict[str, Any]:
        if job_id is not None:
            self._visible(job_id)
            return {"forecast": self.services.costs.forecast_job(job_id)}
        team = self.principal.team_filter(None)
        return {"queue": self.services.costs.forecast_queue(team),
                "budgets": self.list_budgets()["budgets"]}

    def cost_report(self, period: str = "week", group_by: str = "team") -> dict[str, Any]:
        return self.services.costs.report(period, group_by,
                                          team=self.principal.team_filter(None))

    def recommend(self, job_id: int | None = None) -> dict[str, Any]:
        """Savings for one job; without one, for this team's most expensive open job; with
        none open, what the price list rewards."""
        costs = self.services.costs
        if job_id is None:
            job_id = costs.most_expensive_open_job(self.principal.team_filter(None))
            if job_id is None:
                return {"job_id": None, "recommendations": costs.general_advice()}
        self._visible(job_id)
        return {"job_id": job_id, "recommendations": costs.recommend(job_id)}

    def compare(self, configs: list[dict[str, Any]], cpus: float = 1.0, memory_gb: float = 1.0,
                gpus: int = 0, priority: str = "normal") -> dict[str, Any]:
        from app.core.priority import priority_value
        from app.costs.calculator import Shape

        if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
            raise ConfigError("configs must be a list of training configs (objects)")
        if len(configs) > 100:
            raise ConfigError(f"compare at most 100 configs at once, got {len(configs)}")
        if cpus < 0 or memory_gb < 0 or gpus < 0:
            raise ConfigError("cpus, memory_gb and gpus must not be negative")
        priority_value(priority)
        return {"comparison": self.services.costs.compare(
            configs, Shape(cpus, memory_gb, gpus, priority))}

    def _visible_budget(self, budget: Any) -> bool:
        p = self.principal
        return p.is_admin or budget.scope == "global" or (budget.scope == "team"
                                                          and budget.scope_value == p.team)

    def list_budgets(self, name: str | None = None) -> dict[str, Any]:
        budgets = self.services.budgets
        if name is not None:
            chosen = [budgets.get(name)]
            if not self._visible_budget(chosen[0]):
                raise NotFoundError(f"no budget called {name!r}")
        else:
            chosen = [b for b in budgets.list() if self._visible_budget(b)]
        return {"budgets": [budgets.status(b).to_dict() for b in chosen]}

    def set_budget(self, name: str, limit_usd: str, scope: str = "global",
                   scope_value: str | None = None, period: str = "monthly",
                   start: str | None = None, end: str | None = None, hard: bool = True,
                   thresholds: list[float] | None = None) -> dict[str, Any]:
        self.principal.require(Role.ADMIN, "setting a budget")
        zone = self.services.pricing.zone
        with self._write_lock:
            b = self.services.budgets.set(
                name, limit_usd, scope, scope_value, period, _when(start, zone, "start"),
                _when(end, zone, "end"), hard,
                list(BUDGET_DEFAULT_THRESHOLDS) if thresholds is None else thresholds)
        return {"budget": self.services.budgets.status(b).to_dict()}

    def delete_budget(self, name: str) -> dict[str, Any]:
        self.principal.require(Role.ADMIN, "deleting a budget")
        with self._write_lock:
            self.services.budgets.delete(name)
        return {"deleted": name}

    # --- the whole picture -----------------------------------------------------------------

    def dashboard(self, recent: int = 10) -> dict[str, Any]:
        from app.dashboard.data import gather

        if not 1 <= recent <= 200:
            raise ConfigError("recent must be between 1 and 200")
        return gather(self.services, recent, team=self.principal.team_filter(None)).to_dict()

    def health(self) -> dict[str, Any]:
        from app.dashboard.data import gather

        checks = gather(self.services, 1, probe_cluster=False,
                        team=self.principal.team_filter(None)).health
        worst = "error" if any(c.status == "error" for c in checks) else \
            "warn" if any(c.status == "warn" for c in checks) else "ok"
        return {"status": worst, "checks": [c.__dict__ for c in checks]}

    # --- tokens ----------------------------------------------------------------------------

    def _tokens(self) -> TokenService:
        if self._token_service is None:
            self._token_service = TokenService(self.services.engine)
        return self._token_service

    def create_token(self, team: str, role: str, name: str = "") -> dict[str, Any]:
        self.principal.require(Role.ADMIN, "creating a token")
        with self._write_lock:
            row, secret = self._tokens().create(team, role, name)
        return {"token": secret, **token_dict(row)}

    def list_tokens(self) -> dict[str, Any]:
        self.principal.require(Role.ADMIN, "listing tokens")
        return {"tokens": [token_dict(t) for t in self._tokens().list()]}

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        self.principal.require(Role.ADMIN, "revoking a token")
        with self._write_lock:
            return token_dict(self._tokens().revoke(token_id))
