"""Bearer tokens: created once and shown once, kept only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
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
# A server remembers a token's holder this long, so a burst of requests reads the token
# table once. A revocation through the same server takes effect at once (the entry is
# dropped); one made directly in the database, within this many seconds.
REMEMBER_S = 5.0


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
    _known: dict[str, tuple[float, Principal]] = field(default_factory=dict, repr=False)

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
        key = digest(token)
        known = self._known.get(key)
        if known is not None and time.monotonic() - known[0] < REMEMBER_S:
            return known[1]
        with Session(self.engine) as s:
            row = s.exec(select(ApiToken).where(ApiToken.token_hash == key)).first()
            if row is None or row.revoked_at is not None:
                self._known.pop(key, None)
                return None
            now = utcnow()
            last = row.last_used_at
            if last is None or (now - as_utc(last)).total_seconds() > TOUCH_EVERY_S:
                row.last_used_at = now
                s.add(row)
                s.commit()
            principal = Principal(team=row.team, role=Role.parse(row.role), token_id=row.id)
        self._known[key] = (time.monotonic(), principal)
        return principal

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
            self._known.pop(row.token_hash, None)
            return row
