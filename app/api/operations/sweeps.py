"""Sweeps: creating (submitters, for their team), listing and showing (what the principal
may see), stopping and resuming (the sweep's team, or admins).

The interface (SweepsOperations) and its implementations over this process's services
(LocalSweeps) and over HTTP (RemoteSweeps); app.api.operations puts the domains together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from app.api.access import Role
from app.api.operations.base import LocalBase, RemoteBase, segment
from app.core.errors import NotFoundError, PermissionDeniedError
from app.core.states import TERMINAL, JobState


class SweepsOperations(ABC):
    """Sweeps: see the module docstring."""

    @abstractmethod
    def create_sweep(self, request: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    def list_sweeps(self) -> dict[str, Any]: ...

    @abstractmethod
    def show_sweep(self, ref: str) -> dict[str, Any]: ...

    @abstractmethod
    def stop_sweep(self, ref: str) -> dict[str, Any]: ...

    @abstractmethod
    def resume_sweep(self, ref: str) -> dict[str, Any]: ...


class LocalSweeps(LocalBase, SweepsOperations):
    """Sweeps over the services of this process."""

    def create_sweep(self, request: dict[str, Any]) -> dict[str, Any]:
        from app.sweeps.results import sweep_dict

        self.principal.require(Role.SUBMITTER, "creating a sweep")
        team = request.get("team") if isinstance(request, dict) \
            else getattr(request, "team", None)
        if team is not None:
            if team != self.principal.team and not self.principal.is_admin:
                raise PermissionDeniedError(
                    f"this token creates sweeps for team {self.principal.team}, not {team}")
        with self._write_lock:
            sweep = self.services.sweeps.create(request, team=self.principal.team)
        return {"sweep": sweep_dict(sweep)}

    def list_sweeps(self) -> dict[str, Any]:
        from app.sweeps.results import sweep_dict

        team = None if self.principal.is_admin else self.principal.team
        sweeps = self.services.sweeps.list(team)
        out = []
        for sweep in sweeps:
            row = sweep_dict(sweep)
            jobs = self.services.sweeps.jobs(sweep.id)
            row["trials_queued"] = len(jobs)
            row["trials_finished"] = sum(1 for j in jobs.values()
                                         if JobState(j.state) in TERMINAL)
            out.append(row)
        return {"sweeps": out}

    def show_sweep(self, ref: str) -> dict[str, Any]:
        from app.sweeps.results import summary

        sweep = self._sweep(ref)
        return {"sweep": summary(self.services.sweeps, sweep)}

    def stop_sweep(self, ref: str) -> dict[str, Any]:
        from app.sweeps.results import sweep_dict

        self.principal.require(Role.SUBMITTER, "stopping a sweep")
        sweep = self._sweep(ref)
        with self._write_lock:
            return {"sweep": sweep_dict(self.services.sweeps.stop(sweep.id))}

    def resume_sweep(self, ref: str) -> dict[str, Any]:
        from app.sweeps.results import sweep_dict

        self.principal.require(Role.SUBMITTER, "resuming a sweep")
        sweep = self._sweep(ref)
        with self._write_lock:
            return {"sweep": sweep_dict(self.services.sweeps.resume(sweep.id))}

    def _sweep(self, ref: str) -> Any:
        """The sweep, if this principal may see it; otherwise as if it did not exist."""
        text = str(ref).strip()
        if not text or len(text) > 200:
            raise NotFoundError(f"no sweep {ref!r}")
        if text.isdigit() and len(text) > 12:
            raise NotFoundError(f"no sweep {ref!r}")
        sweep = self.services.sweeps.get(text)
        if not self.principal.sees_team(sweep.team):
            raise NotFoundError(f"no sweep {ref!r}")
        return sweep


class RemoteSweeps(RemoteBase, SweepsOperations):
    """Sweeps over HTTP."""

    def create_sweep(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/sweeps", json=request)

    def list_sweeps(self) -> dict[str, Any]:
        return self._call("GET", "/sweeps")

    def show_sweep(self, ref: str) -> dict[str, Any]:
        return self._call("GET", f"/sweeps/{segment(str(ref))}")

    def stop_sweep(self, ref: str) -> dict[str, Any]:
        return self._call("POST", f"/sweeps/{segment(str(ref))}/stop")

    def resume_sweep(self, ref: str) -> dict[str, Any]:
        return self._call("POST", f"/sweeps/{segment(str(ref))}/resume")
