"""The client side of `oppen serve`: RemoteOperations (the Operations interface over HTTP,
built in app.api.operations from each domain's remote half) and waiting for a server to come
up."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from app.api.operations import RemoteOperations
from app.core.errors import OppenError

__all__ = ["RemoteOperations", "wait_until_healthy"]


def wait_until_healthy(url: str, alive: Callable[[], bool] = lambda: True,
                       timeout_s: float = 60) -> None:
    """Until the server at ``url`` answers /healthz; fails at once if ``alive`` says the
    server is gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not alive():
            raise OppenError(f"the Oppen server at {url} exited before it was ready")
        if time.monotonic() > deadline:
            raise OppenError(f"the Oppen server at {url} did not start in {timeout_s:g} s")
        time.sleep(0.05)
