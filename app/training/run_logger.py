"""MLflow logging that never stops training: when the tracking store or server fails, the
run goes on, says so once on stderr, and keeps its checkpoints locally."""

from __future__ import annotations

import sys
from typing import Any


class RunLogger:
    def __init__(self, active: bool = True) -> None:
        self.active = active
        self.warned: set[str] = set()

    def report(self, what: str, exc: Exception) -> None:
        if what not in self.warned:
            print(f"warning: MLflow {what} failed ({type(exc).__name__}: {exc}); training "
                  f"continues", file=sys.stderr, flush=True)
            self.warned.add(what)
        if what == "start_run":
            self.active = False  # no run to log into: go on without tracking

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.active:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any tracking failure is survivable
            self.report(what, exc)
            return None

    def metrics(self, metrics: dict[str, float], step: int) -> None:
        from app.core.adaptors import mlflow as tracking_sdk

        mlflow = tracking_sdk.fluent()

        self.call("log_metrics", mlflow.log_metrics, metrics, step=step)
