"""Errors people can act on. The CLI prints them as one line and exits non-zero."""


class OppenError(Exception):
    """Base class: the message is written for a person and shown as is."""


class ConfigError(OppenError):
    """Configuration or input that cannot be used."""


class NotFoundError(OppenError):
    """A job, run or file that does not exist."""


class InvalidTransitionError(OppenError):
    """A job state change the state machine does not allow."""


class DependencyError(OppenError):
    """An optional component (simrs, a provider package) is not installed."""


class StaleStateError(InvalidTransitionError):
    """Another process changed the job first; the change was not applied."""


class AuthenticationError(OppenError):
    """No token, or one that is unknown or revoked (HTTP 401)."""


class PermissionDeniedError(OppenError):
    """A valid token whose role does not allow the action (HTTP 403)."""


class BudgetExceeded(ConfigError):
    """A hard budget (or a cap) refused the work; nothing was stored or started."""
