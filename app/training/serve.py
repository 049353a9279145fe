"""`oppen policy serve`: an HTTP decision endpoint for external schedulers (an LSF external
scheduler plugin, a Kubernetes scheduler extender): host states and a job in, a host out."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.errors import ConfigError
from app.training.config import TrainConfig
from app.training.inference import LoadedPolicy

# Bounds far past any machine, so no number can overflow the float32 features.
MAX_CORES = 1 << 20
MAX_MEM_MB = 1 << 40
# The largest request body accepted by default (a 100,000-host request is about 8 MB).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class HostState(Strict):
    cores: int = Field(gt=0, le=MAX_CORES)
    mem_mb: int = Field(gt=0, le=MAX_MEM_MB)
    used_cores: int = Field(ge=0, le=MAX_CORES)
    used_mem_mb: int = Field(ge=0, le=MAX_MEM_MB)

    @model_validator(mode="after")
    def usage_within_capacity(self) -> HostState:
        if self.used_cores > self.cores or self.used_mem_mb > self.mem_mb:
            raise ValueError("used_cores/used_mem_mb exceed the host's capacity")
        return self


class JobRequest(Strict):
    cores: int = Field(gt=0, le=MAX_CORES)
    mem_mb: int = Field(gt=0, le=MAX_MEM_MB)


class DecideRequest(Strict):
    hosts: list[HostState] = Field(min_length=1, max_length=100_000)
    job: JobRequest
    # The job features are scaled by the largest job of the training workload; by default,
    # the largest its config allows (job_cores, job_mem_mb).
    max_job_cores: int | None = Field(default=None, gt=0, le=MAX_CORES)
    max_job_mem_mb: int | None = Field(default=None, gt=0, le=MAX_MEM_MB)


def place_observation(req: DecideRequest, trained: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The `place` observation and mask, exactly as simrs builds them."""
    max_cores = req.max_job_cores or trained.job_cores[1]
    max_mem = req.max_job_mem_mb or trained.job_mem_mb[1]
    cores = np.array([h.cores for h in req.hosts], dtype=np.float32)
    mem = np.array([h.mem_mb for h in req.hosts], dtype=np.float32)
    used_c = np.array([h.used_cores for h in req.hosts], dtype=np.float32)
    used_m = np.array([h.used_mem_mb for h in req.hosts], dtype=np.float32)
    rows = np.stack([used_c * (np.float32(1) / cores), used_m * (np.float32(1) / mem),
                     cores / cores.max(), mem / mem.max()], axis=1)
    job = np.array([min(req.job.cores / max_cores, 1.0),
                    min(req.job.mem_mb / max_mem, 1.0)], dtype=np.float32)
    mask = ((cores - used_c) >= req.job.cores) & ((mem - used_m) >= req.job.mem_mb)
    return np.concatenate([rows.reshape(-1), job]), mask.astype(np.int8)


def _error(status: int, message: str, errors: list[dict[str, str]] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message, "errors": errors or []}, status)


def create_app(loaded: LoadedPolicy, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    import logging

    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from app.core.submission import describe, field_errors
    from app.web.access import AccessLog
    from app.web.limits import BodyLimit

    if loaded.config.mode != "place":
        raise ConfigError(f"only place-mode policies choose hosts; this one is "
                          f"{loaded.config.mode}")
    app = FastAPI(title="Oppen policy", version="1")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        # The fields and what is wrong, never the input itself: NaN cannot go back as JSON.
        fields = field_errors(list(exc.errors()), drop_prefix=("body",))
        return _error(422, describe(fields), fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Any:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def fault(_: Request, exc: Exception) -> Any:
        logging.getLogger(__name__).exception("decision failed")
        return _error(500, f"internal error ({type(exc).__name__})")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "mode": loaded.config.mode}

    @app.post("/v1/decide")
    def decide(req: DecideRequest) -> dict[str, Any]:
        obs, mask = place_observation(req, loaded.config)
        if not mask.any():
            raise HTTPException(status_code=409, detail="no host has room for the job")
        host = loaded.decide(obs, mask)
        return {"host": host, "fits": mask.astype(bool).tolist()}

    app.add_middleware(BodyLimit, limit=max_body_bytes, refuse=lambda limit: _error(
        413, f"request body over the limit of {limit} bytes"))
    app.add_middleware(AccessLog)
    return app
