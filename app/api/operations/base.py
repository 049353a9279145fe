"""What every domain's operations share: on the local side the principal, the write lock
and the visibility rules; on the remote side the HTTP client and the mapping of error
responses back to Oppen's exceptions."""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

import httpx

from app.api.access import LOCAL_ADMIN, Principal
from app.api.errors import EXCEPTION_FOR_KIND
from app.api.tokens import TokenService
from app.core.errors import ConfigError, NotFoundError, OppenError, PermissionDeniedError
from app.core.models import Job
from app.core.queue import BatchError
from app.core.submission import SubmissionError

API = "/api/v1"
# The most jobs one listing returns, and one batch may hold.
MAX_PAGE = 1000
MAX_BATCH = 10_000
MAX_ID = 2**53
BUDGET_DEFAULT_THRESHOLDS = (0.5, 0.8, 1.0)
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200
# Reads, and POSTs that carry an idempotency key, are retried this many times after a
# connection error or a 5xx, waiting RETRY_BASE_S, then twice that, and so on.
RETRIES = 3
RETRY_BASE_S = 0.2


def new_idempotency_key() -> str:
    import uuid

    return uuid.uuid4().hex


def checked_idempotency_key(key: str | None) -> str | None:
    """A client's key, bounded and printable; None when the client sent none."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or any(ord(c) < 33 or ord(c) == 127
                                                          for c in key):
        raise ConfigError(f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY} printable "
                          "characters without spaces")
    return key


def when(value: str | None, zone: Any, label: str) -> datetime | None:
    """An ISO time; without an offset it is read in the pricing time zone."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} {value!r} is not an ISO time like 2026-11-24T17:30") \
            from None
    return at if at.tzinfo else at.replace(tzinfo=zone)



class LocalBase:
    """Over the services of this process, as ``principal`` (the local owner by default).
    ``write_lock``, when given, serialises the changing operations of this process: SQLite
    takes one writer at a time, and waiting on a lock is far cheaper than its busy handler's
    sleep-and-retry when a server's threads write at once."""

    def __init__(self, services: Any, principal: Principal = LOCAL_ADMIN,
                 write_lock: AbstractContextManager[Any] | None = None,
                 tokens: TokenService | None = None) -> None:
        self.services = services
        self.principal = principal
        self._write_lock = write_lock if write_lock is not None else nullcontext()
        # The server passes its own, so a revocation also clears what it remembers.
        self._token_service = tokens

    # --- helpers ---------------------------------------------------------------------------

    def _visible(self, job_id: int) -> Job:
        """The job, if this principal may see it; otherwise exactly as if it did not exist."""
        job = None
        if isinstance(job_id, int) and 1 <= job_id <= MAX_ID:  # beyond: no such row, ever
            try:
                job = self.services.queue.get(job_id)
            except NotFoundError:
                job = None
        if job is None or not self.principal.sees_team(job.team):
            raise NotFoundError(f"no job with id {job_id}")
        return job

    def _own_item(self, item: Any) -> Any:
        """A submission, with the team filled in (and checked) from the token."""
        if not isinstance(item, dict):
            return item  # the queue's contract refuses it, in its own words
        item = dict(item)
        team = item.get("team")
        if self.principal.is_admin:
            item.setdefault("team", self.principal.team)
        elif team is None:
            item["team"] = self.principal.team
        elif team != self.principal.team:
            raise PermissionDeniedError(
                f"this token submits for team {self.principal.team}, not {team}")
        return item

    def _submission(self, item: Any, default_name: str | None = None) -> dict[str, Any]:
        """One job as submitted, its team settled; the queue applies the contract."""
        item = self._own_item(item)
        if default_name is not None:
            item.setdefault("name", default_name)
        return item


class RemoteBase:
    retry_base_s = RETRY_BASE_S

    """Over HTTP against `oppen serve`: error responses become the exceptions the local side
    raises, so callers cannot tell the difference."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s,
                                 transport=transport)

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        """One request, retried with backoff after a connection error or a 5xx when that is
        safe: a read, or a POST carrying an idempotency key (the server queues it once)."""
        safe = method == "GET" or IDEMPOTENCY_HEADER in kwargs.get("headers", {})
        for attempt in range(RETRIES + 1 if safe else 1):
            if attempt:
                time.sleep(self.retry_base_s * 2 ** (attempt - 1))
            try:
                response = self.http.request(method, API + path, **kwargs)
            except httpx.HTTPError as exc:
                if safe and attempt < RETRIES:
                    continue
                raise OppenError(f"cannot reach the Oppen server at {self.base_url}: "
                                 f"{type(exc).__name__}: {exc}") from None
            if response.status_code < 500 or not safe or attempt == RETRIES:
                return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if "json" in kwargs:
            # Python's encoder, not httpx's: NaN and Infinity go to the server as written, so
            # the server's contract refuses them in its own words instead of this process
            # failing to encode them.
            kwargs["content"] = json.dumps(kwargs.pop("json"))
            kwargs["headers"] = {**kwargs.get("headers", {}),
                                 "Content-Type": "application/json"}
        response = self._send(method, path, kwargs)
        if response.is_success:
            return response.json()
        try:
            body = response.json()
            message, kind = body["error"], body["kind"]
        except (ValueError, KeyError, TypeError):
            raise OppenError(f"the server at {self.base_url} answered {response.status_code}: "
                             f"{response.text[:200]}") from None
        if kind == "invalid_batch":
            raise BatchError(body.get("errors", []))
        fields = body.get("errors")
        if kind == "validation" and isinstance(fields, list) and fields and all(
                isinstance(f, dict) and {"field", "message"} <= set(f) for f in fields):
            raise SubmissionError(fields)
        if response.status_code >= 500:
            raise OppenError(f"the server failed: {message}")
        raise EXCEPTION_FOR_KIND.get(kind, OppenError)(message)


def segment(name: str) -> str:
    from urllib.parse import quote

    if not name:
        raise ConfigError("a name is required")
    return quote(name, safe="")


def jsonable(item: Any) -> Any:
    """Submissions may carry datetimes (start_after); JSON carries them as ISO text."""
    if not isinstance(item, dict):
        return item
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in item.items()}
