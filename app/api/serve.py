"""Runs the API with uvicorn and, beside it in the same process, the dispatcher: one
leader at a time through the database lease, as with `oppen dispatcher run`."""

from __future__ import annotations

import gc
import logging
import signal
import sys
from typing import Any

from app.api.server import create_app
from app.web.access import log_requests_to_stderr

log = logging.getLogger(__name__)


def run_server(services: Any, host: str, port: int, dispatcher: bool = True,
               interval_s: float | None = None) -> None:
    import uvicorn

    every = interval_s or services.settings.dispatch_interval_s
    _ = services.engine  # open and migrate the database before the first request
    on_start = on_stop = None
    if dispatcher:
        d = services.dispatcher()

        def on_start() -> Any:
            return d.start_background(every)

        def on_stop(scheduler: Any) -> None:
            d.stop_background(scheduler)

    app = create_app(services, on_start, on_stop)
    # uvicorn turns SIGTERM and Ctrl-C into a graceful shutdown (requests in flight finish,
    # then the lifespan stops the dispatcher and releases its lease) and afterwards raises
    # the signal again under the handlers it found: these make that a clean exit.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    # Everything imported so far lives as long as the server: move it out of the collector's
    # sight, so collections under load scan only what requests create (shorter pauses).
    gc.collect()
    gc.freeze()
    log_requests_to_stderr()
    logging.getLogger("oppen.server").info(
        "oppen serve: http://%s:%s (API under /api/v1, health at /healthz)%s", host, port,
        "; dispatching" if dispatcher else "")
    # Keep-alive well past uvicorn's 5 s default: clients (dashboards, load, the CLI in a loop)
    # reuse connections, and a server closing one just as a request is sent drops it.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                timeout_keep_alive=30)
