"""Runs one command and records how it ended in a status file.

The local executor starts jobs through this wrapper so that the exit code outlives the
dispatcher that launched it: a restarted dispatcher reads the file instead of a lost child.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def write_status(path: Path, exit_code: int, detail: str, started: float | None = None,
                 ended: float | None = None) -> None:
    """The attempt's outcome, with its own start and end (Unix seconds): what it is charged."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"exit_code": exit_code, "detail": detail,
                               "started": started, "ended": ended}))
    os.replace(tmp, path)  # atomic: readers see all of it or nothing


# Address space a training process maps beyond what it allocates itself (the interpreter,
# PyTorch's libraries, thread stacks and arenas, MLflow, simrs): a tiny `oppen train` peaked
# at 1.4 GiB of virtual memory on the 2-core VM (VmPeak, 2026-12-06); more threads map more.
# A job's limit is this allowance plus the memory it requested.
BASE_ADDRESS_SPACE_MB = 4096
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "RAYON_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def limits_for(memory_mb: int | None) -> Callable[[], None] | None:
    """What the child runs before exec: its address space capped at the request plus the
    runtime's own, so a run that asks for far more memory than it was given fails with an
    allocation error instead of taking the machine."""
    if memory_mb is None:
        return None
    limit = (BASE_ADDRESS_SPACE_MB + memory_mb) * 1024 * 1024

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def thread_env(cpus: float | None) -> dict[str, str]:
    """Every thread pool the job's libraries start, sized to the CPUs it requested."""
    if cpus is None:
        return dict(os.environ)
    n = str(max(1, math.ceil(cpus)))
    return {**os.environ, **{name: n for name in THREAD_VARIABLES}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--status", required=True, type=Path)
    parser.add_argument("--pidfile", type=Path,
                        help="written first, so a restarted dispatcher can find this attempt")
    parser.add_argument("--memory-mb", type=int, default=None,
                        help="the job's memory request: caps its address space")
    parser.add_argument("--cpus", type=float, default=None,
                        help="the job's CPU request: sizes its thread pools")
    parser.add_argument("--warm", type=Path, default=None,
                        help="a warm-start server's socket: the command (oppen ARGS) is forked "
                             "from it if it answers, else started cold")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    if args.pidfile is not None:
        from app.core.executors.processes import process_start_ticks

        tmp = args.pidfile.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "start": process_start_ticks(os.getpid())}))
        os.replace(tmp, args.pidfile)
    started = time.time()
    if args.warm is not None:
        code = _warm(args, command, started)
        if code is not None:
            return code
    child = subprocess.Popen(command, preexec_fn=limits_for(args.memory_mb),  # noqa: PLW1509
                             env=thread_env(args.cpus))
    stopping = {"signal": 0}

    def forward(signum: int, _frame: object) -> None:
        stopping["signal"] = signum
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    detail = f"stopped by signal {stopping['signal']}" if stopping["signal"] else ""
    if code < 0 and not detail:
        detail = f"killed by signal {-code}"
    write_status(args.status, code, detail, started, time.time())
    return 0


def _warm(args: argparse.Namespace, command: list[str], started: float) -> int | None:
    """The command forked from the warm server, its pid recorded beside the pid file (what a
    test or benchmark signals); None if no server answered (start cold instead)."""
    from app.core.executors.processes import alive
    from app.core.executors.warm import WarmStart

    oppen_args = _oppen_args(command)
    if oppen_args is None:
        return None
    warm = WarmStart.start(args.warm, oppen_args, thread_env(args.cpus), args.cpus,
                           args.memory_mb, watch_pid=os.getpid())
    if warm is None:
        return None
    if args.pidfile is not None:
        args.pidfile.with_suffix(".child").write_text(str(warm.pid))
    stopping = {"signal": 0}

    def forward(signum: int, _frame: object) -> None:
        stopping["signal"] = signum
        try:
            os.kill(warm.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = warm.wait()
    detail = f"stopped by signal {stopping['signal']}" if stopping["signal"] else ""
    if code is None:  # the server went away first: wait the child out; its code is lost
        while alive(warm.pid):
            time.sleep(0.2)
        code, detail = 1, detail or "the warm-start server ended before its job; exit unknown"
    if code < 0 and not detail:
        detail = f"killed by signal {-code}"
    write_status(args.status, code, detail, started, time.time())
    return 0


def _oppen_args(command: list[str]) -> list[str] | None:
    """ARGS of ``PYTHON -m app ARGS`` (the default job command), else None: any other
    command starts cold."""
    if len(command) >= 3 and command[1:3] == ["-m", "app"]:
        return command[3:]
    return None


if __name__ == "__main__":
    sys.exit(main())
