"""Optional MLflow tracing of agent turns (OPPEN_AGENT_TRACING): every turn becomes a trace
with its model calls and tool calls, in the `oppen-agent` experiment of Oppen's tracking
store, beside the training runs."""

from __future__ import annotations

from app.core.adaptors import mlflow
from app.core.settings import Settings
from app.core.tracking import Tracker

EXPERIMENT = "oppen-agent"


def enable(settings: Settings) -> str:
    """Turns tracing on for this process; returns the experiment id."""
    # The Tracker creates a fresh store safely (several processes may start at once).
    Tracker(settings.resolved_tracking_uri, settings.artifacts_dir,
            cache_dir=settings.resolved_cache_dir).experiment_id()
    mlflow.use_store(settings.resolved_tracking_uri)
    experiment = mlflow.fluent().set_experiment(EXPERIMENT)
    mlflow.langchain().autolog(log_traces=True, silent=True)
    return str(experiment.experiment_id)


def disable() -> None:
    mlflow.langchain().autolog(disable=True, silent=True)
