"""One access line per request (method, path, status, milliseconds) on the ``oppen.access``
logger, as a plain ASGI middleware: no per-request task or body copy, so it costs the API
server next to nothing under load."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("oppen.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            log.info("%s %s %s %.1f ms", scope["method"], scope["path"], status,
                     (time.perf_counter() - start) * 1000)


def log_requests_to_stderr() -> None:
    """Access lines (and the start-up line) to stderr, timestamped."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    for name in ("oppen.access", "oppen.server"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
