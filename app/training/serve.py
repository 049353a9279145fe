"""`oppen policy serve`: an HTTP decision endpoint for external schedulers (an LSF external
scheduler plugin, a Kubernetes scheduler extender): host states and a job in, a host out."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator

from app.core.errors import ConfigError
from app.training.config import TrainConfig
from app.training.inference import LoadedPolicy


class HostState(BaseModel):
    cores: int = Field(gt=0)
    mem_mb: int = Field(gt=0)
    used_cores: int = Field(ge=0)
    used_mem_mb: int = Field(ge=0)

    @model_validator(mode="after")
    def usage_within_capacity(self) -> HostState:
        if self.used_cores > self.cores or self.used_mem_mb > self.mem_mb:
            raise ValueError("used_cores/used_mem_mb exceed the host's capacity")
        return self


class JobRequest(BaseModel):
    cores: int = Field(gt=0)
    mem_mb: int = Field(gt=0)


class DecideRequest(BaseModel):
    hosts: list[HostState] = Field(min_length=1, max_length=100_000)
    job: JobRequest
    # The job features are scaled by the largest job of the training workload; by default,
    # the largest its config allows (job_cores, job_mem_mb).
    max_job_cores: int | None = Field(default=None, gt=0)
    max_job_mem_mb: int | None = Field(default=None, gt=0)


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


def create_app(loaded: LoadedPolicy) -> Any:
    from fastapi import FastAPI, HTTPException

    if loaded.config.mode != "place":
        raise ConfigError(f"only place-mode policies choose hosts; this one is "
                          f"{loaded.config.mode}")
    app = FastAPI(title="Oppen policy", version="1")

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

    return app
