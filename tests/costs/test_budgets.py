"""Budgets at submission and admission, the race between submitters, forecasts, reports and
advice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from app.core.admission import Limits
from app.core.db import init_db, make_engine
from app.core.errors import BudgetExceeded, ConfigError
from app.core.models import Budget, Job
from app.core.queue import QueueService
from app.core.timeutil import utcnow
from app.costs.budgets import period_window
from app.costs.calculator import Shape
from app.costs.forecast import Throughput, forecast
from app.costs.pricing import DEFAULT_PRICING_FILE, Pricing, load_pricing
from app.costs.reports import report_chart
from app.costs.savings import plateau_step
from app.costs.service import CostService
from app.services import build_queue
from tests.support.postgres import fresh_database
from tests.support.processes import run_in_processes

PRICING = load_pricing(DEFAULT_PRICING_FILE)
SMALL = {"total_timesteps": 80_000}  # ~40 s of 1 CPU + 1 GB: a few hundredths of a cent


# The same prices at every hour: for tests about counting, not about when a job runs (under
# PRICING a job priced a moment before 09:00 UTC on a weekday costs more a moment later).
FLAT = replace(PRICING, peak=replace(PRICING.peak, off_peak_discount=Decimal(0)))


def budgeted(engine, pricing: Pricing = PRICING) -> QueueService:  # type: ignore[no-untyped-def]
    return build_queue(engine, Limits(), pricing)


@pytest.fixture
def q(queue: QueueService) -> QueueService:
    return budgeted(queue.engine)


def test_hard_budget_refuses_with_how_far_over_and_what_fits(q: QueueService) -> None:
    flat = budgeted(q.engine, FLAT)  # three alike jobs must cost the same at any hour
    one = flat.submit("probe", SMALL, team="ml")
    per_job = one.estimated_cost_micros
    flat.gate.budgets.set("ml-weekly", per_job * 3 / 1e6, scope="team", scope_value="ml",
                     period="weekly")
    flat.submit("second", SMALL, team="ml")
    flat.submit("third", SMALL, team="ml")
    before = flat.counts()
    with pytest.raises(BudgetExceeded) as info:
        flat.submit("fourth", {"total_timesteps": 800_000}, team="ml")
    message = str(info.value)
    assert "budget 'ml-weekly' (team ml, weekly)" in message and "over" in message
    assert flat.counts() == before  # nothing stored
    # Nothing fits in zero room; another team is not bound by this budget.
    assert "What would fit" not in message
    assert flat.submit("elsewhere", SMALL, team="other").state == "queued"


@pytest.mark.parametrize("refused_at", [
    datetime(2026, 12, 2, 3, 0, tzinfo=UTC),    # a Wednesday, far from any peak boundary
    datetime(2026, 12, 2, 8, 55, tzinfo=UTC),   # five minutes before its peak opens
])
def test_refusal_names_variants_that_still_fit_minutes_later(
        q: QueueService, monkeypatch: pytest.MonkeyPatch, refused_at: datetime) -> None:
    clock = [refused_at]
    for module in ("app.core.queue", "app.costs.advice"):
        monkeypatch.setattr(f"{module}.utcnow", lambda: clock[0])
    q.gate.budgets.set("tight", "0.02", scope="project", scope_value="p1")
    with pytest.raises(BudgetExceeded) as info:
        q.submit("big", {"total_timesteps": 2_000_000}, gpus=1, cpus=1, project="p1")
    fits = str(info.value).split("What would fit: ")[1]
    assert "total_timesteps=" in fits
    steps = int(fits.split("total_timesteps=")[1].split(" ")[0].replace(",", ""))
    assert 0 < steps < 2_000_000
    # The suggestion really fits, submitted nine minutes later: past 09:00 it runs at peak
    # prices, which a suggestion priced at the moment of the refusal would not cover.
    clock[0] += timedelta(minutes=9)
    assert q.submit("smaller", {"total_timesteps": steps}, gpus=1, project="p1").state == "queued"


@pytest.mark.parametrize("minutes_before_peak", [30, 9, 4, 0.5, -3])
def test_dearest_start_cost_is_the_most_any_start_in_the_window_costs(
        q: QueueService, minutes_before_peak: float) -> None:
    now = datetime(2026, 12, 2, 9, tzinfo=UTC) - timedelta(minutes=minutes_before_peak)
    window = timedelta(minutes=10)
    for steps in (4_000, 480_000, 2_000_000):  # the job ends inside and beyond the window
        spec = q.validate({"name": "x", "config": {"total_timesteps": steps}})
        dearest = q.gate.dearest_start_cost(spec, now, window)
        # Every start a second apart across the window: none costs more, one costs as much.
        sampled = [q.estimate(spec, now + timedelta(seconds=i)).cost_micros
                   for i in range(int(window.total_seconds()) + 1)]
        assert max(sampled) <= dearest <= max(sampled) + 1
        assert dearest >= q.estimate(spec, now).cost_micros


def test_dearest_start_cost_finds_a_peak_inside_the_window(q: QueueService) -> None:
    """A job 5 minutes shorter than the 9-hour peak window, submitted 2 minutes before it
    opens: starts from 09:00 to 09:05 run wholly at peak, and both ends of a 10-minute
    window cost less than they do."""
    def spec(steps: int) -> Any:
        return q.validate({"name": "x", "config": {"total_timesteps": steps}})

    per_step = (q.estimate(spec(200_000)).duration_s - q.estimate(spec(100_000)).duration_s) \
        / 100_000
    overhead = q.estimate(spec(100_000)).duration_s - 100_000 * per_step
    job = spec(round((timedelta(hours=8, minutes=55).total_seconds() - overhead) / per_step))
    now = datetime(2026, 12, 2, 8, 58, tzinfo=UTC)
    ends = max(q.estimate(job, now).cost_micros,
               q.estimate(job, now + timedelta(minutes=10)).cost_micros)
    at_peak = q.estimate(job, datetime(2026, 12, 2, 9, 1, tzinfo=UTC)).cost_micros
    assert at_peak > ends
    assert q.gate.dearest_start_cost(job, now, timedelta(minutes=10)) == at_peak


def test_soft_budget_accepts_with_a_warning(q: QueueService) -> None:
    q.gate.budgets.set("soft", "0", hard=False)
    job = q.submit("over but allowed", SMALL)
    event = q.show(job.id).events[0]
    assert "soft budget warning: budget 'soft'" in event.reason


def _submit_until_refused(url: str, worker: int, attempts: int) -> None:
    engine = make_engine(url)
    queue = budgeted(engine, FLAT)
    for i in range(attempts):
        try:
            queue.submit(f"w{worker}-{i}", SMALL)
        except BudgetExceeded:
            pass


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sixteen_concurrent_submitters_never_commit_past_a_hard_budget(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = fresh_database(backend, tmp_path / "race.db", request)
    engine = make_engine(url)
    init_db(engine)
    queue = budgeted(engine, FLAT)
    per_job = queue.estimate(queue.validate({"name": "x", "config": SMALL})).cost_micros
    limit = per_job * 40 + per_job // 2  # room for 40 jobs, not 41
    queue.gate.budgets.set("global", limit / 1e6)
    run_in_processes(_submit_until_refused, [(url, w, 6) for w in range(16)])
    with Session(engine) as s:
        jobs = s.exec(select(Job)).all()
    committed = sum(j.estimated_cost_micros for j in jobs)
    print(f"\n[budget-race] {backend}: 96 attempts, {len(jobs)} accepted, committed "
          f"{committed} of {limit} micro-dollars")
    assert committed <= limit
    assert len(jobs) == 40  # flat prices: every job costs the same at any hour


def test_dispatcher_recheck_holds_a_job_a_budget_can_no_longer_cover(q: QueueService) -> None:
    from app.bench.queue import RecordingExecutor
    from app.core.dispatcher import Dispatcher
    from app.core.lease import Lease
    from app.costs.budgets import BudgetAdmission

    job = q.submit("queued before the cut", SMALL)
    q.gate.budgets.set("cut", "0")  # the limit drops after submission
    d = Dispatcher(q.engine, RecordingExecutor(), Lease(q.engine, "t", 30), Limits(),
                   checks_for=lambda s, now: [BudgetAdmission(q.gate.budgets, s, now)])
    assert d.tick().launched == []
    view = q.show(job.id)
    assert view.job.state == "queued"
    assert view.pending.reason.value == "budget" and "budget 'cut'" in view.pending.detail


@pytest.mark.parametrize("kwargs,message", [
    ({"limit_usd": "-1"}, "at least \\$0"),
    ({"limit_usd": "lots"}, "not an amount"),
    ({"limit_usd": "1", "scope": "galaxy"}, "unknown budget scope"),
    ({"limit_usd": "1", "scope": "team"}, "needs the team's name"),
    ({"limit_usd": "1", "period": "daily"}, "unknown budget period"),
    ({"limit_usd": "1", "period": "custom", "starts_at": datetime(2026, 12, 1, tzinfo=UTC),
      "ends_at": datetime(2026, 11, 1, tzinfo=UTC)}, "before it starts"),
    ({"limit_usd": "1", "period": "custom"}, "needs a start and an end"),
    ({"limit_usd": "1", "thresholds": [0, 0.5]}, "thresholds"),
])
def test_bad_budgets_are_clear_errors_and_change_nothing(q: QueueService, kwargs: dict,
                                                         message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        q.gate.budgets.set("b", **kwargs)
    with Session(q.engine) as s:
        assert s.exec(select(Budget)).all() == []


def test_periods_start_monday_and_on_the_first_in_the_pricing_zone() -> None:
    at = datetime(2026, 11, 26, 15, tzinfo=UTC)  # a Thursday
    weekly = Budget(name="w", period="weekly", limit_micros=1)
    monthly = Budget(name="m", period="monthly", limit_micros=1)
    assert period_window(weekly, at, PRICING) == (datetime(2026, 11, 23, tzinfo=UTC),
                                                 datetime(2026, 11, 30, tzinfo=UTC))
    assert period_window(monthly, at, PRICING) == (datetime(2026, 11, 1, tzinfo=UTC),
                                                  datetime(2026, 12, 1, tzinfo=UTC))


def test_budget_status_burn_rate_and_run_out_date(q: QueueService) -> None:
    # 2.5 days into the month, so the projected run-out falls inside it.
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)
    with Session(q.engine) as s:  # $2 spent by jobs that finished this month
        start = period_window(Budget(name="x", period="monthly", limit_micros=1), now,
                              PRICING)[0]
        for i in range(2):
            s.add(Job(name=f"done{i}", state="succeeded", config=SMALL, cost_micros=1_000_000,
                      created_at=start + timedelta(minutes=1), finished_at=now))
        s.commit()
    b = q.gate.budgets.set("m", "3")
    status = q.gate.budgets.status(b, now)
    assert status.spent_micros == 2_000_000 and status.committed_micros == 2_000_000
    days = max((now - start).total_seconds() / 86400, 1 / 24)
    assert status.burn_per_day_micros == int(2_000_000 / days)
    assert status.crossed == [0.5]
    # $1 left at the burn rate.
    expected = now + timedelta(days=1_000_000 / status.burn_per_day_micros)
    assert abs((status.runs_out_at - expected).total_seconds()) < 1


# --- forecasts -------------------------------------------------------------------------------


def test_forecast_of_a_run_with_known_speed_lands_in_its_interval() -> None:
    rate = Throughput(1000.0, 900.0, 1100.0, "test")
    now = datetime(2026, 11, 24, 20, tzinfo=UTC)  # off-peak
    fc = forecast(PRICING, Shape(1, 1, 0), now, 60_000, rate)
    assert fc.remaining_s == pytest.approx(60.0)
    assert fc.remaining_low_s <= 60.0 <= fc.remaining_high_s
    assert fc.cost_low_micros <= fc.cost_micros <= fc.cost_high_micros


def test_live_forecast_follows_the_run_and_adapts_when_its_speed_changes(services) -> None:
    import mlflow

    tracker = services.tracker
    costs = CostService(services.pricing, services.queue, services.budgets, tracker)
    job = services.queue.submit("live", {"total_timesteps": 100_000})
    with tracker.start_run_resumable("live", {}) as run:
        run_id = run.info.run_id
        for i in range(10):  # 1,000 steps/s for 40,000 steps
            mlflow.log_metrics({"charts/SPS": 1000.0, "charts/global_step": 4000.0 * (i + 1)},
                               step=4000 * (i + 1))
    with Session(services.engine) as s:
        row = s.get(Job, job.id)
        row.state, row.mlflow_run_id, row.started_at = "running", run_id, utcnow()
        s.add(row)
        s.commit()
    first = costs.forecast_job(job.id)
    assert first["global_step"] == 40_000
    assert first["remaining_s"] == pytest.approx(60.0)
    low, high = first["remaining_interval_s"]
    assert low <= 60.0 <= high
    client = tracker.client()
    for i in range(12):  # it speeds up to 4,000 steps/s
        step = 40_000 + 2_000 * (i + 1)
        client.log_metric(run_id, "charts/SPS", 4000.0, step=step)
        client.log_metric(run_id, "charts/global_step", float(step), step=step)
    later = costs.forecast_job(job.id)
    assert later["global_step"] == 64_000
    assert later["steps_per_second"] == 4000.0
    assert later["remaining_s"] == pytest.approx(36_000 / 4000)


def test_comparable_runs_replace_the_prior(services) -> None:
    import mlflow

    tracker = services.tracker
    costs = CostService(services.pricing, services.queue, services.budgets, tracker)
    assert costs.throughput({"mode": "place", "num_hosts": 8}).source.startswith("prior")
    for sps, hosts in ((5000.0, 8), (6000.0, 10), (7000.0, 6), (99999.0, 64)):
        with tracker.start_run_resumable("past", {}):
            mlflow.log_params({"mode": "place", "num_hosts": hosts, "device": "auto"})
            mlflow.log_metric("charts/SPS", sps)
    found = costs.throughput({"mode": "place", "num_hosts": 8})
    assert found.samples == 3 and found.sps == 6000.0  # the 64-host run is not comparable
    assert found.low <= 6000.0 <= found.high


# --- reports and advice ------------------------------------------------------------------------


def test_report_groups_averages_trend_and_chart(services, tmp_path: Path) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)  # Thursday
    with Session(services.engine) as s:
        for team, cost, when in (("a", 3_000_000, now - timedelta(days=1)),
                                 ("a", 1_000_000, now - timedelta(days=2)),
                                 ("b", 2_000_000, now - timedelta(hours=1)),
                                 ("a", 4_000_000, now - timedelta(days=7))):  # last week
            s.add(Job(name="r", state="succeeded", config=SMALL, team=team, cost_micros=cost,
                      created_at=when, started_at=when, finished_at=when))
        s.commit()
    report = services.costs.report("week", "team", now)
    assert report["total_usd"] == "6" and report["runs"] == 3
    assert report["average_per_run_usd"] == "2"
    assert report["previous_total_usd"] == "4" and report["change_vs_previous"] == 0.5
    assert [(g["key"], g["cost_usd"], g["runs"]) for g in report["groups"]] == [
        ("a", "4", 2), ("b", "2", 1)]
    assert len(report["by_day"]) == 7 and report["by_day"][2]["cost_usd"] == "3"
    # Each day's spend per group: what the chart stacks.
    assert [d["groups"] for d in report["by_day"]][2:4] == [{"a": "3"}, {"b": "2"}]
    png = report_chart(report, tmp_path / "spend.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="unknown grouping"):
        services.costs.report("week", "colour")


def test_plateau_is_found_where_the_curve_flattens() -> None:
    rising = [(i * 1000, float(i)) for i in range(10)]
    assert plateau_step(rising) is None
    flat_after = [(i * 1000, min(i, 5) + 0.001 * (i % 2)) for i in range(20)]
    assert plateau_step(flat_after) == 5000
    assert plateau_step(flat_after[:3]) is None  # too short to tell


def test_recommendations_carry_savings_computed_for_the_job(services) -> None:
    job = services.queue.submit("advice", {"total_timesteps": 400_000}, gpus=1)
    advice = {a["kind"]: a for a in services.costs.recommend(job.id)}
    assert advice["priority"]["saving_fraction"] == pytest.approx(0.2, abs=1e-3)
    assert advice["spot"]["saving_fraction"] == pytest.approx(
        1 - 0.3 * float(services.pricing.spot.duration_factor()), abs=0.02)
    assert all(float(a["saving_usd"]) > 0 for a in advice.values())
