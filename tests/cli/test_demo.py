"""`oppen demo` end to end, as `make run` runs it: the agent queues three jobs, the dispatcher
runs them as real processes, MLflow records them, the dashboard shows them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.core.settings import load_settings
from app.services import Services
from tests.cli.test_cli import run


def test_demo_runs_three_jobs_of_different_priorities(oppen_home: Path) -> None:
    proc = run("demo")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "demo finished" in proc.stdout
    # It ends with what the shipped policy gains over the heuristics, measured then.
    assert "What a trained scheduler buys" in proc.stdout
    assert re.search(r"PPO waits \d+\.\d% less than first-fit and \d+\.\d% less than "
                     r"best-fit", proc.stdout), proc.stdout[-1500:]
    dash = json.loads(run("dashboard", "--json").stdout)
    finished = dash["recent"]
    assert len(finished) == 3 and {j["state"] for j in finished} == {"succeeded"}
    assert {j["priority_class"] for j in finished} == {"urgent", "normal", "background"}
    services = Services(load_settings())
    for job in finished:
        run_summary = services.tracker.run_summary(job["mlflow_run_id"])
        assert run_summary.status == "FINISHED"
        assert run_summary.metrics["charts/global_step"] == 2048
        assert "eval/ppo/mean_wait_s" in run_summary.metrics
