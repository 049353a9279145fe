"""Request bodies over a limit are refused with 413, whatever the client declares, and a body
that stops arriving is refused with 408 instead of holding a worker forever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit} bytes")


class TooSlow(HTTPException):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(408, f"the request body did not arrive within {timeout_s:g} s")


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413: at once by Content-Length, or while a
    chunked body streams in (the route then fails with TooLarge, which maps to 413). Each
    chunk of a body must arrive within ``read_timeout_s`` (else TooSlow, 408).
    ``refuse(limit)`` builds the server's own 413 response."""

    def __init__(self, app: ASGIApp, limit: int, refuse: Callable[[int], Any],
                 read_timeout_s: float = 30.0) -> None:
        self.app, self.limit, self.refuse = app, limit, refuse
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self.refuse(self.limit)(scope, receive, send)
            return
        seen, body_done = 0, False

        async def counted() -> Message:
            nonlocal seen, body_done
            if body_done:  # later receives wait for a disconnect: no deadline on those
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                raise TooSlow(self.read_timeout_s) from None
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge(self.limit)
            body_done = message.get("type") != "http.request" or not message.get("more_body")
            return message

        await self.app(scope, counted, send)
