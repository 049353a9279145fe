"""Reading finished jobs for people: which did best by their evaluation, what set them apart,
and how far a running one has got. Pure functions over jobs as the operations return them
(JobView.to_dict), shared by the agent's tools and the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def ranked_by_evaluation(jobs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs with an evaluation, best first: PPO's mean wait over the best heuristic's
    (``eval_ratio``; lower is better), then the older job."""
    return sorted((j for j in jobs if j.get("eval_ratio") is not None),
                  key=lambda j: (j["eval_ratio"], j["id"]))


def differing_options(jobs: list[dict[str, Any]], at_most: int = 5) -> list[str]:
    """The training options whose values differ between ``jobs`` (the seed aside)."""
    keys = sorted({k for j in jobs for k in j.get("config", {})
                   if k != "seed" and len({str(t["config"].get(k)) for t in jobs}) > 1})
    return keys[:at_most]


def progress_text(job: dict[str, Any]) -> str:
    """"2,048 of 4,096 steps (50%), about 1.2 min left" for a running job."""
    total = (job.get("config") or {}).get("total_timesteps")
    step, sps = job.get("progress_step"), job.get("progress_sps")
    if step is None or not total:
        return "starting"
    text = f"{step:,} of {total:,} steps ({100 * step / total:.0f}%)"
    if sps:
        text += f", about {max(0, total - step) / sps / 60:.1f} min left"
    return text
