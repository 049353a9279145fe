"""The API server under load on loopback, as `oppen bench api` drives it: a server process and
a client submitting at a steady rate while dashboard readers poll. Rates and latencies are
benchmark figures (docs/api.md, docs/benchmarks.md), never judged here: on a shared VM a timed
assertion is a flaky test. What must hold at any speed is judged: every submission answered
without error, none lost or stored twice, every dashboard read served, and the benchmark's
document complete."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.processes import oppen_cmd


@pytest.mark.slow
def test_sustained_submissions_and_concurrent_dashboard_readers(oppen_home) -> None:  # type: ignore[no-untyped-def]
    rate, seconds = 40, 5
    done = subprocess.run(oppen_cmd("bench", "api", "--rate", str(rate), "--seconds",
                                    str(seconds), "--readers", "10", "--reads-each", "3",
                                    "--json"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    print("\n[api load] " + json.dumps({"submit": r["submit"], "dashboard": r["dashboard"]}))
    submit, read = r["submit"], r["dashboard"]
    assert submit["error_count"] == 0, submit["errors"]
    assert submit["accepted"] == submit["requests"] == rate * seconds
    assert submit["lost"] == 0 and submit["distinct_ids"] == submit["accepted"]
    assert submit["achieved_rate"] > 0 and submit["p99_ms"] > 0
    assert read["error_count"] == 0, read["errors"]
    assert read["reads"] == 30
