"""Bearer tokens: created once and shown once, kept only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.api.access import Principal, Role
from app.core.errors import ConfigError, NotFoundError
from app.core.models import ApiToken
from app.core.timeutil import as_utc, utcnow

PREFIX = "oppen_"
# last_used_at is written at most this often per token, so reads stay reads.
TOUCH_EVERY_S = 60.0


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_dict(t: ApiToken) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "team": t.team, "role": t.role,
            "created_at": t.created_at.isoformat(),
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            "revoked": t.revoked_at is not None}


@dataclass
class TokenService:
    engine: Engine

    def create(self, team: str, role: str, name: str = "") -> tuple[ApiToken, str]:
        if not isinstance(team, str) or not team.strip():
            raise ConfigError("a token needs a team")
        parsed = Role.parse(role)
        secret = PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(name=name.strip() or f"{team}-{parsed.label}", team=team.strip(),
                       role=parsed.label, token_hash=digest(secret))
        with Session(self.engine) as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        return row, secret

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal a token stands for; None when it is missing, unknown or revoked."""
        if not token or not token.startswith(PREFIX) or len(token) > 200:
            return None
        with Session(self.engine) as s:
            row = s.exec(select(ApiToken).where(ApiToken.token_hash == digest(token))).first()
            if row is None or row.revoked_at is not None:
                return None
            now = utcnow()
            last = row.last_used_at
            if last is None or (now - as_utc(last)).total_seconds() > TOUCH_EVERY_S:
                row.last_used_at = now
                s.add(row)
                s.commit()
            return Principal(team=row.team, role=Role.parse(row.role), token_id=row.id)

    def list(self) -> list[ApiToken]:
        with Session(self.engine) as s:
            return list(s.exec(select(ApiToken).order_by(col(ApiToken.id))).all())

    def revoke(self, token_id: int) -> ApiToken:
        with Session(self.engine) as s:
            row = s.get(ApiToken, token_id)
            if row is None:
                raise NotFoundError(f"no token with id {token_id}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                s.add(row)
                s.commit()
                s.refresh(row)
            return row
