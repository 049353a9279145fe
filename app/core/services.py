"""Wires settings to concrete implementations. Nothing is opened until first asked for."""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from app.core.db import init_db, make_engine
from app.core.dispatcher import Dispatcher, Progress
from app.core.errors import ConfigError
from app.core.executors.base import Executor
from app.core.executors.k8s_manifest import JobTemplate
from app.core.lease import Lease, new_holder_id
from app.core.queue import QueueService
from app.core.settings import Settings, load_settings
from app.core.tracking import Tracker
from app.costs.budgets import BudgetAdmission, BudgetService
from app.costs.pricing import Pricing, load_pricing

if TYPE_CHECKING:
    from app.costs.service import CostService


# Recent rewards kept per running job for the dashboard's sparkline.
SPARKLINE_POINTS = 24
THROUGHPUT_TTL_S = 2.0


class Services:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self._throughput_cache: dict[tuple[Any, ...], tuple[float, float]] = {}

    @cached_property
    def engine(self) -> Engine:
        self.settings.resolved_home.mkdir(parents=True, exist_ok=True)
        engine = make_engine(self.settings.resolved_database_url)
        init_db(engine)
        return engine

    @cached_property
    def pricing(self) -> Pricing:
        return load_pricing(self.settings.pricing_file)

    @cached_property
    def budgets(self) -> BudgetService:
        return BudgetService(self.engine, self.pricing)

    @cached_property
    def costs(self) -> CostService:
        from app.costs.service import CostService

        return CostService(self.pricing, self.queue, self.budgets, self.tracker)

    @cached_property
    def queue(self) -> QueueService:
        queue = QueueService(self.engine, self.settings.admission_limits(), self.pricing,
                             default_max_attempts=self.settings.max_attempts,
                             budgets=self.budgets)
        # Submission estimates use the throughput of comparable finished jobs.
        queue.throughput = self._own_throughput
        return queue

    def _own_throughput(self, config: dict, cpus: float, gpus: int) -> float:
        from sqlmodel import Session

        from app.core.estimate import PRIOR_STEPS_PER_SECOND
        from app.costs.history import job_history_throughput

        # Looked up at most every THROUGHPUT_TTL_S per kind of job: a server taking hundreds
        # of submissions a second asks once, and estimates lag new history by seconds only.
        key = (config.get("mode"), config.get("num_hosts"), config.get("device"), cpus, gpus)
        cached = self._throughput_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < THROUGHPUT_TTL_S:
            return cached[1]
        with Session(self.engine) as s:
            found = job_history_throughput(s, config, cpus, gpus)
        sps = found.sps if found is not None else PRIOR_STEPS_PER_SECOND
        self._throughput_cache[key] = (time.monotonic(), sps)
        return sps

    @cached_property
    def tracker(self) -> Tracker:
        return Tracker(self.settings.resolved_tracking_uri, self.settings.artifacts_dir)

    def job_template(self) -> JobTemplate:
        s = self.settings
        return JobTemplate(namespace=s.k8s_namespace, image=s.k8s_image,
                           service_account=s.k8s_service_account,
                           tracking_uri=s.mlflow_tracking_uri,
                           database_secret=s.k8s_database_secret, kueue_queue=s.kueue_queue_name,
                           ttl_after_finished_s=s.k8s_ttl_after_finished_s, spot=s.k8s_spot)

    @cached_property
    def executor(self) -> Executor:
        if self.settings.executor == "local":
            from app.core.executors.local import LocalExecutor

            # Jobs inherit the effective settings, so a job reads the same database and store.
            env = {
                "OPPEN_HOME": str(self.settings.resolved_home),
                "OPPEN_DATABASE_URL": self.settings.resolved_database_url,
                "OPPEN_MLFLOW_TRACKING_URI": self.settings.resolved_tracking_uri,
            }
            return LocalExecutor(self.settings.logs_dir, env, self.settings.python_executable,
                                 self.settings.stop_grace_s, self.settings.local_command)
        if self.settings.executor == "kubernetes":
            from app.core.executors.kubernetes import KubernetesExecutor

            return KubernetesExecutor(self.job_template())
        raise ConfigError(f"unknown executor {self.settings.executor!r}")

    def read_progress(self, run_id: str) -> Progress | None:
        """Latest step, steps per second, recent rewards and final evaluation of a run."""
        summary = self.tracker.run_summary(run_id)
        metrics = summary.metrics
        if "charts/global_step" not in metrics:
            return None
        history = self.tracker.client().get_metric_history(run_id, "charts/episodic_return")
        rewards = [m.value for m in sorted(history, key=lambda m: m.step)][-SPARKLINE_POINTS:]
        return Progress(int(metrics["charts/global_step"]), float(metrics.get("charts/SPS", 0.0)),
                        rewards, metrics.get("eval/ppo_vs_best_heuristic_wait_ratio"))

    def dispatcher(self) -> Dispatcher:
        # Create the MLflow store and experiment once, here: jobs started together would
        # otherwise race to migrate a fresh SQLite store.
        self.tracker.experiment_id()
        lease = Lease(self.engine, new_holder_id(), self.settings.lease_ttl_s)
        return Dispatcher(self.engine, self.executor, lease, self.settings.admission_limits(),
                          checks_for=lambda s, now: [BudgetAdmission(self.budgets, s, now)],
                          progress=self.read_progress,
                          backoff_base_s=self.settings.retry_backoff_s,
                          price=self.budgets.attempt_cost)
