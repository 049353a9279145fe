"""Estimates, forecasts, reports, savings advice and side-by-side comparisons of what
training costs.

The interface (CostsOperations) and its implementations over this process's services
(LocalCosts) and over HTTP (RemoteCosts); app.api.operations puts the domains together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from app.api.operations.base import (
    LocalBase,
    RemoteBase,
    when,
)
from app.core.errors import ConfigError


class CostsOperations(ABC):
    """Costs: see the module docstring."""

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


class LocalCosts(LocalBase, CostsOperations):
    """Costs over the services of this process."""

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
            when(start, self.services.pricing.zone, "start"), hours, timesteps)

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


class RemoteCosts(RemoteBase, CostsOperations):
    """Costs over HTTP."""

    def estimate_job_cost(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{int(job_id)}/cost")

    def estimate_shape_cost(self, cpus: float = 1.0, memory_gb: float = 1.0, gpus: int = 0,
                            priority: str = "normal", spot: bool = False,
                            hours: float | None = None, timesteps: int | None = None,
                            start: str | None = None) -> dict[str, Any]:
        body = {"cpus": cpus, "memory_gb": memory_gb, "gpus": gpus, "priority": priority,
                "spot": spot, "hours": hours, "timesteps": timesteps, "start": start}
        return self._call("POST", "/costs/estimate",
                          json={k: v for k, v in body.items() if v is not None})

    def forecast(self, job_id: int | None = None) -> dict[str, Any]:
        if job_id is None:
            return self._call("GET", "/queue/forecast")
        return self._call("GET", f"/jobs/{int(job_id)}/forecast")

    def cost_report(self, period: str = "week", group_by: str = "team") -> dict[str, Any]:
        return self._call("GET", "/costs/report", params={"period": period, "by": group_by})

    def recommend(self, job_id: int | None = None) -> dict[str, Any]:
        if job_id is None:
            return self._call("GET", "/costs/recommendations")
        return self._call("GET", f"/jobs/{int(job_id)}/recommendations")

    def compare(self, configs: list[dict[str, Any]], cpus: float = 1.0, memory_gb: float = 1.0,
                gpus: int = 0, priority: str = "normal") -> dict[str, Any]:
        return self._call("POST", "/costs/compare", json={
            "configs": configs, "cpus": cpus, "memory_gb": memory_gb, "gpus": gpus,
            "priority": priority})
