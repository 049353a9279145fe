"""Run reports: the evaluation table as Markdown and the learning curve as a PNG."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("mean_wait_s", "mean_bounded_slowdown", "p95_bounded_slowdown", "utilization")


def evaluation_markdown(table: dict[str, dict[str, float]], seeds: list[int]) -> str:
    lines = [f"Evaluation on seeds {', '.join(map(str, seeds))} (means)", "",
             "| policy | " + " | ".join(COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row.get(c, float('nan')):.4g}"
                                                  for c in COLUMNS) + " |")
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
