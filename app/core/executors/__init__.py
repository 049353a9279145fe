"""Executors launch, watch and stop jobs. Chosen by configuration (`OPPEN_EXECUTOR`)."""

from app.core.executors.base import Executor, ExecStatus, Phase
from app.core.executors.local import LocalExecutor

__all__ = ["ExecStatus", "Executor", "LocalExecutor", "Phase"]
