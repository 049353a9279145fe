"""Warm starts: a fork server that has already imported what a training process needs
(PyTorch, MLflow, simrs, Oppen's CLI and trainer), so a job starts in milliseconds instead of
the seconds its imports take. A sweep runs many short trials, and their start was most of
their cost (docs/sweeps.md, "Cheap trials").

Protocol, over a Unix socket beside the database (``$OPPEN_HOME/warm.sock``): a client sends
one JSON line ``{"argv": [...], "env": {...}, "cwd": ..., "cpus": N, "memory_mb": M,
"watch_pid": P}`` with its stdin, stdout and stderr as passed file descriptors. The server
forks; the child takes those descriptors, that environment, the thread count and address
space limit the job asked for, and runs ``oppen ARGV``. The server answers ``{"pid": ...}``
at once and ``{"exit_code": ...}`` when the child ends. A child whose ``watch_pid`` (the
runner that asked for it) disappears kills itself, as it would have died with the runner's
process group in a cold start.

The server forks from one thread only and holds no database connection or open run, so a
child inherits nothing it could share by mistake. It exits after ``idle_s`` without a
request; whoever needs it next starts another. A server whose socket was replaced or
removed takes no more requests and leaves once its running children have ended and their
exit codes have gone to their runners.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

IDLE_S = 600.0
# Set in every child's environment.
CHILD_MARK = "OPPEN_WARM_CHILD"
MAX_REQUEST = 1 << 20


def _send(conn: socket.socket, payload: dict[str, Any]) -> None:
    conn.sendall((json.dumps(payload) + "\n").encode())


def _read_line(conn: socket.socket, first: bytes = b"") -> bytes:
    data = first
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ConnectionError("request too large")
    return data


# --- the server ---------------------------------------------------------------------------

def _function(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def serve(path: Path, entry: str, preload: tuple[str, ...] = (), warmup: str | None = None,
          idle_s: float = IDLE_S, owner_pid: int | None = None) -> None:
    """Imports ``preload`` and ``entry`` ("module:function", the command line's main), calls
    ``warmup`` ("module:function", one-time work every run would do), then forks a child
    that calls ``entry`` for each request. It leaves after ``idle_s`` without a request, or
    once ``owner_pid`` (the dispatcher that started it) is gone and no child is running, or,
    after its running children end, once its socket is replaced or removed. It does not
    start if another server already answers at ``path``."""
    from app.core.executors.processes import alive, process_start_ticks

    owner_start = process_start_ticks(owner_pid) if owner_pid else None
    main = _function(entry)
    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # an optional part (the pytorch flavour, say): imported by the child if used
    if warmup:
        _function(warmup)()
    if answering(path):
        return  # another server got here first (its imports were quicker): it serves
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp))
    os.chmod(tmp, 0o600)  # the owner's jobs only
    listener.listen(16)
    os.replace(tmp, path)  # atomic: a client finds a listening socket or none
    ours = os.stat(path).st_ino
    listener.settimeout(1.0)
    last = time.monotonic()
    active = {"n": 0}
    lock = threading.Lock()
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                with lock:
                    quiet = active["n"] == 0
                idle = quiet and (time.monotonic() - last > idle_s or (
                    owner_pid is not None and not alive(owner_pid, owner_start)))
                if idle or not _still_ours(path, ours):
                    break
                continue
            last = time.monotonic()
            conn.settimeout(5.0)  # a client that connects and says nothing is dropped
            try:
                pid = _fork_one(conn, listener, main)
            except (OSError, ValueError, ConnectionError) as exc:
                try:
                    _send(conn, {"error": f"{type(exc).__name__}: {exc}"})
                except OSError:
                    pass
                conn.close()
                continue
            with lock:
                active["n"] += 1
            threading.Thread(target=_reap, args=(conn, pid, active, lock), daemon=True).start()
    finally:
        if _still_ours(path, ours):
            path.unlink(missing_ok=True)
        listener.close()
    # Replaced or stopped with children running: each runner still waits for its child's
    # exit code, which only this process can read (it is their parent).
    while True:
        with lock:
            if active["n"] == 0:
                return
        time.sleep(0.2)


def _still_ours(path: Path, inode: int) -> bool:
    """Whether the socket file is still the one this server bound (a newer server may have
    replaced it, or `oppen warm stop` removed it; then this one leaves)."""
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _fork_one(conn: socket.socket, listener: socket.socket, main: Any) -> int:
    msg, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError("expected stdin, stdout and stderr")
    request = json.loads(_read_line(conn, msg))
    argv = [str(a) for a in request["argv"]]
    pid = os.fork()
    if pid == 0:  # the child: becomes `oppen ARGV`; never returns
        try:
            listener.close()
            conn.close()
            _become(argv, request, fds, main)
        finally:
            os._exit(70)
    for fd in fds:
        os.close(fd)
    _send(conn, {"pid": pid})
    return pid


def _become(argv: list[str], request: dict[str, Any], fds: list[int], main: Any) -> None:
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.setpgid(0, 0)  # its own group, as a cold start's child has with its runner
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in request.get("env", {}).items()})
    os.environ[CHILD_MARK] = "1"  # it runs here: it must not ask a warm server again
    if request.get("cwd"):
        os.chdir(request["cwd"])
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if request.get("memory_mb"):
        from app.core.executors.runner import limits_for

        limits_for(int(request["memory_mb"]))()  # type: ignore[misc]
    torch = sys.modules.get("torch")
    if request.get("cpus") and torch is not None:
        # Its thread pool was sized when the server imported it: size it to the job now.
        import math

        torch.set_num_threads(max(1, math.ceil(float(request["cpus"]))))
    if request.get("watch_pid"):
        _watch(int(request["watch_pid"]))
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    sys.argv = ["oppen", *argv]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child's own traceback, then its exit code
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _watch(pid: int) -> None:
    """Dies with the process that asked for it, as a cold start dies with its runner."""
    from app.core.executors.processes import alive, process_start_ticks

    start = process_start_ticks(pid)

    def loop() -> None:
        while alive(pid, start):
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=loop, daemon=True).start()


def _reap(conn: socket.socket, pid: int, active: dict[str, int],
          lock: threading.Lock) -> None:
    conn.settimeout(None)
    try:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        try:
            _send(conn, {"exit_code": code})
        except OSError:
            pass
    finally:
        conn.close()
        with lock:
            active["n"] -= 1


# --- the client ---------------------------------------------------------------------------

class WarmStart:
    """One warm start asked of a running server; None from ``start`` when none answers (the
    caller starts cold)."""

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self.conn, self.pid = conn, pid

    @classmethod
    def start(cls, path: Path, argv: list[str], env: dict[str, str], cpus: float | None = None,
              memory_mb: int | None = None, watch_pid: int | None = None,
              stdio: tuple[int, int, int] = (0, 1, 2),
              timeout_s: float = 5.0) -> WarmStart | None:
        if not _ours(path):
            return None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(timeout_s)
        try:
            conn.connect(str(path))
            request = {"argv": argv, "env": env, "cwd": os.getcwd(), "cpus": cpus,
                       "memory_mb": memory_mb, "watch_pid": watch_pid}
            data = (json.dumps(request) + "\n").encode()
            socket.send_fds(conn, [data[:65536]], list(stdio))
            if len(data) > 65536:
                conn.sendall(data[65536:])
            answer = json.loads(_read_line(conn))
        except (OSError, ValueError, ConnectionError):
            conn.close()
            return None
        if "pid" not in answer:
            conn.close()
            return None
        conn.settimeout(None)
        return cls(conn, int(answer["pid"]))

    def wait(self) -> int | None:
        """The child's exit code (negative: killed by that signal); None when the server
        went away before saying."""
        try:
            answer = json.loads(_read_line(self.conn))
            return int(answer["exit_code"])
        except (OSError, ValueError, KeyError, ConnectionError):
            return None
        finally:
            self.conn.close()


def run_here(path: Path, argv: list[str]) -> int | None:
    """Runs `oppen ARGV` in a child of the warm server at ``path`` with this process's
    terminal, forwarding Ctrl-C and SIGTERM to it; its exit code, or None when no server
    answers (the caller runs it itself)."""
    if os.environ.get(CHILD_MARK):
        return None
    warm = WarmStart.start(path, argv, dict(os.environ), watch_pid=os.getpid())
    if warm is None:
        return None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _f: os.kill(warm.pid, signum))
    code = warm.wait()
    if code is None:
        return 1
    return 128 - code if code < 0 else code


def _ours(path: Path) -> bool:
    """A socket this user made: a request carries the job's environment (its database URL,
    its token), so it never goes to a socket someone else put in a shared folder."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid()


def answering(path: Path) -> bool:
    """Whether a warm server listens at ``path``."""
    if not _ours(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def launch_server(path: Path, entry: str, preload: tuple[str, ...], env: dict[str, str],
                  python: str | None = None, idle_s: float = IDLE_S,
                  log: Path | None = None, warmup: str | None = None,
                  owner_pid: int | None = None) -> None:
    """Starts a server in the background (its own session), unless one answers already."""
    import subprocess

    if answering(path):
        return
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    subprocess.Popen([python or sys.executable, "-m", "app.core.executors.warm",
                      "--socket", str(path), "--entry", entry, "--idle-s", str(idle_s),
                      *(f"--preload={name}" for name in preload),
                      *([f"--warmup={warmup}"] if warmup else []),
                      *([f"--owner-pid={owner_pid}"] if owner_pid else [])],
                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                     env={**os.environ, **env}, start_new_session=True)


def stop_server(path: Path) -> bool:
    """Asks the server at ``path`` to leave (its children finish); True if one was there."""
    if not answering(path):
        path.unlink(missing_ok=True)
        return False
    path.unlink(missing_ok=True)  # a server whose socket is gone leaves within a second
    return True


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--entry", required=True, help="module:function to run per request")
    parser.add_argument("--preload", action="append", default=[])
    parser.add_argument("--warmup", help="module:function called once after the imports")
    parser.add_argument("--owner-pid", type=int, default=None,
                        help="leave once this process is gone and no child runs")
    parser.add_argument("--idle-s", type=float, default=IDLE_S)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.socket, args.entry, tuple(args.preload), args.warmup, args.idle_s,
          args.owner_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
