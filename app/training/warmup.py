"""Work a training process does once whatever it trains, done ahead by the warm-start server
(app.core.executors.warm) so the runs it forks start straight into training."""

from __future__ import annotations


def warm_up() -> None:
    import matplotlib

    matplotlib.use("Agg")  # the plots are files; no display
    import matplotlib.pyplot  # noqa: F401

    from app.core.adaptors import mlflow

    mlflow.warm_up()
