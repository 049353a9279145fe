"""The load test of the API server on loopback (bounded: 30 s of submissions, 200 dashboard
reads): at least 200 submissions a second with p99 under 100 ms on SQLite, 50 concurrent
dashboard readers, no error and no lost job. The figures are printed (pytest -s)."""

from __future__ import annotations

import json

import pytest

from app.bench.api import TARGET_P99_MS, TARGET_RATE, run


@pytest.mark.slow
def test_sustained_submissions_and_concurrent_dashboard_readers() -> None:
    r = run(rate=TARGET_RATE, seconds=30.0, readers=50, reads_each=4)
    print("\n[api load] " + json.dumps({"submit": r["submit"], "dashboard": r["dashboard"]}))
    submit, read = r["submit"], r["dashboard"]
    assert submit["error_count"] == 0, submit["errors"]
    assert submit["accepted"] == submit["requests"] == 6000
    assert submit["achieved_rate"] >= TARGET_RATE * 0.98
    assert submit["p99_ms"] < TARGET_P99_MS
    assert submit["lost"] == 0 and submit["distinct_ids"] == submit["accepted"]
    assert read["error_count"] == 0, read["errors"]
    assert read["reads"] == 200
