"""The job submission contract: the one model every entry point validates a job against.

The CLI, the API's single and batch routes, the agent's tools and QueueService all go through
:func:`parse_submission`, so a bad value is refused the same way, with the same one-line error
naming the field, wherever it comes from. Numbers must be finite and in range (NaN, infinities
and integers past any sensible bound are refused), strings are bounded and free of control
characters, and unknown keys are named. Training options (``config``) are checked afterwards by
the training layer's validator, which QueueService receives from the composition root.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from app.core.errors import ConfigError
from app.core.start_times import START_WORDS
from app.core.timeutil import utcnow

Priority = Literal["urgent", "normal", "background"]
# Printable names only: PostgreSQL refuses NUL and a terminal obeys escape codes.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_NAME = 200
MAX_LABEL = 100
MAX_CPUS = 1024
MAX_MEMORY_MB = 16 * 1024 * 1024  # 16 TiB: past any one machine
MAX_GPUS = 64
MAX_ATTEMPTS = 100
MAX_RUNTIME_S = 366 * 86400
MAX_CONFIG_KEYS = 100
# How far ahead a start may be put off: a year, so far-future dates are refused up front.
MAX_START_AHEAD = timedelta(days=366)
# A start in words (app.core.start_times), resolved when the job is submitted.
StartWord = Annotated[str, StringConstraints(pattern=START_WORDS)]


def _printable(value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


JobName = Annotated[str, Field(min_length=1, max_length=MAX_NAME,
                               description="What the job is called"),
                    AfterValidator(_printable)]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL), AfterValidator(_printable)]


def _plain_number(value: Any) -> Any:
    # JSON's true is not a count of CPUs; pydantic would read it as 1.
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not true or false")
    return value


def _whole_within(low: int, high: int) -> BeforeValidator:
    """A float far outside a whole-number field's range (1e300) is refused with the bound,
    not with pydantic's "cannot parse as an integer"."""

    def check(value: Any) -> Any:
        value = _plain_number(value)
        if isinstance(value, float) and math.isfinite(value) and abs(value) > high:
            side = f"less than or equal to {high}" if value > 0 \
                else f"greater than or equal to {low}"
            raise ValueError(f"Input should be {side}")
        return value

    return BeforeValidator(check)


Cpus = Annotated[float, Field(gt=0, le=MAX_CPUS, description="CPU cores the job requests"),
                 BeforeValidator(_plain_number)]
MemoryMb = Annotated[int, Field(gt=0, le=MAX_MEMORY_MB, description="Memory the job requests"),
                     _whole_within(1, MAX_MEMORY_MB)]
Gpus = Annotated[int, Field(ge=0, le=MAX_GPUS, description="GPUs the job requests"),
                 _whole_within(0, MAX_GPUS)]
Attempts = Annotated[int, Field(ge=1, le=MAX_ATTEMPTS,
                                description="Attempts before an infrastructure failure is final"),
                     _whole_within(1, MAX_ATTEMPTS)]
RuntimeS = Annotated[float, Field(gt=0, le=MAX_RUNTIME_S,
                                  description="Stop the job after this many seconds"),
                     BeforeValidator(_plain_number)]


class JobSubmission(BaseModel):
    """One job as submitted. ``team`` None means the submitter's own team."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: JobName
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="Training options (oppen train --help)")
    priority: Priority = "normal"
    cpus: Cpus = 1.0
    memory_mb: MemoryMb = 1024
    gpus: Gpus = 0
    team: Label | None = Field(default=None, description="Defaults to the submitter's team")
    project: Label = "default"
    max_attempts: Attempts | None = None
    max_runtime_s: RuntimeS | None = None
    spot: bool = False
    start_after: datetime | StartWord | None = Field(
        default=None, description="Not before this time: ISO 8601, or HH:MM, tonight, "
                                  "tomorrow [HH:MM], off-peak, 'in N minutes'")

    @field_validator("config")
    @classmethod
    def _bounded_config(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_CONFIG_KEYS:
            raise ValueError(f"at most {MAX_CONFIG_KEYS} training options")
        return value

    @field_validator("start_after", mode="before")
    @classmethod
    def _a_time_or_words(cls, value: Any) -> Any:
        """One message for a start that is neither a time nor words it knows."""
        if not isinstance(value, str) or re.match(START_WORDS, value):
            return value
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("use ISO 8601 (2026-12-07T22:00), HH:MM, tonight, tomorrow "
                             "[HH:MM], off-peak or 'in N minutes'") from None

    @field_validator("start_after")
    @classmethod
    def _not_too_far(cls, value: datetime | str | None) -> datetime | str | None:
        # A time without an offset is read in the pricing zone later; hours of offset do
        # not matter against a year.
        if isinstance(value, datetime) and (value if value.tzinfo else value.replace(
                tzinfo=UTC)) > utcnow() + MAX_START_AHEAD:
            raise ValueError("must be within a year from now")
        return value


def field_errors(errors: list[Any], drop_prefix: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """pydantic's error list as [{field, message}], the field as a dotted path (``config.lr``),
    without a location prefix such as FastAPI's ``body``."""
    out = []
    for e in errors:
        loc = [str(p) for p in e["loc"]]
        if tuple(loc[:len(drop_prefix)]) == drop_prefix:
            loc = loc[len(drop_prefix):]
        message = "unknown field" if e["type"] == "extra_forbidden" else \
            str(e["msg"]).removeprefix("Value error, ")
        out.append({"field": ".".join(loc) or "submission", "message": message})
    return out


def describe(fields: list[dict[str, str]], most: int = 5) -> str:
    """One line for a person: ``field: message; field: message``."""
    text = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:most])
    more = len(fields) - most
    return text + (f" (and {more} more)" if more > 0 else "")


class SubmissionError(ConfigError):
    """A submission that breaks the contract; ``fields`` says which fields and why."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        self.fields = fields
        super().__init__(describe(fields))


def parse_submission(item: Any) -> JobSubmission:
    """The contract applied to a JSON-like object; raises SubmissionError."""
    if isinstance(item, JobSubmission):
        return item
    if not isinstance(item, dict):
        raise SubmissionError([{"field": "submission",
                                "message": "must be an object with at least a name"}])
    try:
        return JobSubmission.model_validate(item)
    except ValidationError as exc:
        raise SubmissionError(field_errors(exc.errors())) from None


@dataclass(frozen=True)
class JobSpec:
    """A validated submission, its training options checked and normalised, ready to store."""

    name: str
    config: dict[str, Any]
    priority_class: str
    cpus: float
    memory_mb: int
    gpus: int
    team: str
    project: str
    max_attempts: int
    max_runtime_s: float | None
    spot: bool = False
    not_before: datetime | None = None  # start no earlier (an off-peak start, say)
    # Set only by a sweep queueing one of its trials, never by a submission.
    sweep_id: int | None = None
    trial_number: int | None = None
