"""Submitting, listing, showing and changing jobs; their logs, metrics and evaluations; the
queue's status.

The interface (JobsOperations) and its implementations over this process's services
(LocalJobs) and over HTTP (RemoteJobs); app.api.operations puts the domains together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from app.api.access import Role
from app.api.operations.base import (
    IDEMPOTENCY_HEADER,
    MAX_BATCH,
    MAX_PAGE,
    LocalBase,
    RemoteBase,
    checked_idempotency_key,
    jsonable,
    new_idempotency_key,
)
from app.core.errors import ConfigError
from app.core.timeutil import as_utc, utcnow


class JobsOperations(ABC):
    """Jobs: see the module docstring."""

    @abstractmethod
    def submit(self, item: dict[str, Any],
               idempotency_key: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def submit_batch(self, items: list[dict[str, Any]]) -> dict[str, Any]: ...

    @abstractmethod
    def list_jobs(self, states: list[str] | None = None, team: str | None = None,
                  priority: str | None = None, limit: int = 200,
                  offset: int = 0, newest_first: bool = False) -> dict[str, Any]: ...

    @abstractmethod
    def show_job(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def cancel_job(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def resume_job(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def set_priority(self, job_id: int, priority: str) -> dict[str, Any]: ...

    @abstractmethod
    def move_to_front(self, job_id: int) -> dict[str, Any]: ...

    @abstractmethod
    def pause_admission(self, reason: str = "") -> dict[str, Any]: ...

    @abstractmethod
    def resume_admission(self) -> dict[str, Any]: ...

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
    def queue_status(self) -> dict[str, Any]: ...


class LocalJobs(LocalBase, JobsOperations):
    """Jobs over the services of this process."""

    def submit(self, item: dict[str, Any],
               idempotency_key: str | None = None) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "submitting a job")
        queue = self.services.queue
        spec = queue.validate(self._submission(item))
        key = checked_idempotency_key(idempotency_key)
        with self._write_lock:
            view = queue.store_one(spec, key)
        return view.to_dict()

    def submit_batch(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "submitting jobs")
        if not isinstance(items, list):
            raise ConfigError("a batch is a list of jobs")
        if len(items) > MAX_BATCH:
            raise ConfigError(f"a batch holds at most {MAX_BATCH} jobs, got {len(items)}")
        owned = [self._own_item(i) for i in items]
        with self._write_lock:
            ids = self.services.queue.submit_batch(owned)
        return {"queued": ids, "errors": []}

    def list_jobs(self, states: list[str] | None = None, team: str | None = None,
                  priority: str | None = None, limit: int = 200,
                  offset: int = 0, newest_first: bool = False) -> dict[str, Any]:
        if not 1 <= limit <= MAX_PAGE:
            raise ConfigError(f"limit must be between 1 and {MAX_PAGE}")
        queue, team = self.services.queue, self.principal.team_filter(team)
        views = queue.list(states or None, limit=limit, offset=offset, team=team,
                           priority_class=priority, newest_first=newest_first)
        return {"jobs": [v.to_dict() for v in views], "limit": limit, "offset": offset,
                "total": queue.count(states or None, team, priority)}

    def show_job(self, job_id: int) -> dict[str, Any]:
        self._visible(job_id)
        return self.services.queue.show(job_id).to_dict()

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "cancelling a job")
        self._visible(job_id)
        with self._write_lock:
            self.services.queue.cancel(job_id)
        return self.services.queue.show(job_id).to_dict()

    def resume_job(self, job_id: int) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "resuming a job")
        self._visible(job_id)
        with self._write_lock:
            self.services.queue.resume(job_id)
        return self.services.queue.show(job_id).to_dict()

    def set_priority(self, job_id: int, priority: str) -> dict[str, Any]:
        self.principal.require(Role.SUBMITTER, "changing a job's priority")
        self._visible(job_id)
        with self._write_lock:
            self.services.queue.set_priority(job_id, priority)
        return self.services.queue.show(job_id).to_dict()

    def move_to_front(self, job_id: int) -> dict[str, Any]:
        # Ahead of every team's jobs: an admin's call, as pausing is.
        self.principal.require(Role.ADMIN, "moving a job to the front of the queue")
        self._visible(job_id)
        with self._write_lock:
            self.services.queue.move_to_front(job_id)
        return self.services.queue.show(job_id).to_dict()

    def pause_admission(self, reason: str = "") -> dict[str, Any]:
        from app.core import admission_pause

        self.principal.require(Role.ADMIN, "pausing admission")
        if not isinstance(reason, str) or len(reason) > admission_pause.MAX_REASON:
            raise ConfigError(f"reason must be text of at most {admission_pause.MAX_REASON} "
                              "characters")
        by = f"token {self.principal.token_id}" if self.principal.token_id else "local admin"
        paused = admission_pause.pause(self.services.engine, by, reason)
        return {"paused": paused.to_dict()}

    def resume_admission(self) -> dict[str, Any]:
        from app.core import admission_pause

        self.principal.require(Role.ADMIN, "resuming admission")
        was = admission_pause.resume(self.services.engine)
        return {"paused": None, "was_paused": was}

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

        from app.core.money import to_micros

        item = self._submission(item, default_name="planned")
        cap = None
        if max_cost_usd is not None:
            try:
                cap = to_micros(Decimal(str(max_cost_usd)))
            except (InvalidOperation, ValueError):
                raise ConfigError(f"max_cost_usd {max_cost_usd!r} is not an amount") from None
            if cap < 0:
                raise ConfigError("max_cost_usd must not be negative")
        return self.services.advisor.check(self.services.queue.validate(item), cap)

    def queue_status(self) -> dict[str, Any]:
        from app.core.lease import Lease

        team = self.principal.team_filter(None)
        data = self.services.queue.status_counts(team)
        lease = Lease(self.services.engine, "status", self.services.settings.lease_ttl_s)
        current = lease.current()
        data["dispatcher"] = None if current is None else {
            "holder": current.holder, "expires_at": current.expires_at.isoformat(),
            "heartbeat_at": current.heartbeat_at.isoformat(),
            "leading": as_utc(current.expires_at) > utcnow(), "degraded": current.degraded}
        data["team"] = team
        from app.core import admission_pause

        paused = admission_pause.read(self.services.engine)
        data["paused"] = paused.to_dict() if paused else None
        return data


class RemoteJobs(RemoteBase, JobsOperations):
    """Jobs over HTTP."""

    def submit(self, item: dict[str, Any],
               idempotency_key: str | None = None) -> dict[str, Any]:
        # Every submission carries a key, so retrying it after a lost answer (below, in
        # _call) can never queue the job twice.
        key = idempotency_key or new_idempotency_key()
        return self._call("POST", "/jobs", json=jsonable(item),
                          headers={IDEMPOTENCY_HEADER: key})

    def submit_batch(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/jobs/batch", json={"jobs": [jsonable(i) for i in items]})

    def list_jobs(self, states: list[str] | None = None, team: str | None = None,
                  priority: str | None = None, limit: int = 200,
                  offset: int = 0, newest_first: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if newest_first:
            params["order"] = "newest"
        if states:
            params["state"] = list(states)
        if team:
            params["team"] = team
        if priority:
            params["priority"] = priority
        return self._call("GET", "/jobs", params=params)

    def show_job(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{int(job_id)}")

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/cancel")

    def resume_job(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/resume")

    def set_priority(self, job_id: int, priority: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/priority", json={"priority": priority})

    def move_to_front(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/front")

    def pause_admission(self, reason: str = "") -> dict[str, Any]:
        return self._call("POST", "/queue/pause", json={"reason": reason})

    def resume_admission(self) -> dict[str, Any]:
        return self._call("POST", "/queue/unpause")

    def job_logs(self, job_id: int, lines: int = 50) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{int(job_id)}/logs", params={"lines": lines})

    def job_metrics(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{int(job_id)}/metrics")

    def compare_runs(self, job_ids: list[int]) -> dict[str, Any]:
        return self._call("POST", "/runs/compare", json={"job_ids": job_ids})

    def evaluation(self, job_id: int, seeds: list[int] | None = None) -> dict[str, Any]:
        params = {"seed": list(seeds)} if seeds is not None else {}
        return self._call("GET", f"/jobs/{int(job_id)}/evaluation", params=params)

    def start_now(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/start-now")

    def check_submission(self, item: dict[str, Any],
                         max_cost_usd: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"job": jsonable(item)}
        if max_cost_usd is not None:
            body["max_cost_usd"] = str(max_cost_usd)
        return self._call("POST", "/jobs/check", json=body)

    def queue_status(self) -> dict[str, Any]:
        return self._call("GET", "/queue")
