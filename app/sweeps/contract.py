"""The sweep request contract: the one model the CLI, the API and the agent's tool create a
sweep with. Like a job submission it refuses NaN, infinities, huge integers, control
characters and unknown keys, naming the field."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from app.core.submission import (
    Cpus,
    Gpus,
    JobName,
    Label,
    MemoryMb,
    Priority,
    SubmissionError,
    field_errors,
)
from app.sweeps.choices import PRUNERS, SAMPLERS
from app.training.objectives import OBJECTIVES

MAX_TRIALS = 1000
MAX_PARALLEL = 64
MAX_CAP_USD = Decimal(10) ** 9


def _money(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError("must be an amount of dollars, such as \"0.50\"")
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount of dollars") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_CAP_USD:
        raise ValueError(f"must be between $0 and ${MAX_CAP_USD:,}")
    return amount


def _whole(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    return value


Dollars = Annotated[Decimal | None, BeforeValidator(_money)]
Sampler = Literal[SAMPLERS]  # type: ignore[valid-type]
Pruner = Literal[PRUNERS]  # type: ignore[valid-type]
Objective = Literal[tuple(OBJECTIVES)]  # type: ignore[valid-type]


class SweepRequest(BaseModel):
    """A hyperparameter search to create."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: JobName
    space: dict[str, Any] = Field(description="The options to vary (docs/sweeps.md)")
    base_config: dict[str, Any] = Field(default_factory=dict,
                                        description="Training options every trial starts from")
    n_trials: Annotated[int, BeforeValidator(_whole), Field(ge=1, le=MAX_TRIALS)] = 20
    parallelism: Annotated[int, BeforeValidator(_whole), Field(ge=1, le=MAX_PARALLEL)] = 2
    sampler: Sampler = "tpe"
    pruner: Pruner = "median"
    objective: Objective | None = Field(default=None, description="Default: the config's "
                                        "headline metric (mean wait, or bounded slowdown)")
    direction: Literal["minimize", "maximize"] | None = None
    seed: Annotated[int, BeforeValidator(_whole), Field(ge=0, le=2**31 - 1)] | None = None
    max_cost_usd: Dollars = Field(default=None, description="Hard cap on the study's spend")
    priority: Priority = "normal"
    team: Label | None = None
    project: Label = "default"
    cpus: Cpus = 1.0
    memory_mb: MemoryMb = 1024
    gpus: Gpus = 0


def parse_request(item: Any) -> SweepRequest:
    if isinstance(item, SweepRequest):
        return item
    if not isinstance(item, dict):
        raise SubmissionError([{"field": "sweep", "message": "must be an object"}])
    try:
        return SweepRequest.model_validate(item)
    except ValidationError as exc:
        raise SubmissionError(field_errors(exc.errors())) from None
