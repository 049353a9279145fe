"""The command line as people use it: real processes, real exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import oppen_cmd

VERBS = ("ask", "chat", "config", "dashboard", "demo", "dispatcher", "queue", "train")


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(oppen_cmd(*args), capture_output=True, text=True, input=stdin,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=180)


def assert_clean_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert fragment in proc.stderr, proc.stderr


def test_help_lists_the_verbs(oppen_home: Path) -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for verb in VERBS:
        assert f"  {verb}" in proc.stdout


@pytest.mark.parametrize("args, fragment", [
    (("queue", "submit", "x", "--set", "gamma=7"), "gamma: must be <= 1"),
    (("queue", "submit", "x", "--set", "nonsense"), "--set expects KEY=VALUE"),
    (("queue", "submit", "x", "--config", "/nonexistent.toml"), "config file not found"),
    (("queue", "submit", "x", "--priority", "vip"),
     "priority: Input should be 'urgent', 'normal' or 'background'"),
    (("queue", "show", "42"), "no job with id 42"),
    (("queue", "show", "abc"), "is not a valid integer"),
    (("queue", "cancel", "7"), "no job with id 7"),
    (("train", "--job-id", "5"), "no job with id 5"),
    (("ask", "  "), "ask needs some text"),
    (("frobnicate",), "No such command"),
])
def test_bad_input_gives_one_clear_line(oppen_home: Path, args: tuple[str, ...],
                                        fragment: str) -> None:
    assert_clean_error(run(*args), fragment)


def test_the_command_line_loads_without_torch_or_the_database() -> None:
    """Training commands set OpenMP's wait policy before torch loads; a module-level torch
    import anywhere under the CLI would silently undo that (and slow every command's start).
    SQLAlchemy, SQLModel, pydantic-settings and Alembic are a second and more of CPU: they
    load with the commands that use them, so `oppen --help` and every command's own --help
    stay quick."""
    heavy = ("torch", "sqlalchemy", "sqlmodel", "pydantic_settings", "alembic", "mlflow")
    probe = ("import sys, app.cli; "
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_training_commands_put_idle_openmp_threads_to_sleep(preset: str | None,
                                                            expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    probe = ("import os; from app.cli.common import sleep_idle_openmp_threads; "
             "sleep_idle_openmp_threads(); import torch; print(os.environ['OMP_WAIT_POLICY'])")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def test_bad_settings_are_reported(oppen_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPPEN_MAX_CONCURRENT_JOBS", "zero")
    assert_clean_error(run("queue", "list"), "invalid setting max_concurrent_jobs")
    monkeypatch.setenv("OPPEN_MAX_CONCURRENT_JOBS", "2")
    monkeypatch.setenv("OPPEN_DATABASE_URL", "nosuchdb://x")
    assert_clean_error(run("queue", "list"), "cannot use database URL")


def test_a_reader_that_leaves_early_ends_the_command_quietly(oppen_home: Path) -> None:
    """`oppen config show | head -1`: the pipe closes under the command, which stops with the
    shell's SIGPIPE status and no error line."""
    proc = subprocess.Popen(oppen_cmd("config", "show"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # no reader: the first write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_submit_list_show_json_round_trip(oppen_home: Path) -> None:
    sub = run("queue", "submit", "cli-job", "--priority", "urgent", "--set",
              "total_timesteps=1024", "--json")
    assert sub.returncode == 0, sub.stderr
    job = json.loads(sub.stdout)["job"]
    assert job["state"] == "queued" and job["config"]["total_timesteps"] == 1024
    listed = json.loads(run("queue", "list", "--json").stdout)
    assert listed["schema_version"] == 1 and [j["id"] for j in listed["jobs"]] == [job["id"]]
    shown = run("queue", "show", str(job["id"]))
    assert "cli-job" in shown.stdout and "-> queued" in shown.stdout
    dash = json.loads(run("dashboard", "--json").stdout)
    assert dash["schema_version"] == 2 and dash["counts"]["queued"] == 1
    assert dash["queued"][0]["name"] == "cli-job"
    assert "cli-job" in run("dashboard").stdout


def test_ask_without_yes_refuses_to_spend(oppen_home: Path) -> None:
    proc = run("ask", "queue a training job", "--json")
    assert proc.returncode == 1, proc.stderr  # refused: said, listed, and a failing exit
    out = json.loads(proc.stdout)
    assert out["refused"] == ["queue_training_job"]
    assert "--yes" in proc.stderr
    assert json.loads(run("queue", "list", "--json").stdout)["jobs"] == []
    yes = json.loads(run("ask", "queue a background training job", "--yes", "--json").stdout)
    assert yes["refused"] == [] and "Queued job 1" in yes["answer"]


def test_chat_repl_answers_and_exits(oppen_home: Path) -> None:
    proc = run("chat", stdin="what is the queue status?\nexit\n")
    assert proc.returncode == 0, proc.stderr
    assert "0 queued, 0 running" in proc.stdout


def test_config_show_reports_sources(oppen_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    oppen_home.mkdir(parents=True)
    (oppen_home / "config.toml").write_text("max_concurrent_jobs = 5\nllm = 'offline'\n")
    monkeypatch.setenv("OPPEN_LLM", "openai:local-model")
    out = json.loads(run("config", "show", "--json").stdout)["settings"]
    assert out["max_concurrent_jobs"] == {"value": 5, "source": f"file {oppen_home}/config.toml"}
    assert out["llm"] == {"value": "openai:local-model", "source": "env"}
    assert out["lease_ttl_s"]["source"] == "default"
    # Unset locations show what is really used, not None.
    assert out["database_url"] == {"value": f"sqlite:///{oppen_home}/oppen.db",
                                   "source": "default (derived)"}
    assert out["mlflow_tracking_uri"]["value"] == f"sqlite:///{oppen_home}/mlflow.db"
    assert out["checkpoint_uri"]["value"] == f"{oppen_home}/checkpoints"
    (oppen_home / "config.toml").write_text("max_concurent_jobs = 5\n")
    assert_clean_error(run("config", "show"), "unknown setting(s) max_concurent_jobs")


def test_a_waiting_job_says_when_no_dispatcher_runs(oppen_home: Path) -> None:
    """Its waiting reason assumes a dispatcher ticks: `queue show` and `queue list` say when
    none does, and say nothing of it for a finished job."""
    assert run("queue", "submit", "waits").returncode == 0
    for args in (("queue", "show", "1"), ("queue", "list")):
        proc = run(*args)
        assert proc.returncode == 0, proc.stderr
        assert "no dispatcher is running, so nothing starts" in proc.stderr
    assert run("queue", "cancel", "1").returncode == 0
    assert "no dispatcher" not in run("queue", "show", "1").stderr


def test_config_show_masks_secrets(oppen_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPPEN_TOKEN", "oppen_s3cret-token")
    monkeypatch.setenv("OPPEN_DATABASE_URL", "postgresql+psycopg://oppen:hunter2@db:5432/x")
    monkeypatch.setenv("OPPEN_MLFLOW_TRACKING_URI", "http://mlflow:5000")
    shown = run("config", "show")
    out = json.loads(run("config", "show", "--json").stdout)["settings"]
    for text in (shown.stdout, json.dumps(out)):
        assert "s3cret" not in text and "hunter2" not in text
    assert out["token"]["value"] == "***"
    assert out["database_url"]["value"] == "postgresql+psycopg://oppen:***@db:5432/x"
    assert out["mlflow_tracking_uri"]["value"] == "http://mlflow:5000"  # no password: as is


def test_train_in_the_foreground(oppen_home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "train.toml"
    cfg.write_text("total_timesteps = 256\nnum_envs = 2\nrollout_steps = 64\n"
                   "episode_length = 16\neval_seeds = [42]\n")
    proc = run("train", "--config", str(cfg), "--set", "seed=3", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["global_step"] == 256
    assert set(out["evaluation"]) == {"ppo", "first_fit", "best_fit", "best_fit_mem"}
    assert out["evaluation"]["ppo"]["jobs"] == 16


def test_dispatcher_stops_gracefully_on_sigterm(oppen_home: Path) -> None:
    import signal
    import time

    from app.core.lease import Lease
    from app.core.settings import load_settings
    from app.services import Services

    proc = subprocess.Popen(oppen_cmd("dispatcher", "run", "--interval", "0.2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        watcher = Lease(Services(load_settings()).engine, "test-watcher", ttl_s=1)
        lease = None
        deadline = time.monotonic() + 180
        while lease is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            lease = watcher.current()
        assert lease is not None, "the dispatcher never took the lease"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert watcher.current() is None  # released on the way out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_batch_priority_render_and_pending_reasons_from_the_command_line(
        oppen_home: Path, tmp_path: Path) -> None:
    import yaml

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "fine"}, {"name": "x", "gpus": -1},
                               {"name": "y", "config": {"gamma": 9}}]))
    proc = run("queue", "submit-batch", str(bad))
    assert_clean_error(proc, "batch rejected, nothing queued (2 invalid of 3)")
    assert "item 1 (x)" in proc.stderr and "item 2 (y)" in proc.stderr and proc.returncode == 2
    assert json.loads(run("queue", "list", "--json").stdout)["jobs"] == []

    good = tmp_path / "jobs.toml"
    good.write_text('[[jobs]]\nname = "a"\npriority = "background"\ngpus = 1\n\n'
                    '[[jobs]]\nname = "b"\nconfig = { total_timesteps = 8192 }\n')
    out = json.loads(run("queue", "submit-batch", str(good), "--json").stdout)
    assert out["errors"] == [] and len(out["queued"]) == 2
    a, b = out["queued"]
    assert run("queue", "priority", str(a), "urgent").returncode == 0
    jobs = json.loads(run("queue", "list", "--state", "queued", "--json").stdout)["jobs"]
    assert [j["id"] for j in jobs] == [a, b]
    assert all(j["pending_reason"] == "next-tick" and j["eta_start"] for j in jobs)
    shown = run("queue", "show", str(a)).stdout
    assert "waiting: next-tick" in shown and "priority background -> urgent" in shown

    manifest = yaml.safe_load(run("queue", "render", str(a)).stdout)
    assert manifest["kind"] == "Job"
    assert manifest["spec"]["template"]["spec"]["priorityClassName"] == "oppen-urgent"
    assert manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"] == "1"
    assert_clean_error(run("queue", "logs", str(a)), "has no attempt with logs yet")
    assert_clean_error(run("queue", "priority", "999", "urgent"), "no job with id 999")


def test_bench_queue_reports_figures_against_targets(oppen_home: Path) -> None:
    proc = run("bench", "queue", "--repeats", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["benchmark"] == "queue" and doc["jobs"] == 10_000
    figures = doc["median_ms"]
    for key in ("submit_batch_10k", "tick_10k_queued", "list_10k", "status_10k"):
        assert figures[key] > 0
    print(f"\n[bench-queue] {figures} batch x{doc['baseline']['batch_speedup']}")
    assert doc["baseline"]["batch_speedup"] > 1


def test_cost_and_budget_commands(oppen_home: Path, tmp_path: Path) -> None:
    est = json.loads(run("cost", "estimate", "--gpus", "1", "--cpus", "0", "--memory-gb", "0",
                         "--hours", "2", "--start", "2026-11-24T17:30", "--json").stdout)
    assert est["estimate"]["cost_usd"] == "1.1875"
    assert run("budget", "set", "ml", "--limit", "0.01", "--scope", "team", "--team", "ml"
               ).returncode == 0
    refused = run("queue", "submit", "huge", "--team", "ml", "--gpus", "1", "--set",
                  "total_timesteps=50000000")
    assert_clean_error(refused, "budget 'ml' (team ml, monthly)")
    assert refused.returncode == 2 and "What would fit" in refused.stderr
    ok = run("queue", "submit", "small", "--team", "ml", "--set", "total_timesteps=1000")
    assert ok.returncode == 0, ok.stderr
    shown = json.loads(run("budget", "show", "--json").stdout)["budgets"][0]
    assert shown["name"] == "ml" and float(shown["committed_usd"]) > 0
    forecast = json.loads(run("cost", "forecast", "1", "--json").stdout)["forecast"]
    low, high = forecast["final_cost_interval_usd"]
    assert float(low) <= float(forecast["final_cost_usd"]) <= float(high)
    advice = json.loads(run("cost", "recommend", "1", "--json").stdout)["recommendations"]
    assert {"spot", "priority"} <= {a["kind"] for a in advice}
    chart = tmp_path / "spend.png"
    report = json.loads(run("cost", "report", "--chart", str(chart), "--json").stdout)
    assert report["report"]["period"] == "week" and chart.read_bytes()[:4] == b"\x89PNG"
    configs = tmp_path / "configs.json"
    configs.write_text(json.dumps([{"total_timesteps": 1000}, {"total_timesteps": 4000}]))
    rows = json.loads(run("cost", "compare", str(configs), "--json").stdout)["comparison"]
    assert float(rows[0]["final_cost_usd"]) < float(rows[1]["final_cost_usd"])
    assert_clean_error(run("budget", "set", "x", "--limit", "-5"), "at least $0")
    assert_clean_error(run("budget", "set", "x", "--limit", "5", "--period", "custom",
                           "--start", "2026-12-01", "--end", "2026-11-01"), "before it starts")
    assert_clean_error(run("cost", "estimate", "--gpus", "1"), "--hours or --timesteps")
    assert_clean_error(run("cost", "report", "--by", "colour"), "Invalid value for '--by'")
