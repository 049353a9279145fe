"""MLflow behind one module.

MLflow is slow to import and opens nothing until asked, so it is imported on first use; a
missing install is a DependencyError saying how to add it. One MlflowClient per tracking URI is
made and cached. The fluent API (runs, logging, models, autolog) is reached through
:func:`fluent`, and MLflow's own error class through :func:`mlflow_exception`.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from app.core.errors import DependencyError


@functools.cache
def fluent() -> ModuleType:
    """The ``mlflow`` module itself, for runs and logging."""
    try:
        import mlflow
    except ImportError:
        raise DependencyError("tracking needs the mlflow package (pip install mlflow)") from None
    return mlflow


def pytorch() -> ModuleType:
    """``mlflow.pytorch``: logging and loading PyTorch models."""
    fluent()
    import mlflow.pytorch

    return mlflow.pytorch


def pytorch_if_installed() -> ModuleType | None:
    """``mlflow.pytorch``, or None where MLflow's model flavors cannot load: the lean
    training image carries mlflow-skinny without pandas, which the flavor imports."""
    try:
        return pytorch()
    except ImportError:
        return None


def langchain() -> ModuleType:
    """``mlflow.langchain``: tracing the agent's turns."""
    fluent()
    import mlflow.langchain

    return mlflow.langchain


@functools.cache
def client(tracking_uri: str) -> Any:
    """The MlflowClient for this store, made once per URI."""
    return fluent().tracking.MlflowClient(tracking_uri)


def use_store(tracking_uri: str) -> None:
    """Points the fluent API at this store (the process-wide setting MLflow keeps)."""
    fluent().set_tracking_uri(tracking_uri)


def mlflow_exception() -> type[Exception]:
    """MLflow's MlflowException class, for ``except`` clauses."""
    from mlflow.exceptions import MlflowException

    fluent()
    return MlflowException


def warm_up() -> None:
    """What MLflow does on a process's first run, done ahead in a warm-start server so its
    children skip it: the SQL store's module and its ORM mappers, the pytorch flavour, and
    the map of installed distributions its model logging checks requirements against."""
    fluent()
    import sqlalchemy.orm
    from mlflow.store.tracking import sqlalchemy_store  # noqa: F401
    from mlflow.utils import requirements_utils

    pytorch_if_installed()
    sqlalchemy.orm.configure_mappers()
    requirements_utils._init_packages_to_modules_map()
