"""What a sweep found: its trials as a table, the best trial, parameter importances, and
PNG plots of the optimisation history and the importances."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.core.models import Job, Sweep
from app.core.money import usd_text
from app.sweeps.space import describe
from app.sweeps.trial import OBJECTIVE_ATTR

log = logging.getLogger(__name__)


def trial_rows(study: Any, jobs: dict[int, Job]) -> list[dict[str, Any]]:
    """One row per trial: its state, value, cost, where it was pruned, its parameters."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        job = jobs.get(t.number)
        steps = sorted(t.intermediate_values)
        rows.append({
            "number": t.number, "state": t.state.name.lower(),
            "value": t.value if t.value is not None else t.user_attrs.get(OBJECTIVE_ATTR),
            "params": dict(t.params),
            "job_id": job.id if job else None, "job_state": job.state if job else None,
            "cost_usd": usd_text(job.cost_micros) if job else "0",
            "pruned_at_step": steps[-1] if t.state.name == "PRUNED" and steps else None,
            "reports": len(steps),
            "ended": t.user_attrs.get("oppen_end"),
        })
    return rows


def best(study: Any) -> Any:
    """The best complete trial, or None before any has completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def importances(study: Any) -> dict[str, float]:
    """Each parameter's share of the objective's variance (Optuna's fANOVA), over the
    complete trials; empty until two have completed with differing settings."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # e.g. every trial the same settings
        log.info("importances unavailable: %s", exc)
        return {}
    return {k: float(v) for k, v in found.items()}


def summary(service: Any, sweep: Sweep, study: Any | None = None) -> dict[str, Any]:
    """Everything `sweep show` prints, as JSON."""
    study = study or service.study(sweep)
    jobs = service.jobs(sweep.id)
    rows = trial_rows(study, jobs)
    top = best(study)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    spent = sum(j.cost_micros for j in jobs.values())
    out = {**sweep_dict(sweep), "trials": rows, "counts": counts, "spent_usd": usd_text(spent),
           "best": None, "importances": importances(study)}
    if top is not None:
        job = jobs.get(top.number)
        out["best"] = {"number": top.number, "value": top.value, "params": dict(top.params),
                       "job_id": job.id if job else None,
                       "config": {**sweep.base_config, **top.params}}
    return out


def sweep_dict(sweep: Sweep) -> dict[str, Any]:
    return {
        "id": sweep.id, "name": sweep.name, "state": sweep.state, "reason": sweep.reason,
        "team": sweep.team, "project": sweep.project, "priority": sweep.priority_class,
        "sampler": sweep.sampler, "pruner": sweep.pruner, "seed": sweep.seed,
        "objective": sweep.objective, "direction": sweep.direction,
        "n_trials": sweep.n_trials, "parallelism": sweep.parallelism,
        "max_cost_usd": usd_text(sweep.max_cost_micros) if sweep.max_cost_micros is not None
        else None,
        "space": {k: describe(v) for k, v in sweep.space.items()},
        "base_config": sweep.base_config, "study_name": sweep.study_name,
        "mlflow_run_id": sweep.mlflow_run_id,
        "created_at": sweep.created_at.isoformat(),
        "finished_at": sweep.finished_at.isoformat() if sweep.finished_at else None,
    }


def history_png(study: Any, sweep: Sweep, path: Path) -> Path:
    """Each complete trial's objective by trial number, with the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED
              and t.intermediate_values]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    xs, ys = [t.number for t in done], [float(t.value) for t in done]
    ax.scatter(xs, ys, s=18, label="complete")
    if pruned:
        ax.scatter([t.number for t in pruned],
                   [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                   s=18, marker="x", label="pruned (last report)")
    pick = min if sweep.direction == "minimize" else max
    best_so_far, line = None, []
    for y in ys:
        best_so_far = y if best_so_far is None else pick(best_so_far, y)
        line.append(best_so_far)
    if xs:
        ax.step(xs, line, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(sweep.objective)
    ax.set_title(f"sweep {sweep.name}: optimisation history ({sweep.direction})")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def importances_png(found: dict[str, float], sweep: Sweep, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(found)[::-1]
    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.5 * len(names) + 1)), dpi=100)
    ax.barh(names, [found[n] for n in names])
    ax.set_xlabel("importance (share of the objective's variance)")
    ax.set_title(f"sweep {sweep.name}: parameter importances")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_plots(service: Any, sweep: Sweep, folder: Path) -> list[Path]:
    """The history plot, and the importances plot once there are importances."""
    study = service.study(sweep)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [history_png(study, sweep, folder / f"{sweep.name}-history.png")]
    found = importances(study)
    if found:
        paths.append(importances_png(found, sweep, folder / f"{sweep.name}-importances.png"))
    return paths


def summary_files(service: Any, sweep: Sweep, study: Any,
                  folder: Path) -> tuple[dict[str, float], list[Path]]:
    """For the MLflow parent run: the best value and trial counts, and the plots and the
    trial table (JSON) as files written into ``folder``."""
    import json

    data = summary(service, sweep, study)
    metrics = {f"trials_{state}": float(n) for state, n in data["counts"].items()}
    if data["best"] is not None:
        metrics["best_value"] = float(data["best"]["value"])
        metrics["best_trial"] = float(data["best"]["number"])
    files = write_plots(service, sweep, folder)
    table = folder / "trials.json"
    table.write_text(json.dumps(data, indent=1, default=str))
    return metrics, [*files, table]
