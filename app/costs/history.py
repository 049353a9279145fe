"""Throughput of comparable past runs, and the live rate of a running one, from MLflow."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from app.core.models import Job
from app.core.tracking import Tracker
from app.costs.forecast import RECENT_RATES, Throughput, throughput_from

SPS_METRIC = "charts/SPS"
STEP_METRIC = "charts/global_step"
MAX_RUNS = 200


def _comparable(config: dict[str, Any], mode: Any, hosts: Any, device: Any) -> bool:
    try:
        mine, theirs = int(config.get("num_hosts", 4)), int(hosts)
    except (TypeError, ValueError):
        return False
    return (str(mode) == str(config.get("mode", "place")) and mine / 2 <= theirs <= mine * 2
            and str(device) == str(config.get("device", "auto")))


def job_history_throughput(session: Session, config: dict[str, Any],
                           cpus: float | None = None, gpus: int | None = None) -> Throughput | None:
    """The final steps/s of Oppen's own succeeded jobs of the same kind — same mode and
    device, a similar host count and, when given, the same CPUs and GPUs (the dispatcher
    records the rate when a job ends): fast, no MLflow query."""
    stmt = (select(Job.config, Job.progress_sps)  # type: ignore[call-overload]
            .where(Job.state == "succeeded").where(col(Job.progress_sps).is_not(None)))
    if cpus is not None:
        stmt = stmt.where(Job.cpus == cpus)
    if gpus is not None:
        stmt = stmt.where(Job.gpus == gpus)
    rows = session.exec(stmt.order_by(col(Job.finished_at).desc()).limit(MAX_RUNS)).all()
    rates = [sps for cfg, sps in rows
             if _comparable(config, cfg.get("mode", "place"), cfg.get("num_hosts", 4),
                            cfg.get("device", "auto"))]
    return throughput_from(rates, f"{len(rates)} comparable finished Oppen jobs")


def comparable_throughput(tracker: Tracker, config: dict[str, Any]) -> Throughput | None:
    """Median and 95% interval of the final steps/s of finished runs with the same mode and
    device and a host count within a factor of two."""
    client = tracker.client()
    mode = str(config.get("mode", "place")).replace("'", "")
    runs = client.search_runs([tracker.experiment_id()],
                              filter_string=f"params.mode = '{mode}' and "
                                            "attributes.status = 'FINISHED'",
                              max_results=MAX_RUNS)
    hosts = int(config.get("num_hosts", 4))
    device = str(config.get("device", "auto"))
    rates = [float(run.data.metrics[SPS_METRIC]) for run in runs
             if SPS_METRIC in run.data.metrics and _comparable(
                 config, run.data.params.get("mode"), run.data.params.get("num_hosts", -1),
                 run.data.params.get("device", "auto"))]
    return throughput_from(rates, f"{len(rates)} comparable finished runs ({mode}, "
                                  f"{hosts // 2}-{hosts * 2} hosts, device {device})")


def live_progress(tracker: Tracker, run_id: str) -> tuple[int, Throughput] | None:
    """(global step, rate over the last reports) of a running run, or None before its
    first report."""
    client = tracker.client()
    steps = client.get_metric_history(run_id, STEP_METRIC)
    rates = client.get_metric_history(run_id, SPS_METRIC)
    if not steps or not rates:
        return None
    recent = [m.value for m in sorted(rates, key=lambda m: m.step)[-RECENT_RATES:]]
    rate = throughput_from(recent, f"live: last {len(recent)} reports of the run")
    if rate is None:
        return None
    return int(max(m.value for m in steps)), rate
