"""`oppen queue pause|unpause|front|eta|status|best`: controls over the whole queue and the
answers about it that the agent gives too."""

from __future__ import annotations

from typing import Any

import click

from app.cli import common
from app.cli.queue_cmds import queue
from app.core.money import usd
from app.core.ranking import differing_options, progress_text, ranked_by_evaluation


def _when(iso: str | None) -> str:
    return iso.replace("T", " ")[:16] if iso else "N/A"


@queue.command("pause")
@click.option("--reason", default="", help="Shown to everyone while paused")
def queue_pause(reason: str) -> None:
    """Admit nothing new until `oppen queue unpause`; running jobs go on (admins)."""
    paused = common.operations().pause_admission(reason)["paused"]
    click.echo(f"admission paused since {_when(paused['since'])} by {paused['by']}"
               + (f": {paused['reason']}" if paused["reason"] else ""))


@queue.command("unpause")
def queue_unpause() -> None:
    """Admit queued jobs again after a pause (admins)."""
    found = common.operations().resume_admission()
    click.echo("admission resumed" if found["was_paused"] else "admission was not paused")


@queue.command("front")
@click.argument("job_id", type=int)
def queue_front(job_id: int) -> None:
    """Put a queued job first in the queue; its priority class and price stay (admins)."""
    d = common.operations().move_to_front(job_id)
    click.echo(f"job {d['id']}: position {d['position']} ({d['priority_class']}; waiting: "
               f"{d['pending_reason'] or 'none'})")


@queue.command("eta")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def queue_eta(job_id: int, as_json: bool) -> None:
    """When a job should start and finish, or how long it has left."""
    ops = common.operations()
    d = ops.show_job(job_id)
    out: dict[str, Any] = {"job_id": job_id, "state": d["state"], "position": d["position"],
                           "eta_start": d["eta_start"], "pending_reason": d["pending_reason"],
                           "estimated_duration_s": d["estimated_duration_s"]}
    if d["state"] in ("dispatching", "waiting", "running"):
        out["remaining_s"] = ops.forecast(job_id)["forecast"].get("remaining_s")
    if as_json:
        common.emit_json(out)
        return
    if d["state"] == "queued":
        click.echo(f"job {job_id}: queued at position {d['position']}; starts "
                   f"{_when(d['eta_start'])} ({d['pending_reason']}: {d['pending_detail']}); "
                   f"runs about {(d['estimated_duration_s'] or 0) / 60:.1f} min")
    elif "remaining_s" in out:
        left = out["remaining_s"]
        click.echo(f"job {job_id}: {d['state']}, {progress_text(d)}"
                   + (f"; about {left / 60:.1f} min left" if left is not None
                      and d["progress_sps"] is None else ""))
    else:
        click.echo(f"job {job_id}: {d['state']}, no ETA")


@queue.command("status")
@click.option("--json", "as_json", is_flag=True)
def queue_status(as_json: bool) -> None:
    """The whole picture: counts, the dispatcher, a pause, running jobs with progress, the
    next queued jobs with positions and ETAs, alerts."""
    ops = common.operations()
    status = ops.queue_status()
    queued = ops.list_jobs(["queued"], limit=10)
    running = ops.list_jobs(["dispatching", "waiting", "running"], limit=10)
    alerts = ops.dashboard(5)["alerts"]
    if as_json:
        common.emit_json({"status": status, "queued": queued, "running": running,
                          "alerts": alerts})
        return
    c = status["counts"]
    click.echo(f"{c['queued']} queued, {c['dispatching'] + c['running']} running, "
               f"{c['waiting']} held by Kueue, {c['succeeded']} succeeded, {c['failed']} "
               f"failed, {c['cancelled']} cancelled")
    lead = status["dispatcher"]
    click.echo("dispatcher: " + ("none running, so nothing starts (oppen dispatcher run)"
                                 if lead is None or not lead.get("leading", True)
                                 else f"{lead['holder']}"
                                 + (f", degraded: {lead['degraded']}" if lead["degraded"]
                                    else "")))
    if status.get("paused"):
        p = status["paused"]
        click.echo(f"admission: PAUSED since {_when(p['since'])} by {p['by']}"
                   + (f": {p['reason']}" if p["reason"] else ""))
    for title, page, line in (
            ("running", running, lambda d: f"#{d['id']} {d['name']} {d['state']}: "
                                           f"{progress_text(d)}"),
            ("next in the queue", queued,
             lambda d: f"{d['position']}. #{d['id']} {d['name']} [{d['priority_class']}] "
                       f"starts {_when(d['eta_start'])} ({d['pending_reason']}), "
                       f"{usd(d['estimated_cost_usd'])}")):
        if page["jobs"]:
            click.echo(f"{title}:")
            for d in page["jobs"]:
                click.echo(f"  {line(d)}")
            if page["total"] > len(page["jobs"]):
                click.echo(f"  ... and {page['total'] - len(page['jobs'])} more")
    for a in alerts:
        click.echo(f"{a['level']}: {a['message']}")


@queue.command("best")
@click.option("--limit", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def queue_best(limit: int, as_json: bool) -> None:
    """Finished runs ranked by their evaluation (PPO's mean wait over the best heuristic's;
    lower is better), with the options that differ between them."""
    page = common.operations().list_jobs(["succeeded"], limit=1000, newest_first=True)
    rated = ranked_by_evaluation(page["jobs"])[:limit]
    if as_json:
        common.emit_json({"ranked": [{"id": j["id"], "name": j["name"],
                                      "eval_ratio": j["eval_ratio"], "config": j["config"]}
                                     for j in rated]})
        return
    if not rated:
        click.echo("no finished job has an evaluation yet")
        return
    keys = differing_options(rated)
    for i, j in enumerate(rated, 1):
        differs = " ".join(f"{k}={j['config'].get(k)}" for k in keys)
        click.echo(f"{i}. job {j['id']} {j['name']}: {j['eval_ratio']:.3f}x {differs}".rstrip())
