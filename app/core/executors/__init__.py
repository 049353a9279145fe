"""Executors launch, watch and stop jobs. Chosen by configuration (`OPPEN_EXECUTOR`).

The names below load on first use, not with the package: `python -m
app.core.executors.runner` wraps every local job and imports this package first, and the
models behind the executors cost half a second of CPU per job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.core.executors.base import ExecStatus, Executor, Phase
    from app.core.executors.local import LocalExecutor

__all__ = ["ExecStatus", "Executor", "LocalExecutor", "Phase"]


def __getattr__(name: str) -> Any:
    if name == "LocalExecutor":
        from app.core.executors.local import LocalExecutor

        return LocalExecutor
    if name in ("ExecStatus", "Executor", "Phase"):
        from app.core.executors import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
