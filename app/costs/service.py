"""Cost before, during and after a job, as one service over the pricing calculator, the
budgets, the queue and MLflow: quotes (app/costs/quotes.py), forecasts (job_forecasts.py), reports
(reports.py) and savings advice (savings.py), each its own module. The operations, the
dashboard and the agent's tools call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app.core.ports import ConfigValidator
from app.core.queue import QueueService
from app.core.tracking import Tracker
from app.costs.budgets import BudgetService
from app.costs.forecast import Throughput, prior_throughput
from app.costs.history import comparable_throughput, job_history_throughput
from app.costs.job_forecasts import Forecasts
from app.costs.pricing import Pricing
from app.costs.quotes import Quotes
from app.costs.reports import Reports
from app.costs.savings import Savings


@dataclass
class CostService(Quotes, Forecasts, Reports, Savings):
    pricing: Pricing
    queue: QueueService
    budgets: BudgetService
    tracker: Tracker | None = None
    # Checks and completes training options (the queue's own validator, from the root).
    validate_config: ConfigValidator | None = None

    def _options(self, config: dict[str, Any]) -> dict[str, Any]:
        return self.validate_config(config) if self.validate_config else dict(config)

    def throughput(self, config: dict[str, Any], cpus: float | None = None,
                   gpus: int | None = None) -> Throughput:
        """Oppen's own finished jobs of the same kind first (what the queue's estimates use),
        then comparable MLflow runs (ad-hoc `oppen train` runs too), then the prior."""
        with Session(self.queue.engine) as s:
            own = job_history_throughput(s, config, cpus, gpus)
        if own is not None:
            return own
        if self.tracker is not None:
            try:
                found = comparable_throughput(self.tracker, config)
            except Exception:  # noqa: BLE001 - no store yet, or unreachable: use the prior
                found = None
            if found is not None:
                return found
        return prior_throughput()
