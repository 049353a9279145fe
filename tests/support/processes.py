"""Running Oppen and helpers in other processes, and finding free loopback ports."""

from __future__ import annotations

import socket
import sys


def oppen_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "app", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_in_processes(target, argument_tuples) -> None:  # type: ignore[no-untyped-def]
    """Runs ``target`` once per argument tuple, each in its own spawned process, all at once;
    fails if any of them fails."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=target, args=args) for args in argument_tuples]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
        assert w.exitcode == 0, f"a worker process failed (exit code {w.exitcode})"
