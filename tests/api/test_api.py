"""The API server: every endpoint against every kind of caller, team isolation, limits and
clear errors, over real HTTP on a loopback port."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import Session

from app.api.server import create_app
from app.api.tokens import TokenService
from app.core.models import Job
from app.services import Services
from tests.support.live_server import live_server
from tests.support.processes import free_port

API = "/api/v1"


@dataclass
class World:
    url: str
    services: Services
    tokens: dict[str, str]  # role (and "beta-submitter") -> bearer token

    def call(self, method: str, path: str, token: str | None = None,
             **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def job(self, team: str = "alpha", state: str | None = None) -> int:
        job = self.services.queue.submit(f"{team}-job", {"total_timesteps": 2048}, team=team)
        if state is not None:  # arranged directly: these tests are about access, not states
            with Session(self.services.engine) as s:
                s.execute(update(Job).where(Job.id == job.id).values(state=state))
                s.commit()
        return int(job.id)  # type: ignore[arg-type]

    def sweep(self, stopped: bool = False) -> str:
        made = self.services.sweeps.create({"name": f"sweep-{next(_names)}", "team": "alpha",
                                            "space": {"lr": {"type": "log", "low": 1e-4,
                                                             "high": 1e-3}}})
        if stopped:
            self.services.sweeps.stop(made.name)
        return made.name


@pytest.fixture
def world(services: Services) -> Iterator[World]:
    tokens = TokenService(services.engine)
    made = {role: tokens.create("alpha", role)[1] for role in ("viewer", "submitter", "admin")}
    made["beta-submitter"] = tokens.create("beta", "submitter")[1]
    services.budgets.set("all", "100", "global")
    with live_server(services, free_port()) as url:
        yield World(url, services, made)


# (method, path template, body, the least role allowed, the status that role gets)
# {job} is a fresh job of team alpha, {failed} a fresh failed one, {budget} a fresh budget,
# {token} a fresh token's id.
Case = tuple[str, str, Any, str, int]
_names = itertools.count()
MATRIX: list[Case] = [
    ("POST", "/jobs", {"name": "m", "config": {"total_timesteps": 2048}}, "submitter", 201),
    ("POST", "/jobs/batch", {"jobs": [{"name": "m1"}, {"name": "m2"}]}, "submitter", 201),
    ("POST", "/jobs/check", {"job": {"name": "c"}, "max_cost_usd": "1"}, "viewer", 200),
    ("POST", "/sweeps", lambda w: {"name": f"sw-{next(_names)}", "n_trials": 2,
                                   "max_cost_usd": "5",
                                   "space": {"lr": {"type": "log", "low": 1e-4, "high": 1e-3}}},
     "submitter", 201),
    ("GET", "/sweeps", None, "viewer", 200),
    ("GET", "/sweeps/{sweep}", None, "viewer", 200),
    ("POST", "/sweeps/{sweep}/stop", None, "submitter", 200),
    ("POST", "/sweeps/{stopped}/resume", None, "submitter", 200),
    ("POST", "/runs/compare", lambda w: {"job_ids": [w.job(), w.job()]}, "viewer", 200),
    ("GET", "/jobs", None, "viewer", 200),
    ("GET", "/jobs/{job}", None, "viewer", 200),
    ("POST", "/jobs/{job}/cancel", None, "submitter", 200),
    ("POST", "/jobs/{failed}/resume", None, "submitter", 200),
    ("POST", "/jobs/{failed}/retry", None, "submitter", 200),  # resume's older name
    ("POST", "/jobs/{job}/priority", {"priority": "urgent"}, "submitter", 200),
    # Allowed, but a queued job has no attempt with logs yet: a clear 400, not a 403.
    ("GET", "/jobs/{job}/logs", None, "viewer", 400),
    ("GET", "/jobs/{job}/metrics", None, "viewer", 200),
    ("GET", "/jobs/{job}/evaluation", None, "viewer", 200),
    ("POST", "/jobs/{job}/start-now", None, "submitter", 200),
    # Ahead of every team's jobs, and the whole queue: admins.
    ("POST", "/jobs/{job}/front", None, "admin", 200),
    ("POST", "/queue/pause", {"reason": "maintenance"}, "admin", 200),
    ("POST", "/queue/unpause", None, "admin", 200),
    ("GET", "/jobs/{job}/cost", None, "viewer", 200),
    ("GET", "/jobs/{job}/forecast", None, "viewer", 200),
    ("GET", "/jobs/{job}/recommendations", None, "viewer", 200),
    ("GET", "/queue", None, "viewer", 200),
    ("GET", "/queue/forecast", None, "viewer", 200),
    ("POST", "/costs/estimate", {"hours": 1, "gpus": 1}, "viewer", 200),
    ("GET", "/costs/report", None, "viewer", 200),
    ("GET", "/costs/recommendations", None, "viewer", 200),
    ("POST", "/costs/compare", {"configs": [{"total_timesteps": 4096}]}, "viewer", 200),
    ("GET", "/budgets", None, "viewer", 200),
    ("GET", "/budgets/all", None, "viewer", 200),
    ("PUT", "/budgets/{budget}", {"limit_usd": "10"}, "admin", 200),
    ("DELETE", "/budgets/{budget}", None, "admin", 200),
    ("GET", "/dashboard", None, "viewer", 200),
    ("GET", "/health", None, "viewer", 200),
    ("POST", "/tokens", {"team": "gamma", "role": "viewer"}, "admin", 201),
    ("GET", "/tokens", None, "admin", 200),
    ("DELETE", "/tokens/{token}", None, "admin", 200),
]
ROLES = ("viewer", "submitter", "admin")


def _fill(world: World, template: str) -> str:
    fillers: dict[str, Callable[[], Any]] = {
        "{job}": world.job, "{failed}": lambda: world.job(state="failed"),
        "{budget}": lambda: world.services.budgets.set(f"b{free_port()}", "5").name,
        "{token}": lambda: TokenService(world.services.engine).create("gamma", "viewer")[0].id,
        "{sweep}": world.sweep, "{stopped}": lambda: world.sweep(stopped=True)}
    for key, make in fillers.items():
        if key in template:
            template = template.replace(key, str(make()))
    return template


def test_the_matrix_covers_every_endpoint(services: Services) -> None:
    app = create_app(services)
    served = {(method, route.path.removeprefix(API))  # type: ignore[attr-defined]
              for route in app.routes for method in getattr(route, "methods", ())
              if route.path.startswith(API)}  # type: ignore[attr-defined]
    covered = {(method, path.replace("{job}", "{job_id}").replace("{failed}", "{job_id}")
                .replace("{budget}", "{name}").replace("/budgets/all", "/budgets/{name}")
                .replace("{token}", "{token_id}").replace("{sweep}", "{ref}")
                .replace("{stopped}", "{ref}")) for method, path, *_ in MATRIX}
    assert served == covered


@pytest.mark.parametrize(("method", "template", "body", "least", "status"), MATRIX,
                         ids=[f"{m} {p}" for m, p, *_ in MATRIX])
def test_every_endpoint_for_every_caller(world: World, method: str, template: str, body: Any,
                                         least: str, status: int) -> None:
    def kwargs() -> dict[str, Any]:
        if body is None:
            return {}
        return {"json": body(world) if callable(body) else body}

    for token in (None, "oppen_not-a-real-token", "Basic abc"):
        r = world.call(method, API + _fill(world, template), token, **kwargs())
        assert r.status_code == 401, (token, r.text)
        assert r.json()["kind"] == "unauthenticated"
        assert r.headers["www-authenticate"] == "Bearer"
    for role in ROLES:
        r = world.call(method, API + _fill(world, template), world.tokens[role], **kwargs())
        if ROLES.index(role) < ROLES.index(least):
            assert r.status_code == 403, (role, r.text)
            assert least in r.json()["error"]
        else:
            assert r.status_code == status, (role, r.text)


def test_a_revoked_token_stops_working_at_once(world: World) -> None:
    tokens = TokenService(world.services.engine)
    row, secret = tokens.create("alpha", "viewer")
    assert world.call("GET", f"{API}/jobs", secret).status_code == 200
    r = world.call("DELETE", f"{API}/tokens/{row.id}", world.tokens["admin"])
    assert r.json()["revoked"] is True
    assert world.call("GET", f"{API}/jobs", secret).status_code == 401
    # Only the hash is kept.
    assert secret not in str([t.token_hash for t in tokens.list()])


def test_a_team_cannot_see_or_touch_another_teams_jobs(world: World) -> None:
    alpha = world.job("alpha")
    beta_token = world.tokens["beta-submitter"]
    missing = world.call("GET", f"{API}/jobs/999999", beta_token)
    hidden = world.call("GET", f"{API}/jobs/{alpha}", beta_token)
    # Indistinguishable from a job that does not exist, bar the id in the message.
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"] == f"no job with id {alpha}"
    assert missing.json()["error"] == "no job with id 999999"
    for path in ("cancel", "resume", "retry", "priority", "start-now"):
        r = world.call("POST", f"{API}/jobs/{alpha}/{path}", beta_token,
                       json={"priority": "urgent"} if path == "priority" else None)
        assert r.status_code == 404, (path, r.text)
    for path in ("logs", "metrics", "evaluation", "cost", "forecast", "recommendations"):
        assert world.call("GET", f"{API}/jobs/{alpha}/{path}", beta_token).status_code == 404
    assert world.services.queue.get(alpha).state == "queued"

    mine = world.call("POST", f"{API}/jobs", beta_token, json={"name": "beta-own"}).json()
    assert mine["team"] == "beta"
    listed = world.call("GET", f"{API}/jobs", beta_token).json()["jobs"]
    assert [j["id"] for j in listed] == [mine["id"]]
    assert world.call("GET", f"{API}/jobs?team=alpha", beta_token).status_code == 403
    assert world.call("POST", f"{API}/jobs", beta_token,
                      json={"name": "x", "team": "alpha"}).status_code == 403
    board = world.call("GET", f"{API}/dashboard", beta_token).json()
    assert "alpha-job" not in str(board["queued"]) and board["counts"]["queued"] == 1
    # An admin sees everyone's.
    everyone = world.call("GET", f"{API}/jobs", world.tokens["admin"]).json()["jobs"]
    assert {j["team"] for j in everyone} == {"alpha", "beta"}


def test_malformed_requests_get_a_clear_4xx_naming_the_field(world: World) -> None:
    token = world.tokens["submitter"]
    r = world.call("POST", f"{API}/jobs", token, json={"name": "", "gpus": -1})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"name", "gpus"} <= fields  # named as the submission contract names them
    r = world.call("POST", f"{API}/jobs", token, json={"name": "x", "colour": "red"})
    assert r.status_code == 422 and "colour: unknown field" in r.json()["error"]
    r = world.call("POST", f"{API}/jobs", token, content=b"{not json",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    r = world.call("POST", f"{API}/jobs", token, json={"name": "x", "config": {"lr": "fast"}})
    assert r.status_code == 422 and "config: training option lr" in r.json()["error"]
    r = world.call("GET", f"{API}/jobs?limit=5000", token)
    assert r.status_code == 422 and "query.limit" in r.json()["error"]
    r = world.call("GET", f"{API}/jobs/not-a-number", token)
    assert r.status_code == 422 and "path.job_id" in r.json()["error"]
    r = world.call("POST", f"{API}/jobs/batch", token,
                   json={"jobs": [{"name": "ok"}, {"name": "bad", "gpus": "many"}, {}]})
    assert r.status_code == 422 and r.json()["kind"] == "invalid_batch"
    assert [e["index"] for e in r.json()["errors"]] == [1, 2]
    assert world.services.queue.counts() == {}  # nothing of the batch was stored
    queued = world.job()
    world.call("POST", f"{API}/jobs/{queued}/cancel", token)
    r = world.call("POST", f"{API}/jobs/{queued}/cancel", token)
    assert r.status_code == 409 and "already cancelled" in r.json()["error"]
    r = world.call("GET", f"{API}/nowhere", token)
    assert r.status_code == 404 and r.json()["kind"] == "not_found"


def test_request_bodies_over_the_limit_are_refused(world: World) -> None:
    limit = world.services.settings.server_max_body_bytes
    big = b'{"name": "' + b"x" * limit + b'"}'
    headers = {"Authorization": f"Bearer {world.tokens['submitter']}",
               "Content-Type": "application/json"}
    r = httpx.post(f"{world.url}{API}/jobs", content=big, headers=headers, timeout=30)
    assert r.status_code == 413 and r.json()["kind"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    r = httpx.post(f"{world.url}{API}/jobs", content=chunks(), headers=headers, timeout=30)
    assert r.status_code == 413 and r.json()["kind"] == "too_large"
    assert world.services.queue.counts() == {}


def test_a_hard_budget_refusal_is_a_409_that_says_what_would_fit(world: World) -> None:
    world.services.budgets.set("alpha-cap", "0.0001", "team", "alpha")
    r = world.call("POST", f"{API}/jobs", world.tokens["submitter"],
                   json={"name": "big", "config": {"total_timesteps": 5_000_000}})
    assert r.status_code == 409 and r.json()["kind"] == "budget_exceeded"
    assert "alpha-cap" in r.json()["error"]
