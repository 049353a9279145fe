"""Runs jobs as local processes: `oppen train --job-id N` under the status-recording runner."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.core.executors.base import ExecStatus, Phase, StartUnderWay
from app.core.executors.processes import alive, process_start_ticks
from app.core.models import Job


def job_process(ref: str) -> int | None:
    """The pid of the attempt's own process (the runner's child: `oppen train`, or the warm
    server's child the runner asked for), while it runs; what a test or a benchmark signals
    to play a preemption."""
    info = json.loads(ref)
    warm = Path(info["status"]).with_suffix(".child")
    if warm.exists():
        pid = int(warm.read_text())
        return pid if alive(pid) else None
    runner = int(info["pid"])
    try:
        children = Path(f"/proc/{runner}/task/{runner}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


@dataclass(frozen=True)
class WarmServer:
    """Where the warm-start server listens, what it runs per job ("module:function") and
    what it imports first (app.core.executors.warm)."""

    socket: Path
    entry: str
    preload: tuple[str, ...] = ()
    idle_s: float = 600.0
    warmup: str | None = None


def _when(unix_s: float | None) -> datetime | None:
    return datetime.fromtimestamp(unix_s, UTC) if isinstance(unix_s, (int, float)) else None


class LocalExecutor:
    name = "local"

    def __init__(self, logs_dir: Path, env: dict[str, str], python: str | None = None,
                 grace_s: float = 20.0, command: str | None = None,
                 max_wait_s: float = 30.0, warm: WarmServer | None = None) -> None:
        # Jobs fork from this warm-start server when it answers (the default command only).
        self.warm = warm
        self._warm_asked_at = -1e9
        # The longest any one call may wait (for a pid file, for a SIGTERM to take): the
        # dispatcher calls these inside its lease, so they must end well before it does.
        self.max_wait_s = max_wait_s
        self.grace_s = min(grace_s, max_wait_s)
        self.command = command
        self.logs_dir = logs_dir
        self.env = env
        self.python = python or sys.executable
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def paths(self, job: Job) -> tuple[Path, Path, Path]:
        """Log, status and pid files of the job's current attempt (counted at admission)."""
        stem = f"job-{job.id}-attempt-{max(1, job.attempts)}"
        return (self.logs_dir / f"{stem}.log", self.logs_dir / f"{stem}.status",
                self.logs_dir / f"{stem}.pid")

    def launch(self, job: Job) -> str:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path, status_path, pid_path = self.paths(job)
        status_path.unlink(missing_ok=True)
        pid_path.unlink(missing_ok=True)
        pid_path.with_suffix(".child").unlink(missing_ok=True)
        warm = []
        if self.warm is not None and not self.command:
            self.prepare()
            warm = ["--warm", str(self.warm.socket)]
        cmd = [
            self.python, "-m", "app.core.executors.runner", "--status", str(status_path),
            "--pidfile", str(pid_path), "--cpus", str(job.cpus),
            # CUDA reserves tens of GB of address space for itself, so a GPU job's memory is
            # not capped by address space; a CPU job's is (runner.limits_for).
            *(["--memory-mb", str(job.memory_mb)] if job.gpus == 0 else []), *warm,
            "--", *self.job_command(job),
        ]
        with open(log_path, "ab") as log:
            # A new session: the job outlives the dispatcher, and stop() signals its group.
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env={**os.environ, **self.env},
                                    start_new_session=True)
        self._children[proc.pid] = proc
        return self._ref(proc.pid, process_start_ticks(proc.pid), status_path, log_path)

    def prepare(self) -> None:
        """Starts the warm-start server if none answers (at most every 10 s: one that is
        still importing does not answer yet; jobs start cold meanwhile)."""
        if self.warm is None or self.command or time.monotonic() - self._warm_asked_at < 10.0:
            return
        self._warm_asked_at = time.monotonic()
        from app.core.executors import warm

        warm.launch_server(self.warm.socket, self.warm.entry, self.warm.preload,
                           {**self.env}, self.python, self.warm.idle_s,
                           self.logs_dir / "warm-server.log", self.warm.warmup,
                           owner_pid=os.getpid())  # it leaves with this dispatcher

    def job_command(self, job: Job) -> list[str]:
        if self.command:
            return shlex.split(self.command.replace("{job_id}", str(job.id)))
        return [self.python, "-m", "app", "train", "--job-id", str(job.id)]

    @staticmethod
    def _ref(pid: int, start: int | None, status_path: Path, log_path: Path) -> str:
        return json.dumps({"pid": pid, "start": start, "status": str(status_path),
                           "log": str(log_path)})

    def find(self, job: Job, startup_grace_s: float = 30.0) -> str | None:
        """The attempt's runner writes its pid file first thing; a log file without one
        means a start may still be under way, so wait for it a little (at most max_wait_s
        in this call), and raise StartUnderWay while the log is younger than
        ``startup_grace_s``: a runner slow to start on a loaded machine is not a start that
        never happened."""
        log_path, status_path, pid_path = self.paths(job)
        deadline = time.monotonic() + min(startup_grace_s, self.max_wait_s)
        while not pid_path.exists():
            if not log_path.exists():
                return None
            if time.time() - log_path.stat().st_mtime > startup_grace_s:
                return None
            if time.monotonic() > deadline:
                raise StartUnderWay(f"job {job.id}'s attempt may still be starting")
            time.sleep(0.2)
        info = json.loads(pid_path.read_text())
        return self._ref(int(info["pid"]), info.get("start"), status_path, log_path)

    def poll(self, ref: str) -> ExecStatus:
        info = json.loads(ref)
        pid, status_path = int(info["pid"]), Path(info["status"])
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            self._children.pop(pid, None)  # reaped; the status file says how it went
        # Alive first, then the status file: the runner writes that file before it exits, so
        # a runner found gone has written it if it ever will. In the other order a runner
        # that wrote it and exited between the two looks lost, and its job ran again.
        running = alive(pid, info.get("start"))
        if status_path.exists():
            data = json.loads(status_path.read_text())
            return ExecStatus(Phase.EXITED, int(data["exit_code"]), data.get("detail", ""),
                              _when(data.get("started")), _when(data.get("ended")))
        if running:
            return ExecStatus(Phase.RUNNING)
        return ExecStatus(Phase.LOST, None, "the process ended without recording an exit code")

    def stop(self, ref: str, grace_s: float | None = None) -> None:
        """SIGTERM to the job's process group, SIGKILL after the grace period."""
        grace_s = self.grace_s if grace_s is None else min(grace_s, self.max_wait_s)
        info = json.loads(ref)
        pid = int(info["pid"])
        if not alive(pid, info.get("start")):
            return  # already gone; never signal a stranger that reused the pid
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
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if child is not None:
            child.wait()

    def logs(self, ref: str, lines: int = 50) -> str:
        path = Path(json.loads(ref)["log"])
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
