"""Who is asking, and what their role lets them do.

viewer: reads its team's jobs, queue, costs and budgets. submitter: also submits, cancels,
retries and re-prioritises its team's jobs, within its team's budgets. admin: everything, for
every team, and manages budgets and tokens. Someone at the local command line (no server) is
an admin, as the owner of the database file.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from app.core.errors import ConfigError, PermissionDeniedError


class Role(IntEnum):
    VIEWER = 1
    SUBMITTER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ConfigError(f"unknown role {name!r}; use viewer, submitter or admin") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    team: str
    role: Role
    token_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.ADMIN

    def require(self, role: Role, action: str) -> None:
        if self.role < role:
            raise PermissionDeniedError(
                f"{action} needs the {role.label} role; this token is {self.role.label}")

    def sees_team(self, team: str) -> bool:
        return self.is_admin or team == self.team

    def team_filter(self, asked: str | None) -> str | None:
        """The team a listing is limited to: the asked one for admins, else always one's own."""
        if self.is_admin:
            return asked
        if asked is not None and asked != self.team:
            raise PermissionDeniedError(f"this token may only read team {self.team}'s jobs")
        return self.team


LOCAL_ADMIN = Principal(team="default", role=Role.ADMIN)
