"""The API server on a loopback port, in a thread of the test process: real HTTP, quick to
start. (The end-to-end test runs `oppen serve` as its own process instead.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from app.api.server import create_app


def wait_healthy(url: str, alive: Callable[[], bool] = lambda: True,
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
            raise RuntimeError(f"the API server at {url} exited before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API server at {url} did not start in {timeout_s:g} s")
        time.sleep(0.05)


@contextmanager
def live_server(services: Any, port: int) -> Iterator[str]:
    config = uvicorn.Config(create_app(services), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, thread.is_alive)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
