"""Dispatcher leadership: one lease row, renewed by heartbeat, taken over only after expiry.

Acquisition is a single conditional UPDATE (or an INSERT for the very first leader), so two
dispatchers racing on SQLite or PostgreSQL cannot both win.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.core.models import DispatcherLease
from app.core.timeutil import utcnow

LEASE_NAME = "dispatcher"


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, engine: Engine, holder: str, ttl_s: float) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl = timedelta(seconds=ttl_s)

    def acquire(self) -> bool:
        """Takes or renews the lease; True while this holder leads."""
        now = utcnow()
        with Session(self.engine) as s:
            stmt = (
                update(DispatcherLease)
                .where(DispatcherLease.name == LEASE_NAME)
                .where(or_(DispatcherLease.holder == self.holder,
                           DispatcherLease.expires_at < now))
                .values(holder=self.holder, expires_at=now + self.ttl, heartbeat_at=now)
            )
            if s.exec(stmt).rowcount == 1:  # type: ignore[call-overload]
                s.commit()
                return True
            s.rollback()
            if s.get(DispatcherLease, LEASE_NAME) is not None:
                return False
            s.add(DispatcherLease(name=LEASE_NAME, holder=self.holder,
                                  expires_at=now + self.ttl, heartbeat_at=now))
            try:
                s.commit()
                return True
            except IntegrityError:
                return False

    def release(self) -> None:
        with Session(self.engine) as s:
            lease = s.get(DispatcherLease, LEASE_NAME)
            if lease is not None and lease.holder == self.holder:
                s.delete(lease)
                s.commit()

    def current(self) -> DispatcherLease | None:
        with Session(self.engine) as s:
            return s.get(DispatcherLease, LEASE_NAME)
