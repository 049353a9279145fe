"""simrs against published numbers: RLScheduler's (SC'20) heuristic table on lublin_256,
reproduced through `oppen sim replay --protocol rlscheduler`, plus the textbook replay."""

from __future__ import annotations

import json
import subprocess

import pytest

from app.core.errors import ConfigError, NotFoundError
from app.training.replay import replay
from tests.support.paths import TRACES
from tests.support.processes import oppen_cmd

LUBLIN = TRACES / "lublin_256.swf"
needs_traces = pytest.mark.skipif(not LUBLIN.is_file(),
                                  reason=f"shared traces not found at {TRACES}")

# (policy, backfill) -> published value; tolerance 0.01 for slowdown, 0.001 for utilisation.
BSLD = {
    ("fcfs", "none"): 7273.77, ("wfp3", "none"): 19753.53, ("unicep", "none"): 22274.74,
    ("sjf", "none"): 277.35, ("f1", "none"): 258.37,
    ("fcfs", "shadow"): 235.82, ("wfp3", "shadow"): 133.87, ("unicep", "shadow"): 307.23,
    ("sjf", "shadow"): 73.31, ("f1", "shadow"): 75.07,
}
UTIL = {
    ("fcfs", "none"): 0.657, ("wfp3", "none"): 0.747, ("unicep", "none"): 0.691,
    ("sjf", "none"): 0.762, ("f1", "none"): 0.816,
    ("fcfs", "shadow"): 0.868, ("wfp3", "shadow"): 0.864, ("unicep", "shadow"): 0.883,
    ("sjf", "shadow"): 0.778, ("f1", "shadow"): 0.840,
}


@needs_traces
@pytest.mark.parametrize("policy, backfill", sorted(BSLD))
def test_rlscheduler_table_is_reproduced(policy: str, backfill: str) -> None:
    bsld = replay(LUBLIN, policy, backfill, protocol="rlscheduler", metric="bsld")
    util = replay(LUBLIN, policy, backfill, protocol="rlscheduler", metric="util")
    assert len(bsld.windows) == 10 and bsld.windows[0]["start"] == 1981
    assert bsld.mean == pytest.approx(BSLD[(policy, backfill)], abs=0.01)
    # The published utilisations carry three decimals: equal after rounding.
    assert round(util.mean, 3) == pytest.approx(UTIL[(policy, backfill)], abs=1e-9)


@needs_traces
def test_cli_prints_windows_and_mean_as_json() -> None:
    proc = subprocess.run(oppen_cmd("sim", "replay", "--trace", str(LUBLIN), "--policy", "sjf",
                                    "--backfill", "shadow", "--protocol", "rlscheduler",
                                    "--metric", "bsld", "--json"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["schema_version"] == 1
    assert [w["start"] for w in out["windows"]][:3] == [1981, 2756, 4299]
    assert out["mean"] == pytest.approx(73.31, abs=0.01)
    assert out["mean"] == pytest.approx(sum(w["value"] for w in out["windows"]) / 10)


@needs_traces
def test_textbook_easy_beats_no_backfilling() -> None:
    none = replay(LUBLIN, "fcfs", "none")
    easy = replay(LUBLIN, "fcfs", "easy")
    shadow = replay(LUBLIN, "fcfs", "shadow")
    assert none.details["jobs"] == easy.details["jobs"] == 10_000
    assert easy.details["completion_rate"] == 1.0
    # Backfilling of either kind cuts slowdown by two orders of magnitude here; EASY, the
    # more aggressive, packs the machine tightest (its mean slowdown need not be lowest).
    assert max(easy.mean, shadow.mean) < none.mean / 100
    assert easy.details["utilization"] > shadow.details["utilization"] > \
        none.details["utilization"]
    # The replay reports its own time (a benchmark figure: `oppen bench sim`).
    assert easy.details["elapsed_s"] > 0


def test_bad_replay_input_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError, match="trace not found"):
        replay(tmp_path / "nope.swf", "fcfs")
    bad = tmp_path / "bad.swf"
    bad.write_text("1 2 3\n")
    with pytest.raises(ConfigError, match=r"bad\.swf:1: expected 18 fields"):
        replay(bad, "fcfs")
    with pytest.raises(ConfigError, match="not easy"):
        replay(bad, "fcfs", "easy", protocol="rlscheduler")
    with pytest.raises(ConfigError, match="unknown policy"):
        replay(bad, "lottery")


def test_a_generated_hierarchical_workload_replays_per_seed_from_the_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "hier.toml"
    config.write_text('mode = "hierarchical"\nnum_hosts = 6\nepisode_length = 400\n'
                      'max_jobs_per_step = 40\nmean_interarrival_s = 4.0\n'
                      'eval_seeds = [7]\n')

    def run(*args: str) -> dict:  # type: ignore[type-arg]
        proc = subprocess.run(oppen_cmd("sim", "replay", "--workload", str(config), *args,
                                        "--json"), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    sjf = run("--policy", "sjf", "--placement", "best_fit", "--seeds", "1-3")
    assert sjf["policy"] == "sjf+best_fit" and sjf["protocol"] == "hierarchical"
    assert [w["seed"] for w in sjf["windows"]] == [1, 2, 3]
    assert all(w["length"] == 400 for w in sjf["windows"])
    assert sjf["mean"] == pytest.approx(sum(w["value"] for w in sjf["windows"]) / 3)
    assert len({w["value"] for w in sjf["windows"]}) == 3  # three different episodes
    fcfs = run("--policy", "fcfs", "--placement", "best_fit", "--seeds", "1-3")
    # On a congested queue, shortest-first waits less than arrival order.
    assert sjf["details"]["mean_wait_s"] < fcfs["details"]["mean_wait_s"]
    assert [w["seed"] for w in run("--policy", "f1")["windows"]] == [7]  # the config's seeds
    bound = run("--policy", "clairvoyant", "--placement", "best_fit", "--seeds", "1-3")
    assert bound["policy"] == "clairvoyant+best_fit"
    assert bound["details"]["mean_wait_s"] != sjf["details"]["mean_wait_s"]  # its own order


@pytest.mark.parametrize(("args", "message"), [
    (["--policy", "sjf"], "give --trace FILE or --workload CONFIG"),
    (["--workload", "missing.toml", "--policy", "sjf"], "workload config not found"),
    (["--workload", "WORKLOAD", "--policy", "smallest"], "unknown pair 'smallest+first_fit'"),
    (["--workload", "WORKLOAD", "--policy", "sjf", "--seeds", "x"], "--seeds expects"),
    (["--trace", "LUBLIN", "--policy", "sjf", "--seeds", "1"], "--seeds applies to --workload"),
])
def test_bad_workload_replays_are_one_line(tmp_path, args, message) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "hier.toml"
    config.write_text('mode = "hierarchical"\nnum_hosts = 4\nepisode_length = 20\n')
    args = [str(config) if a == "WORKLOAD" else str(LUBLIN) if a == "LUBLIN" else a
            for a in args]
    proc = subprocess.run(oppen_cmd("sim", "replay", *args), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode in (1, 2) and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_clairvoyant_runs_the_shortest_actual_job_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Whole-machine jobs asking for the same hour: while the first runs, the other two
    queue; SJF cannot tell them apart and keeps arrival order, the clairvoyant bound runs
    the one that actually ends sooner first."""
    trace = tmp_path / "same-request.swf"
    rows = [(1, 0, 900), (2, 1, 500), (3, 2, 100)]  # id, submit, actual run (s)
    trace.write_text("; MaxProcs: 4\n" + "".join(
        f"{i} {s} -1 {run} 4 -1 -1 4 3600 -1 1 1 1 1 1 1 -1 -1\n" for i, s, run in rows))
    sjf = replay(trace, "sjf").details
    clairvoyant = replay(trace, "clairvoyant").details
    assert sjf["mean_wait_s"] == pytest.approx((0 + 899 + 1398) / 3)
    assert clairvoyant["mean_wait_s"] == pytest.approx((0 + 999 + 898) / 3)
    proc = subprocess.run(oppen_cmd("sim", "replay", "--trace", str(trace), "--policy",
                                    "clairvoyant", "--json"), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["details"]["mean_wait_s"] == clairvoyant["mean_wait_s"]
