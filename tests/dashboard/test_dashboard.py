"""The dashboard over a seeded database: every section's content, the JSON schema, --watch,
and the render time with 10,000 jobs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from datetime import timedelta

import jsonschema
import pytest
from rich.console import Console
from sqlmodel import Session

from app.bench.dashboard import fill
from app.core.lease import Lease
from app.core.models import Job
from app.core.timeutil import utcnow
from app.dashboard.data import QUEUE_ROWS, gather
from app.dashboard.render import render, sparkline
from app.dashboard.schema import SCHEMA
from tests.support.processes import oppen_cmd


def seed(services, queued: int = 3, running: int = 2) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    services.queue.submit_batch([{"name": f"wait-{i}", "priority": ("urgent", "normal",
                                                                    "background")[i % 3]}
                                 for i in range(queued)])
    with Session(services.engine) as s:
        for i in range(running):
            s.add(Job(name=f"train-{i}", state="running", config={"total_timesteps": 10_000},
                      started_at=now - timedelta(minutes=5), progress_step=2_500,
                      progress_sps=100.0, progress_at=now, attempts=1,
                      reward_curve=[-5.0, -3.0, -2.0, -1.5], mlflow_run_id=f"run{i}",
                      estimated_duration_s=130.0, executor_ref="{}"))
        s.add(Job(name="stuck", state="running", config={"total_timesteps": 10_000},
                  started_at=now - timedelta(hours=2), progress_at=now - timedelta(hours=1),
                  progress_step=10, progress_sps=1.0, attempts=1, executor_ref="{}"))
        s.add(Job(name="good", state="succeeded", config={}, started_at=now - timedelta(
            minutes=10), finished_at=now - timedelta(minutes=1), cost_micros=123_456,
            eval_ratio=0.82))
        s.add(Job(name="broke", state="failed", config={}, started_at=now - timedelta(minutes=3),
                  finished_at=now, reason="configuration error (exit code 2)", cost_micros=10))
        s.commit()
    services.budgets.set("team", "0.0001")  # already past every threshold


def test_every_section_is_gathered_and_rendered(services) -> None:  # type: ignore[no-untyped-def]
    seed(services)
    data = gather(services)
    assert data.queue_by_class == {"urgent": 1, "normal": 1, "background": 1}
    assert [r.name for r in data.queued][:1] == ["wait-0"] and data.queued[0].pending_reason
    train = next(r for r in data.running if r.name == "train-0")
    assert train.progress == 0.25 and train.eta_s == pytest.approx(75.0)
    assert float(train.forecast_cost_usd) >= float(train.cost_so_far_usd) > 0
    good = next(r for r in data.recent if r.name == "good")
    assert good.eval_ratio == 0.82 and good.cost_usd == "0.123456"
    kinds = {(a.kind, a.level) for a in data.alerts}
    assert ("budget", "error") in kinds and ("failed", "warn") in kinds
    assert ("stalled", "warn") in kinds and ("dispatcher", "error") in kinds
    assert {h.component: h.status for h in data.health}["database"] == "ok"
    assert data.cluster.source == "local" and data.cluster.nodes[0].cpu_requested == 3.0

    console = Console(record=True, width=140, no_color=True, file=io.StringIO())
    render(data, console)
    text = console.export_text()
    for fragment in ("Cluster (local)", "Queue (urgent 1  normal 1  background 1)", "wait-0",
                     "Running", "train-0", " 25%", sparkline([-5.0, -3.0, -2.0, -1.5]),
                     "Recent", "0.82x wait", "Budgets", "ERROR dispatcher",
                     "WARN  stalled: job", "database ok", "N/A"):
        assert fragment in text, fragment


def test_json_matches_the_documented_schema(services) -> None:  # type: ignore[no-untyped-def]
    seed(services)
    doc = json.loads(json.dumps(gather(services).to_dict(), default=str))
    jsonschema.validate(doc, SCHEMA)
    Lease(services.engine, "someone", 30).acquire()
    assert "dispatcher" not in {a["kind"] for a in gather(services).to_dict()["alerts"]}


def test_no_color_and_watch_exit_cleanly(oppen_home) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "NO_COLOR": "1"}
    one = subprocess.run(oppen_cmd("dashboard"), capture_output=True, text=True, env=env,
                         timeout=120)
    assert one.returncode == 0 and "\x1b[" not in one.stdout and "Cluster" in one.stdout
    proc = subprocess.Popen(oppen_cmd("dashboard", "--watch", "-n", "0.3"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out.count("Health") >= 1


def test_bench_dashboard_renders_a_full_queue_and_reports_its_ratio(oppen_home) -> None:  # type: ignore[no-untyped-def]
    """The dashboard at 10,000 jobs is a benchmark figure (docs/benchmarks.md); here its
    document's shape and that both sides were measured."""
    proc = subprocess.run(oppen_cmd("bench", "dashboard", "--jobs", "2000", "--running", "50",
                                    "--repeats", "3", "--json"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["benchmark"] == "dashboard" and out["jobs"] == 2000 and out["running"] == 50
    assert len(out["samples_ms"]) == len(out["baseline_samples_ms"]) == 3
    assert out["gather_render_ms"] == sorted(out["samples_ms"])[1]
    assert out["scale_ratio"] > 0 and out["baseline_gather_render_ms"] > 0


def test_render_with_10000_jobs_and_100_running_shows_them(services) -> None:  # type: ignore[no-untyped-def]
    fill(services, 9_900, 100)
    data = gather(services)
    assert len(data.running) == 100 and len(data.queued) == QUEUE_ROWS
    console = Console(width=160, file=io.StringIO(), record=True)
    render(data, console)
    text = console.export_text()
    assert "q0" in text and "r99" in text


def test_oppen_ui_serves_mlflow_on_the_tracking_store(oppen_home) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    from tests.support.processes import free_port

    port = free_port()
    proc = subprocess.Popen(oppen_cmd("ui", "--port", str(port)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # A liveness bound, not a timing goal: on a loaded 2-core CI VM MLflow's start has
        # taken over 90 s.
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the MLflow UI did not come up"
                time.sleep(0.5)
        # SIGTERM to `oppen ui` alone stops the MLflow server it started, workers included.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
