"""Runs one command and records how it ended in a status file.

The local executor starts jobs through this wrapper so that the exit code outlives the
dispatcher that launched it: a restarted dispatcher reads the file instead of a lost child.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def write_status(path: Path, exit_code: int, detail: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"exit_code": exit_code, "detail": detail}))
    os.replace(tmp, path)  # atomic: readers see all of it or nothing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--status", required=True, type=Path)
    parser.add_argument("--pidfile", type=Path,
                        help="written first, so a restarted dispatcher can find this attempt")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    if args.pidfile is not None:
        from app.core.executors.local import process_start_ticks

        tmp = args.pidfile.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "start": process_start_ticks(os.getpid())}))
        os.replace(tmp, args.pidfile)
    child = subprocess.Popen(command)
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
    write_status(args.status, code, detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
