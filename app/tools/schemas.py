"""Argument schemas of the tools: what the model may pass, with descriptions it reads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class QueueTrainingJobArgs(BaseModel):
    name: str = Field(description="Short name for the job, e.g. 'place-urgent'")
    priority: Literal["urgent", "normal", "background"] = Field(
        default="normal", description="Priority class: urgent (1000), normal (100), background (10)"
    )
    total_timesteps: int = Field(default=4096, ge=1, le=100_000_000,
                                 description="Environment steps to train for")
    num_hosts: int = Field(default=4, ge=1, le=10_000, description="Hosts in the simulated cluster")
    seed: int = Field(default=1, ge=0, description="Training seed")


class JobIdArgs(BaseModel):
    job_id: int = Field(ge=1, description="The job's numeric id")


class ListJobsArgs(BaseModel):
    state: Literal["queued", "dispatching", "running", "succeeded", "failed", "cancelled"] | None \
        = Field(default=None, description="Only jobs in this state; omit for all")


class NoArgs(BaseModel):
    pass
