"""The composition root: wires settings to concrete implementations, and hands the job
domain (app.core) what it needs from the layers above through the Protocols of
app.core.ports. Nothing is opened until first asked for."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from app.core.admission import Limits
from app.core.db import init_db, make_engine
from app.core.dispatcher import Dispatcher, Progress
from app.core.errors import ConfigError
from app.core.executors.base import Executor
from app.core.executors.k8s_manifest import JobTemplate
from app.core.lease import Lease, new_holder_id
from app.core.ports import ConfigValidator
from app.core.queue import QueueService
from app.core.settings import Settings, load_settings
from app.core.tracking import Tracker
from app.costs.advice import BudgetAdvisor
from app.costs.budgets import BudgetAdmission, BudgetService
from app.costs.estimate import JobEstimator, ThroughputCache, own_history_throughput
from app.costs.pricing import Pricing, load_pricing
from app.costs.windows import next_off_peak

if TYPE_CHECKING:
    from app.core.executors.local import WarmServer
    from app.costs.service import CostService
    from app.sweeps.service import SweepService


# What a warm-start server imports before its first job: what `oppen train` spends its first
# seconds on (PyTorch, MLflow, simrs, Optuna, the trainer).
WARM_PRELOAD = ("torch", "numpy", "mlflow", "mlflow.tracking", "simrs",
                "optuna", "app.services", "app.training.entrypoint", "app.training.ppo",
                "app.training.evaluate", "app.sweeps.trial", "app.sweeps.service",
                "app.cli.train_cmds")
# What each forked child runs (`oppen ARGV`), and the work done once before the first.
WARM_ENTRY, WARM_UP = "app.cli:main", "app.training.warmup:warm_up"
# Recent rewards kept per running job for the dashboard's sparkline.
SPARKLINE_POINTS = 24


def validate_training_options(config: dict[str, Any]) -> dict[str, Any]:
    """Training options checked and filled with defaults."""
    from app.training.config import TrainConfig

    return TrainConfig.from_dict(config).to_dict()


def training_options_validator(settings: Settings) -> ConfigValidator:
    """The queue's ConfigValidator: the options checked, and a trace, which the job reads
    with the dispatcher's rights, only from the configured trace folders."""
    def validate(config: dict[str, Any]) -> dict[str, Any]:
        from app.training.traces import check_trace_allowed

        options = validate_training_options(config)
        if options.get("trace"):
            check_trace_allowed(options["trace"], settings.resolved_trace_dirs,
                                settings.trace_max_bytes)
        return options

    return validate


def build_queue(engine: Engine, limits: Limits | None = None, pricing: Pricing | None = None,
                budgets: BudgetService | None = None, max_attempts: int = 3,
                estimator: JobEstimator | None = None,
                advisor: BudgetAdvisor | None = None,
                settings: Settings | None = None) -> QueueService:
    """A QueueService with every port wired: training options checked, jobs priced, hard
    budgets enforced at submission and explained in queue listings."""
    pricing = pricing or load_pricing()
    budgets = budgets or BudgetService(engine, pricing)
    estimator = estimator or JobEstimator(pricing)
    advisor = advisor or BudgetAdvisor(engine, estimator, budgets, pricing)
    return QueueService(engine, limits or Limits(), default_max_attempts=max_attempts,
                        zone=pricing.zone,
                        validate_config=training_options_validator(settings or load_settings()),
                        estimator=estimator, gate=advisor,
                        checks_for=lambda s, now: [BudgetAdmission(budgets, s, now)],
                        off_peak=lambda now: next_off_peak(pricing, now))


class Services:
    """Wires settings to concrete implementations. Nothing is opened until first asked for."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()

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

        return CostService(self.pricing, self.queue, self.budgets, self.tracker,
                           validate_training_options)

    @cached_property
    def estimator(self) -> JobEstimator:
        # Submission estimates use the throughput of comparable finished jobs.
        return JobEstimator(self.pricing, ThroughputCache(own_history_throughput(self.engine)))

    @cached_property
    def advisor(self) -> BudgetAdvisor:
        return BudgetAdvisor(self.engine, self.estimator, self.budgets, self.pricing)

    @cached_property
    def queue(self) -> QueueService:
        return build_queue(self.engine, self.settings.admission_limits(), self.pricing,
                           self.budgets, self.settings.max_attempts, self.estimator,
                           self.advisor, self.settings)

    @cached_property
    def sweeps(self) -> SweepService:
        from app.sweeps.service import SweepService

        return SweepService(self.engine, self.queue, self.budgets,
                            self.settings.resolved_database_url,
                            training_options_validator(self.settings), self.tracker)

    @cached_property
    def tracker(self) -> Tracker:
        return Tracker(self.settings.resolved_tracking_uri, self.settings.artifacts_dir,
                       cache_dir=self.settings.resolved_cache_dir)

    def job_template(self) -> JobTemplate:
        s = self.settings
        return JobTemplate(namespace=s.k8s_namespace, image=s.k8s_image,
                           service_account=s.k8s_service_account,
                           tracking_uri=s.mlflow_tracking_uri,
                           database_secret=s.k8s_database_secret, kueue_queue=s.kueue_queue_name,
                           ttl_after_finished_s=s.k8s_ttl_after_finished_s, spot=s.k8s_spot,
                           checkpoint_uri=s.checkpoint_uri)

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
            if self.settings.checkpoint_uri:
                env["OPPEN_CHECKPOINT_URI"] = self.settings.checkpoint_uri
            # Every wait inside a dispatcher tick ends within a third of the lease.
            return LocalExecutor(self.settings.logs_dir, env, self.settings.python_executable,
                                 self.settings.stop_grace_s, self.settings.local_command,
                                 max_wait_s=self.settings.lease_ttl_s / 3,
                                 warm=self.warm_server() if self.settings.warm_start else None)
        if self.settings.executor == "kubernetes":
            from app.core.executors.kubernetes import KubernetesExecutor

            return KubernetesExecutor(self.job_template(),
                                      request_timeout_s=self.settings.lease_ttl_s / 3)
        raise ConfigError(f"unknown executor {self.settings.executor!r}")

    def warm_server(self) -> WarmServer:
        """The warm-start server: `oppen ARGS` forked from a process that has imported what
        training needs."""
        from app.core.executors.local import WarmServer

        return WarmServer(self.settings.warm_socket, WARM_ENTRY, WARM_PRELOAD,
                          self.settings.warm_idle_s, WARM_UP)

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
        # The MLflow store and experiment are made beside the first ticks (warm_up), not
        # before them: a job creates them itself if it comes first, under the store's lock.
        lease = Lease(self.engine, new_holder_id(), self.settings.lease_ttl_s)
        return Dispatcher(self.engine, self.executor, lease, self.settings.admission_limits(),
                          checks_for=lambda s, now: [BudgetAdmission(self.budgets, s, now)],
                          progress=self.read_progress,
                          backoff_base_s=self.settings.retry_backoff_s,
                          price=self.budgets.cost_between, spend_guard=self.budgets,
                          stop_horizon_s=self.stop_horizon_s, runs=self.tracker,
                          sweeps=self.sweeps, warm_up=self.tracker.experiment_id)

    @property
    def stop_horizon_s(self) -> float:
        """How far ahead a running job's spend is checked against its hard budgets: the next
        tick, plus the longest a stop may take, plus a second of slack."""
        s = self.settings
        return s.dispatch_interval_s + min(s.stop_grace_s, s.lease_ttl_s / 3) + 1.0
