"""Run reports: the evaluation table as Markdown and the learning curve as a PNG."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("mean_wait_s", "mean_bounded_slowdown", "p95_bounded_slowdown", "utilization")
# RLScheduler's protocol (rlscheduler_eval): bounded slowdown and wait, without and with
# shadow backfilling.
PROTOCOL_COLUMNS = ("bsld_no_backfill", "bsld_shadow_backfill", "wait_no_backfill_s",
                    "wait_shadow_backfill_s")


def evaluation_markdown(table: dict[str, dict[str, float]], seeds: list[int]) -> str:
    first = next(iter(table.values()), {})
    protocol = "bsld_no_backfill" in first
    columns = PROTOCOL_COLUMNS if protocol else COLUMNS
    heading = (f"RLScheduler protocol, windows starting at jobs {', '.join(map(str, seeds))} "
               "(means)" if protocol else f"Evaluation on seeds {', '.join(map(str, seeds))} "
               "(means)")
    lines = [heading, "", "| policy | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row.get(c, float('nan')):.5g}"
                                                  for c in columns) + " |")
    return "\n".join(lines) + "\n"


def learning_curve_png(points: list[tuple[int, float]], path: Path,
                       ylabel: str = "episodic return") -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display: render to a file
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if points:
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
