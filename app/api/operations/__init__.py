"""Everything a person (or the agent) can ask of Oppen, as one interface with two
implementations: LocalOperations over the services in this process, and RemoteOperations
(app.api.client) over HTTP against `oppen serve`, whose routes call LocalOperations. So the
CLI, the dashboard and the agent's tools behave the same either way, and authorization lives
in one place.

The interface is split by domain, one module each (jobs, costs, budgets, overview, tokens,
sweeps), each
holding its part of the interface, its local implementation and its remote one; this module
puts them together.

Every method returns plain JSON-able data, raises Oppen's errors (ConfigError, NotFoundError,
InvalidTransitionError, AuthenticationError, PermissionDeniedError, BudgetExceeded), and checks
the principal's role and team before it touches anything. A job of another team is reported as
not existing, so a token cannot probe which ids are taken.
"""

from __future__ import annotations

from app.api.operations.base import MAX_BATCH, MAX_ID, MAX_PAGE
from app.api.operations.budgets import BudgetsOperations, LocalBudgets, RemoteBudgets
from app.api.operations.costs import CostsOperations, LocalCosts, RemoteCosts
from app.api.operations.jobs import JobsOperations, LocalJobs, RemoteJobs
from app.api.operations.overview import LocalOverview, OverviewOperations, RemoteOverview
from app.api.operations.sweeps import LocalSweeps, RemoteSweeps, SweepsOperations
from app.api.operations.tokens import LocalTokens, RemoteTokens, TokensOperations

__all__ = ["MAX_BATCH", "MAX_ID", "MAX_PAGE", "LocalOperations", "Operations",
           "RemoteOperations"]


class Operations(JobsOperations, CostsOperations, BudgetsOperations, OverviewOperations,
                 TokensOperations, SweepsOperations):
    """The whole interface; see the module docstring."""


class LocalOperations(LocalJobs, LocalCosts, LocalBudgets, LocalOverview, LocalTokens,
                      LocalSweeps, Operations):
    """Over the services of this process, as ``principal`` (see LocalBase)."""


class RemoteOperations(RemoteJobs, RemoteCosts, RemoteBudgets, RemoteOverview, RemoteTokens,
                       RemoteSweeps, Operations):
    """Over HTTP against `oppen serve` (see RemoteBase)."""
