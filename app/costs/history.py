"""Throughput of comparable past runs, and the live rate of a running one, from MLflow."""

from __future__ import annotations

from typing import Any

from app.core.tracking import Tracker
from app.costs.forecast import RECENT_RATES, Throughput, throughput_from

SPS_METRIC = "charts/SPS"
STEP_METRIC = "charts/global_step"
MAX_RUNS = 200


def comparable_throughput(tracker: Tracker, config: dict[str, Any]) -> Throughput | None:
    """Median and 95% interval of the final steps/s of finished runs with the same mode and
    device and a host count within a factor of two."""
    client = tracker._client()
    mode = str(config.get("mode", "place")).replace("'", "")
    runs = client.search_runs([tracker.experiment_id()],
                              filter_string=f"params.mode = '{mode}' and "
                                            "attributes.status = 'FINISHED'",
                              max_results=MAX_RUNS)
    hosts = int(config.get("num_hosts", 4))
    device = str(config.get("device", "auto"))
    rates = []
    for run in runs:
        params, metrics = run.data.params, run.data.metrics
        try:
            their_hosts = int(params.get("num_hosts", -1))
        except ValueError:
            continue
        if not hosts / 2 <= their_hosts <= hosts * 2 or params.get("device", "auto") != device:
            continue
        if SPS_METRIC in metrics:
            rates.append(float(metrics[SPS_METRIC]))
    return throughput_from(rates, f"{len(rates)} comparable finished runs ({mode}, "
                                  f"{hosts // 2}-{hosts * 2} hosts, device {device})")


def live_progress(tracker: Tracker, run_id: str) -> tuple[int, Throughput] | None:
    """(global step, rate over the last reports) of a running run, or None before its
    first report."""
    client = tracker._client()
    steps = client.get_metric_history(run_id, STEP_METRIC)
    rates = client.get_metric_history(run_id, SPS_METRIC)
    if not steps or not rates:
        return None
    recent = [m.value for m in sorted(rates, key=lambda m: m.step)[-RECENT_RATES:]]
    rate = throughput_from(recent, f"live: last {len(recent)} reports of the run")
    if rate is None:
        return None
    return int(max(m.value for m in steps)), rate
