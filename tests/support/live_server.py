"""The API server on a loopback port, in a thread of the test process: real HTTP, quick to
start. (The end-to-end test runs `oppen serve` as its own process instead.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from app.api.client import wait_until_healthy
from app.api.server import create_app


@contextmanager
def live_server(services: Any, port: int) -> Iterator[str]:
    config = uvicorn.Config(create_app(services), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, thread.is_alive)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
