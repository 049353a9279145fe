"""Training progress for people and for log collectors: a live bar with SPS and ETA in a
terminal, one JSON line per update elsewhere (a pod's or a local job's log)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


class ProgressReporter:
    def __init__(self, total_steps: int, stream: TextIO | None = None,
                 interactive: bool | None = None) -> None:
        self.total = max(total_steps, 1)
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.start = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressReporter:
        if self.interactive:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(TextColumn("training"), BarColumn(), TaskProgressColumn(),
                                      TextColumn("{task.fields[sps]} steps/s"),
                                      TimeRemainingColumn(),
                                      console=Console(file=self.stream), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.total, sps="-")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        if "charts/SPS" not in metrics:
            return  # evaluations and other non-update records
        sps = metrics["charts/SPS"]
        eta = (self.total - step) / sps if sps > 0 else None
        if self._progress is not None:
            self._progress.update(self._task, completed=step, sps=f"{sps:,.0f}")
            return
        record = {"event": "update", "global_step": step, "total_steps": self.total,
                  "sps": round(sps, 1), "eta_s": None if eta is None else round(eta, 1),
                  "elapsed_s": round(time.monotonic() - self.start, 1)}
        for key in ("charts/episodic_return", "charts/avg_bounded_slowdown",
                    "losses/policy_loss", "losses/value_loss"):
            if key in metrics:
                record[key.split("/", 1)[1]] = round(metrics[key], 6)
        print(json.dumps(record), file=self.stream, flush=True)
