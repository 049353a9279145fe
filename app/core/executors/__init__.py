"""Executors launch, watch and stop jobs. Chosen by configuration (`OPPEN_EXECUTOR`)."""

from app.core.executors.base import ExecStatus, Executor, Phase
from app.core.executors.local import LocalExecutor

__all__ = ["ExecStatus", "Executor", "LocalExecutor", "Phase"]
