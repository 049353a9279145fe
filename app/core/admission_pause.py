"""Pausing admission: while paused, the dispatcher starts no queued job (running jobs go on
and are watched as ever), and every queued job's pending reason says so. The pause is a row
in the database, so it holds for every dispatcher and survives restarts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.models import AdmissionPause
from app.core.timeutil import as_utc, utcnow

MAX_REASON = 200


@dataclass(frozen=True)
class Paused:
    since: datetime
    by: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(timespec="seconds"), "by": self.by,
                "reason": self.reason}

    def sentence(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return (f"admission is paused since {self.since.isoformat(timespec='minutes')} by "
                f"{self.by or 'someone'}{why}")


def current(session: Session) -> Paused | None:
    row = session.get(AdmissionPause, "admission")
    return Paused(as_utc(row.since), row.by, row.reason) if row else None


def read(engine: Engine) -> Paused | None:
    with Session(engine) as s:
        return current(s)


def pause(engine: Engine, by: str, reason: str = "") -> Paused:
    """Pauses admission (a second pause keeps the first one's time, by and reason)."""
    with Session(engine) as s:
        row = s.get(AdmissionPause, "admission")
        if row is None:
            row = AdmissionPause(since=utcnow(), by=by[:100], reason=reason[:MAX_REASON])
            s.add(row)
            s.commit()
            s.refresh(row)
        return Paused(as_utc(row.since), row.by, row.reason)


def resume(engine: Engine) -> bool:
    """Admits again; False when admission was not paused."""
    with Session(engine) as s:
        row = s.get(AdmissionPause, "admission")
        if row is None:
            return False
        s.delete(row)
        s.commit()
        return True
