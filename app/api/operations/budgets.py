"""Spending limits: listing (what the principal may see), setting and deleting (admins).

The interface (BudgetsOperations) and its implementations over this process's services
(LocalBudgets) and over HTTP (RemoteBudgets); app.api.operations puts the domains together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from app.api.access import Role
from app.api.operations.base import (
    BUDGET_DEFAULT_THRESHOLDS,
    LocalBase,
    RemoteBase,
    segment,
    when,
)
from app.core.errors import NotFoundError


class BudgetsOperations(ABC):
    """Budgets: see the module docstring."""

    @abstractmethod
    def list_budgets(self, name: str | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def set_budget(self, name: str, limit_usd: str, scope: str = "global",
                   scope_value: str | None = None, period: str = "monthly",
                   start: str | None = None, end: str | None = None, hard: bool = True,
                   thresholds: list[float] | None = None) -> dict[str, Any]: ...

    @abstractmethod
    def delete_budget(self, name: str) -> dict[str, Any]: ...


class LocalBudgets(LocalBase, BudgetsOperations):
    """Budgets over the services of this process."""

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
                name, limit_usd, scope, scope_value, period, when(start, zone, "start"),
                when(end, zone, "end"), hard,
                list(BUDGET_DEFAULT_THRESHOLDS) if thresholds is None else thresholds)
        return {"budget": self.services.budgets.status(b).to_dict()}

    def delete_budget(self, name: str) -> dict[str, Any]:
        self.principal.require(Role.ADMIN, "deleting a budget")
        with self._write_lock:
            self.services.budgets.delete(name)
        return {"deleted": name}

    def _visible_budget(self, budget: Any) -> bool:
        p = self.principal
        return p.is_admin or budget.scope == "global" or (budget.scope == "team"
                                                          and budget.scope_value == p.team)


class RemoteBudgets(RemoteBase, BudgetsOperations):
    """Budgets over HTTP."""

    def list_budgets(self, name: str | None = None) -> dict[str, Any]:
        if name is None:
            return self._call("GET", "/budgets")
        return self._call("GET", f"/budgets/{segment(name)}")

    def set_budget(self, name: str, limit_usd: str, scope: str = "global",
                   scope_value: str | None = None, period: str = "monthly",
                   start: str | None = None, end: str | None = None, hard: bool = True,
                   thresholds: list[float] | None = None) -> dict[str, Any]:
        body = {"limit_usd": str(limit_usd), "scope": scope, "scope_value": scope_value,
                "period": period, "start": start, "end": end, "hard": hard,
                "thresholds": thresholds}
        return self._call("PUT", f"/budgets/{segment(name)}",
                          json={k: v for k, v in body.items() if v is not None})

    def delete_budget(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/budgets/{segment(name)}")
