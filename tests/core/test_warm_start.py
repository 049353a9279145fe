"""The warm-start server (app.core.executors.warm): `oppen train` forked from it behaves as a
cold start does, a child dies with the runner that asked for it, the server leaves with the
dispatcher that started it, and a hostile client cannot stop it. Job attempts started warm
are checked for exact resumption in tests/core/test_resume.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.executors import warm
from app.core.executors.processes import alive
from app.core.settings import load_settings
from tests.support.paths import REPO

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPEN_")}
    env.update(OPPEN_HOME=str(home), MLFLOW_LOGGING_LEVEL="WARNING")
    return env


def _oppen(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)


def _wait(what: str, ok, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_train_forked_from_the_server_runs_as_a_cold_start_does(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    started = _oppen(env, "warm", "start")
    assert started.returncode == 0, started.stderr
    socket_path = load_settings(home=tmp_path / "home").warm_socket
    try:
        assert _oppen(env, "warm", "status").stdout.startswith("running at")
        args = ("train", "--set", "total_timesteps=1024", "--set", "eval_seeds=[42]", "--json")
        warm_run, cold_run = _oppen(env, *args), _oppen(env, *args, "--cold")
        assert warm_run.returncode == 0 and cold_run.returncode == 0, warm_run.stderr
        a, b = json.loads(warm_run.stdout), json.loads(cold_run.stdout)
        assert (a["start"], b["start"]) == ("warm", "cold")
        # The same seed trains the same policy either way: the same evaluation.
        assert a["evaluation"] == b["evaluation"] and a["global_step"] == 1024
        # A person's mistake is the same one line and exit code through the server.
        bad, bad_cold = _oppen(env, "train", "--set", "lr=-1"), \
            _oppen(env, "train", "--set", "lr=-1", "--cold")
        assert (bad.returncode, bad.stderr) == (bad_cold.returncode, bad_cold.stderr)
        assert bad.returncode == 2 and bad.stderr.startswith("error: training option lr")
    finally:
        assert _oppen(env, "warm", "stop").stdout.strip() == "stopped"
    assert not warm.answering(socket_path)


def test_homes_naming_one_socket_share_its_server_and_keep_their_own_stores(
        tmp_path: Path) -> None:
    """OPPEN_WARM_SOCKET_PATH: one server for two homes; each forked run is recorded in the
    home whose runner asked for it, never in the server's or the other's."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    shared = tmp_path / "shared.sock"
    homes = [tmp_path / "a", tmp_path / "b"]
    envs = [{**_env(home), "OPPEN_WARM_SOCKET_PATH": str(shared)} for home in homes]
    assert _oppen(envs[0], "warm", "start").returncode == 0
    try:
        assert _oppen(envs[1], "warm", "status").stdout.startswith(f"running at {shared}")
        args = ("train", "--set", "total_timesteps=256", "--set", "eval_seeds=[42]", "--json")
        runs = [_oppen(env, *args) for env in envs]
        assert all(run.returncode == 0 for run in runs), runs[0].stderr + runs[1].stderr
        outputs = [json.loads(run.stdout) for run in runs]
        assert [out["start"] for out in outputs] == ["warm", "warm"]
        for mine, out in enumerate(outputs):
            for index, home in enumerate(homes):
                client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
                if index == mine:
                    assert client.get_run(out["run_id"]).info.status == "FINISHED"
                else:
                    with pytest.raises(MlflowException):
                        client.get_run(out["run_id"])
    finally:
        assert _oppen(envs[1], "warm", "stop").stdout.strip() == "stopped"
    assert not warm.answering(shared)


def test_a_child_dies_with_its_runner_and_the_server_with_its_owner(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = tmp_path / "w.sock"
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        warm.launch_server(path, "app.cli:main", ("torch",), _env(home), owner_pid=owner.pid)
        _wait("the server did not answer", lambda: warm.answering(path), 120)
        # A hostile client: garbage, then silence. The server answers the next one.
        for payload in (b"\x00garbage\n", b""):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.connect(str(path))
                c.sendall(payload)
        child = warm.WarmStart.start(path, ["train", "--set", "total_timesteps=10000000"],
                                     {**_env(home)}, watch_pid=runner.pid,
                                     stdio=(0, 2, 2))
        assert child is not None and alive(child.pid)
        runner.kill()
        runner.wait()
        _wait("the child outlived its runner", lambda: not alive(child.pid), 30)
        assert child.wait() == -9
        owner.kill()
        owner.wait()
        _wait("the server outlived its owner", lambda: not path.exists(), 30)
    finally:
        for p in (owner, runner):
            if p.poll() is None:
                p.kill()
        warm.stop_server(path)


def _server(path: Path, owner: int | None = None) -> subprocess.Popen[bytes]:
    """A warm server whose children run tests/support/warm_entry.py (no PyTorch)."""
    return subprocess.Popen([sys.executable, "-m", "app.core.executors.warm", "--socket",
                             str(path), "--entry", "tests.support.warm_entry:main",
                             *([f"--owner-pid={owner}"] if owner else [])],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_stopped_server_still_hands_its_running_children_their_exit_codes(
        tmp_path: Path) -> None:
    """`oppen warm stop`, or a newer server taking the socket, while a job runs: the job's
    runner still gets its exit code, and the server leaves after it."""
    path = tmp_path / "w.sock"
    server = _server(path)
    try:
        _wait("the server did not answer", lambda: warm.answering(path), 60)
        child = warm.WarmStart.start(path, ["2", "3"], dict(os.environ), stdio=(0, 2, 2))
        assert child is not None
        assert warm.stop_server(path)
        time.sleep(1.5)  # past the server's one-second check of its socket
        assert server.poll() is None, "the server left with a child running"
        assert child.wait() == 3
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()


def test_a_second_server_leaves_the_socket_to_the_one_serving(tmp_path: Path) -> None:
    """Two starts racing (a dispatcher asks again while the first server still imports):
    the later one finds the first answering and leaves; the first keeps its socket."""
    path = tmp_path / "w.sock"
    first = _server(path)
    try:
        _wait("the server did not answer", lambda: warm.answering(path), 60)
        inode = os.stat(path).st_ino
        second = _server(path)
        assert second.wait(timeout=60) == 0
        assert os.stat(path).st_ino == inode and first.poll() is None
        child = warm.WarmStart.start(path, ["0", "5"], dict(os.environ), stdio=(0, 2, 2))
        assert child is not None and child.wait() == 5
    finally:
        warm.stop_server(path)
        first.wait(timeout=10)
