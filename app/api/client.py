"""RemoteOperations: the Operations interface over HTTP against `oppen serve`. Error responses
become the same exceptions LocalOperations raises, so callers cannot tell the difference."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from app.api.errors import EXCEPTION_FOR_KIND
from app.api.operations import Operations
from app.core.errors import ConfigError, OppenError
from app.core.queue import BatchError

API = "/api/v1"

class RemoteOperations(Operations):
    def __init__(self, base_url: str, token: str | None, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s,
                                 transport=transport)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, API + path, **kwargs)
        except httpx.HTTPError as exc:
            raise OppenError(f"cannot reach the Oppen server at {self.base_url}: "
                             f"{type(exc).__name__}: {exc}") from None
        if response.is_success:
            return response.json()
        try:
            body = response.json()
            message, kind = body["error"], body["kind"]
        except (ValueError, KeyError, TypeError):
            raise OppenError(f"the server at {self.base_url} answered {response.status_code}: "
                             f"{response.text[:200]}") from None
        if kind == "invalid_batch":
            raise BatchError(body.get("errors", []))
        if response.status_code >= 500:
            raise OppenError(f"the server failed: {message}")
        raise EXCEPTION_FOR_KIND.get(kind, OppenError)(message)

    # --- jobs ------------------------------------------------------------------------------

    def submit(self, item: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/jobs", json=_jsonable(item))

    def submit_batch(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/jobs/batch", json={"jobs": [_jsonable(i) for i in items]})

    def list_jobs(self, states: list[str] | None = None, team: str | None = None,
                  priority: str | None = None, limit: int = 200,
                  offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
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

    def retry_job(self, job_id: int) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/retry")

    def set_priority(self, job_id: int, priority: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{int(job_id)}/priority", json={"priority": priority})

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
        body: dict[str, Any] = {"job": _jsonable(item)}
        if max_cost_usd is not None:
            body["max_cost_usd"] = str(max_cost_usd)
        return self._call("POST", "/jobs/check", json=body)

    def sweep(self, name: str, base_config: dict[str, Any] | None = None,
              method: str = "random", space: dict[str, Any] | None = None, n: int = 10,
              seed: int = 0, priority: str = "normal",
              max_total_usd: str | None = None) -> dict[str, Any]:
        body = {"name": name, "base_config": base_config or {}, "method": method,
                "space": space, "n": n, "seed": seed, "priority": priority,
                "max_total_usd": None if max_total_usd is None else str(max_total_usd)}
        return self._call("POST", "/jobs/sweep",
                          json={k: v for k, v in body.items() if v is not None})

    def queue_status(self) -> dict[str, Any]:
        return self._call("GET", "/queue")

    # --- costs and budgets -----------------------------------------------------------------

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

    def list_budgets(self, name: str | None = None) -> dict[str, Any]:
        if name is None:
            return self._call("GET", "/budgets")
        return self._call("GET", f"/budgets/{_segment(name)}")

    def set_budget(self, name: str, limit_usd: str, scope: str = "global",
                   scope_value: str | None = None, period: str = "monthly",
                   start: str | None = None, end: str | None = None, hard: bool = True,
                   thresholds: list[float] | None = None) -> dict[str, Any]:
        body = {"limit_usd": str(limit_usd), "scope": scope, "scope_value": scope_value,
                "period": period, "start": start, "end": end, "hard": hard,
                "thresholds": thresholds}
        return self._call("PUT", f"/budgets/{_segment(name)}",
                          json={k: v for k, v in body.items() if v is not None})

    def delete_budget(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/budgets/{_segment(name)}")

    # --- the whole picture -----------------------------------------------------------------

    def dashboard(self, recent: int = 10) -> dict[str, Any]:
        return self._call("GET", "/dashboard", params={"recent": recent})

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    # --- tokens ----------------------------------------------------------------------------

    def create_token(self, team: str, role: str, name: str = "") -> dict[str, Any]:
        return self._call("POST", "/tokens", json={"team": team, "role": role, "name": name})

    def list_tokens(self) -> dict[str, Any]:
        return self._call("GET", "/tokens")

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"/tokens/{int(token_id)}")


def wait_until_healthy(url: str, alive: Callable[[], bool] = lambda: True,
                       timeout_s: float = 60) -> None:
    """Until the server at ``url`` answers /healthz; fails at once if ``alive`` says the
    server is gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not alive():
            raise OppenError(f"the Oppen server at {url} exited before it was ready")
        if time.monotonic() > deadline:
            raise OppenError(f"the Oppen server at {url} did not start in {timeout_s:g} s")
        time.sleep(0.05)


def _segment(name: str) -> str:
    from urllib.parse import quote

    if not name:
        raise ConfigError("a name is required")
    return quote(name, safe="")


def _jsonable(item: Any) -> Any:
    """Submissions may carry datetimes (start_after); JSON carries them as ISO text."""
    if not isinstance(item, dict):
        return item
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in item.items()}
