"""Runs jobs as local processes: `oppen train --job-id N` under the status-recording runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.core.executors.base import ExecStatus, Phase
from app.core.models import Job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # a zombie has exited; only its parent has not reaped it yet
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    return True


class LocalExecutor:
    name = "local"

    def __init__(self, logs_dir: Path, env: dict[str, str], python: str | None = None) -> None:
        self.logs_dir = logs_dir
        self.env = env
        self.python = python or sys.executable
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def paths(self, job: Job) -> tuple[Path, Path]:
        stem = f"job-{job.id}-attempt-{job.attempts + 1}"
        return self.logs_dir / f"{stem}.log", self.logs_dir / f"{stem}.status"

    def launch(self, job: Job) -> str:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path, status_path = self.paths(job)
        status_path.unlink(missing_ok=True)
        cmd = [
            self.python, "-m", "app.core.executors.runner", "--status", str(status_path), "--",
            self.python, "-m", "app", "train", "--job-id", str(job.id),
        ]
        with open(log_path, "ab") as log:
            # A new session: the job outlives the dispatcher, and stop() signals its group.
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env={**os.environ, **self.env},
                                    start_new_session=True)
        self._children[proc.pid] = proc
        return json.dumps({"pid": proc.pid, "status": str(status_path), "log": str(log_path)})

    def poll(self, ref: str) -> ExecStatus:
        info = json.loads(ref)
        pid, status_path = int(info["pid"]), Path(info["status"])
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            self._children.pop(pid, None)  # reaped; the status file says how it went
        if status_path.exists():
            data = json.loads(status_path.read_text())
            return ExecStatus(Phase.EXITED, int(data["exit_code"]), data.get("detail", ""))
        if _alive(pid):
            return ExecStatus(Phase.RUNNING)
        return ExecStatus(Phase.LOST, None, "the process ended without recording an exit code")

    def stop(self, ref: str, grace_s: float = 10.0) -> None:
        """SIGTERM to the job's process group, SIGKILL after the grace period."""
        pid = int(json.loads(ref)["pid"])
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        child = self._children.pop(pid, None)
        if child is not None:  # our own child: wait for it, which also reaps it
            try:
                child.wait(timeout=grace_s)
                return
            except subprocess.TimeoutExpired:
                pass
        else:
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if child is not None:
            child.wait()

    def log_tail(self, ref: str, lines: int = 5) -> str:
        path = Path(json.loads(ref)["log"])
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
