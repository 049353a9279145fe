"""The lean training image: `oppen train --job-id N` runs with the server's stack absent.

Docker cannot run here, so the image's promise is checked where it matters: a job trains to
completion, checkpoints in its store and its MLflow run, in a process that cannot import
anything the training image leaves out (MLflow's server stack with pandas, pyarrow and scipy;
the API server; the agent). docs/operations.md records a run in a virtual environment built
from docker/requirements-train.txt alone.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.services import Services
from tests.support.paths import REPO

pytestmark = pytest.mark.slow

# Top-level modules the training image does not install: what a virtual environment built
# from docker/requirements-train.txt lacked beside the full one (2026-12-06).
SERVER_ONLY = ("pandas", "pyarrow", "scipy", "sklearn", "flask", "werkzeug", "gunicorn",
               "graphene", "httpx", "aiohttp", "langchain", "langchain_core", "langgraph",
               "openai", "prompt_toolkit", "apscheduler", "kubernetes")
# ... and their distributions, with the full MLflow package (the image has mlflow-skinny,
# and MLflow decides what to import by which of the two is installed).
HIDDEN_DISTRIBUTIONS = ("mlflow", "mlflow-tracing", "pandas", "pyarrow", "scipy",
                        "scikit-learn", "flask", "werkzeug", "gunicorn", "graphene", "httpx",
                        "aiohttp", "langchain", "langchain-core", "langgraph", "openai",
                        "prompt-toolkit", "apscheduler", "kubernetes")

# Every import finder wrapped so that these modules are not there at all, as in the image
# (find_spec answers None: "not installed", which is how MLflow decides what to load).
WITHOUT_THE_SERVER_STACK = f"""
import importlib.abc, runpy, sys

class NotInTheTrainingImage(importlib.abc.MetaPathFinder):
    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {SERVER_ONLY!r}:
            return None
        return self.inner.find_spec(name, path, target)

    def invalidate_caches(self):
        getattr(self.inner, "invalidate_caches", lambda: None)()

    def find_distributions(self, context=None):
        # The image has mlflow-skinny, not mlflow: MLflow reads which one from this metadata.
        found = getattr(self.inner, "find_distributions", lambda *a: ())
        for dist in found(context) if context is not None else found():
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            if name not in {HIDDEN_DISTRIBUTIONS!r}:
                yield dist

sys.meta_path[:] = [NotInTheTrainingImage(f) for f in sys.meta_path]
sys.argv = ["oppen", "train", "--job-id", sys.argv[1]]
try:
    runpy.run_module("app", run_name="__main__")
finally:
    leaked = sorted({{m.split(".")[0] for m in sys.modules}} & set({SERVER_ONLY!r}))
    print("server modules loaded:", leaked, file=sys.stderr)
"""


def test_training_runs_without_the_server_stack(services: Services) -> None:
    job = services.queue.submit("lean", {"total_timesteps": 256, "num_envs": 1,
                                         "rollout_steps": 128, "num_hosts": 4,
                                         "eval_seeds": [42]})
    done = subprocess.run([sys.executable, "-c", WITHOUT_THE_SERVER_STACK, str(job.id)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "server modules loaded: []" in done.stderr
    run_id = services.queue.get(job.id).mlflow_run_id
    run = services.tracker.run_summary(run_id)
    assert run.status == "FINISHED" and run.metrics["charts/global_step"] == 256
    assert "checkpoints" in services.tracker.artifacts(run_id)
    store = services.settings.resolved_home / "checkpoints" / f"job-{job.id}" / "index.json"
    assert store.is_file()


def test_a_sweeps_trial_runs_without_the_server_stack(services: Services) -> None:
    """A trial reports to its study from the lean image too: Optuna needs none of the
    server's packages."""
    sweep = services.sweeps.create({
        "name": "lean", "n_trials": 1, "parallelism": 1, "seed": 1,
        "space": {"lr": {"type": "log", "low": 1e-4, "high": 1e-3}},
        "base_config": {"total_timesteps": 512, "num_envs": 1, "rollout_steps": 128,
                        "num_hosts": 4, "eval_seeds": [42], "eval_every": 2}})
    services.sweeps.step()
    [job] = services.sweeps.jobs(sweep.id).values()  # type: ignore[arg-type]
    done = subprocess.run([sys.executable, "-c", WITHOUT_THE_SERVER_STACK, str(job.id)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "server modules loaded: []" in done.stderr
    study = services.sweeps.study(sweep)
    [trial] = study.get_trials()
    assert sorted(trial.intermediate_values) == [256, 512]
    assert trial.user_attrs["oppen_objective"] > 0


def test_the_requirements_name_no_server_package() -> None:
    wanted = [line.split(">")[0].split("=")[0].split("[")[0].strip().lower()
              for line in (REPO / "docker" / "requirements-train.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert "mlflow" not in wanted and "mlflow-skinny" in wanted
    assert not set(wanted) & {"pandas", "pyarrow", "scipy", "fastapi", "uvicorn", "langchain",
                              "httpx", "kubernetes", "apscheduler"}
