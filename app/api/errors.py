"""Oppen's errors on the wire: each exception's HTTP status and `kind`, one table read both
ways — by the server to answer, by the client to raise the same exception again."""

from __future__ import annotations

from app.core.errors import (
    AuthenticationError,
    BudgetExceeded,
    ConfigError,
    InvalidTransitionError,
    NotFoundError,
    OppenError,
    PermissionDeniedError,
)
from app.core.queue import BatchError
from app.core.submission import SubmissionError

# Most specific first: the server answers with the first row the exception matches.
STATUS: list[tuple[type[OppenError], int, str]] = [
    (BatchError, 422, "invalid_batch"), (SubmissionError, 422, "validation"),
    (BudgetExceeded, 409, "budget_exceeded"),
    (AuthenticationError, 401, "unauthenticated"), (PermissionDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"), (InvalidTransitionError, 409, "conflict"),
    (ConfigError, 400, "invalid"), (OppenError, 400, "invalid")]
# What the client raises for each kind: the most specific class of that kind, and
# ConfigError for the request errors the body limit answers itself. "validation" answers
# carry their fields, and the client rebuilds the SubmissionError from them.
EXCEPTION_FOR_KIND: dict[str, type[OppenError]] = {
    **{kind: cls for cls, _, kind in reversed(STATUS)},
    "validation": ConfigError, "too_large": ConfigError, "too_slow": ConfigError}
