"""The whole picture: the dashboard's document and the health checks.

The interface (OverviewOperations) and its implementations over this process's services
(LocalOverview) and over HTTP (RemoteOverview); app.api.operations puts the domains together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from app.api.operations.base import (
    LocalBase,
    RemoteBase,
)
from app.core.errors import ConfigError


class OverviewOperations(ABC):
    """Overview: see the module docstring."""

    @abstractmethod
    def dashboard(self, recent: int = 10) -> dict[str, Any]: ...

    @abstractmethod
    def health(self) -> dict[str, Any]: ...


class LocalOverview(LocalBase, OverviewOperations):
    """Overview over the services of this process."""

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


class RemoteOverview(RemoteBase, OverviewOperations):
    """Overview over HTTP."""

    def dashboard(self, recent: int = 10) -> dict[str, Any]:
        return self._call("GET", "/dashboard", params={"recent": recent})

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")
