"""Dispatcher leadership: one lease row, renewed by heartbeat, taken over only after expiry,
and fenced.

Acquisition is a single conditional UPDATE (or an INSERT for the very first leader), so two
dispatchers racing on SQLite or PostgreSQL cannot both win. Every change of holder raises the
row's ``epoch``, the fencing token: a leader remembers the epoch it won, and each of its state
writes and launches is conditioned on the row still naming it in that epoch and not yet
expired (:meth:`Lease.fence`). A dispatcher whose tick outlasted its lease, and was replaced
meanwhile, therefore cannot change anything: its writes match no row and it stops.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.core.errors import OppenError
from app.core.models import DispatcherLease
from app.core.timeutil import utcnow

LEASE_NAME = "dispatcher"


class LeadershipLost(OppenError):
    """This dispatcher no longer holds the lease (or holds it in a later epoch than the work
    in hand was planned in); nothing was changed."""


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, engine: Engine, holder: str, ttl_s: float) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl = timedelta(seconds=ttl_s)
        self.epoch: int | None = None  # the epoch this holder leads in, once it has won
        self.expires_at: datetime | None = None

    def acquire(self) -> bool:
        """Takes or renews the lease; True while this holder leads. A takeover (or the first
        lease) starts a new epoch; a renewal keeps it."""
        now = utcnow()
        table = DispatcherLease.__table__
        with Session(self.engine) as s:
            mine = table.c.holder == self.holder
            row = s.execute(
                update(table)
                .where(table.c.name == LEASE_NAME)
                .where(or_(mine, table.c.expires_at < now))
                .values(holder=self.holder, expires_at=now + self.ttl, heartbeat_at=now,
                        epoch=case((mine, table.c.epoch), else_=table.c.epoch + 1))
                .returning(table.c.epoch)
            ).first()
            if row is not None:
                s.commit()
                return self._won(int(row[0]), now)
            s.rollback()
            if s.get(DispatcherLease, LEASE_NAME) is not None:
                self.epoch = None
                return False
            try:
                s.execute(insert(table).values(name=LEASE_NAME, holder=self.holder,
                                               expires_at=now + self.ttl, heartbeat_at=now,
                                               epoch=1))
                s.commit()
            except IntegrityError:
                self.epoch = None
                return False
            return self._won(1, now)

    def _won(self, epoch: int, now: datetime) -> bool:
        self.epoch, self.expires_at = epoch, now + self.ttl
        return True

    def renew(self) -> None:
        """Extends the lease in the epoch this holder leads in; raises LeadershipLost if it
        was taken over meanwhile (even if this holder could win it again: work planned in
        the old epoch must not go on)."""
        if self.epoch is None:
            raise LeadershipLost("this dispatcher does not lead")
        planned = self.epoch
        if not self.acquire() or self.epoch != planned:
            self.epoch = None
            raise LeadershipLost(f"lost the dispatcher lease (epoch {planned})")

    def remaining_s(self) -> float:
        """Seconds of leadership left as this holder last saw it (0 when not leading)."""
        if self.epoch is None or self.expires_at is None:
            return 0.0
        return max(0.0, (self.expires_at - utcnow()).total_seconds())

    def fence(self) -> Any:
        """A SQL condition true only while this holder leads in its epoch, unexpired: added
        to every state write of the dispatcher, so a write after a takeover matches nothing."""
        if self.epoch is None:
            raise LeadershipLost("this dispatcher does not lead")
        table = DispatcherLease.__table__
        return exists(select(table.c.name).where(and_(
            table.c.name == LEASE_NAME, table.c.holder == self.holder,
            table.c.epoch == self.epoch, table.c.expires_at > utcnow())))

    def check(self, session: Session) -> None:
        """Raises LeadershipLost unless the fence holds now (read in ``session``)."""
        if not session.execute(select(self.fence())).scalar():
            self.epoch = None
            raise LeadershipLost("the dispatcher lease was taken over")

    def release(self) -> None:
        with Session(self.engine) as s:
            lease = s.get(DispatcherLease, LEASE_NAME)
            if lease is not None and lease.holder == self.holder:
                # Emptied and expired rather than deleted: the epoch must keep rising.
                lease.holder, lease.degraded = "", None
                lease.expires_at = utcnow() - timedelta(seconds=1)
                s.add(lease)
                s.commit()
        self.epoch = None

    def current(self) -> DispatcherLease | None:
        """The lease row as it stands (it may have expired: nobody leads then); None when no
        dispatcher ever led or the last one handed the lease back."""
        with Session(self.engine) as s:
            lease = s.get(DispatcherLease, LEASE_NAME)
            return lease if lease is not None and lease.holder else None
