"""MLflow behind a small interface: the embedded SQLite store by default, a server by URL.

MLflow is reached through app.core.adaptors.mlflow (imported lazily, one client per store),
and the artifact root of the experiment is pinned under OPPEN_HOME so runs never write into the
current directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.adaptors import mlflow

EXPERIMENT = "oppen"


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


class Tracker:
    def __init__(self, tracking_uri: str, artifacts_dir: Path, experiment: str = EXPERIMENT,
                 cache_dir: Path | None = None):
        self.tracking_uri = tracking_uri
        self.artifacts_dir = artifacts_dir
        self.experiment = experiment
        # Where an empty, migrated SQLite store is kept for the next new home (none: each
        # new store is migrated from scratch).
        self.cache_dir = cache_dir

    def client(self) -> Any:
        """MLflow's client for this store, made (under the lock) if it does not exist yet:
        opened bare, MLflow would migrate a new SQLite file in place, unguarded."""
        if self.tracking_uri.startswith("sqlite:///") and not self._sqlite_path().exists():
            with self._init_lock():
                pass
        mlflow.use_store(self.tracking_uri)
        return mlflow.client(self.tracking_uri)

    def _sqlite_path(self) -> Path:
        return Path(self.tracking_uri.removeprefix("sqlite:///")).expanduser()

    def experiment_id(self) -> str:
        """The experiment's id, creating the store and the experiment on first use."""
        with self._init_lock():
            return self._experiment_id()

    @contextmanager
    def _init_lock(self) -> Iterator[None]:
        # Two processes migrating a fresh SQLite store at once corrupt its schema version;
        # an advisory lock beside the database file serialises the first use.
        if not self.tracking_uri.startswith("sqlite:///"):
            yield
            return
        import fcntl

        db = self._sqlite_path()
        db.parent.mkdir(parents=True, exist_ok=True)
        with open(db.with_suffix(".init.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not db.exists():
                    self._create_store(db)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _create_store(self, db: Path) -> None:
        """Builds a fresh store beside the real path and renames it into place, so a process
        killed while MLflow migrates (the dispatcher's first start, say) leaves no
        half-migrated store behind, only a temporary file the next start replaces.

        MLflow's migrations take about 2 s of CPU, and what they make, an empty store, is the
        same for every home on one MLflow version. So the first store made is also kept in
        the cache folder, and later ones start as a copy of it; MLflow checks the copy's
        schema when it opens it, and a copy it refuses is made the slow way instead."""
        for stale in db.parent.glob(f".{db.name}.creating-*"):
            stale.unlink(missing_ok=True)  # a killed start's (the caller holds the init lock)
        # A name no earlier store had: MLflow keeps an engine per URI for the process's life.
        stem = f".{db.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        template = self._store_template()
        if template is not None:
            copy = db.with_name(f"{stem}-copy")
            if _copy_opens(template, copy):
                os.replace(copy, db)
                return
            copy.unlink(missing_ok=True)
        tmp = db.with_name(stem)
        _open_store(tmp)  # a new file: MLflow migrates it
        if template is not None:
            _keep_template(tmp, template)
        os.replace(tmp, db)

    def _store_template(self) -> Path | None:
        if self.cache_dir is None:
            return None
        version = mlflow.fluent().__version__
        return self.cache_dir.expanduser() / f"mlflow-{version}-empty-store.db"

    def _experiment_id(self) -> str:
        client = self.client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        location = None
        if self.tracking_uri.startswith("sqlite:") or "://" not in self.tracking_uri:
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            location = self.artifacts_dir.resolve().as_uri()
        try:
            return client.create_experiment(self.experiment, artifact_location=location)
        except Exception:  # another process created it first
            exp = client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise
            return exp.experiment_id

    def start_run_resumable(self, name: str, tags: dict[str, str],
                            run_id: str | None = None) -> Any:
        """Starts a run, or reopens `run_id` (a resumed training run keeps logging there;
        a checkpoint brought from another store starts a new run here). The caller ends it
        with mlflow.end_run()."""
        fluent = mlflow.fluent()
        # First, always: this creates the store if need be and points MLflow's fluent API at
        # it. Reopening a run by id alone would otherwise log to MLflow's default store, a
        # mlflow.db in the current directory.
        experiment_id = self.experiment_id()
        # System metrics (CPU and memory use every 10 s) feed the right-sizing advice.
        if run_id is not None and self._has_run(run_id):
            return fluent.start_run(run_id=run_id, log_system_metrics=True)
        return fluent.start_run(experiment_id=experiment_id, run_name=name, tags=tags,
                                log_system_metrics=True)

    def _has_run(self, run_id: str) -> bool:
        try:
            self.client().get_run(run_id)
        except mlflow.mlflow_exception():
            return False
        return True

    def create_run(self, name: str, tags: dict[str, str], params: dict[str, str]) -> str:
        """A run that no process holds open (a sweep's parent run): logged to by id, ended
        with end_run."""
        client = self.client()
        run = client.create_run(self.experiment_id(), run_name=name, tags=tags)
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value[:6000])
        return str(run.info.run_id)

    def end_run(self, run_id: str, metrics: dict[str, float], files: list[Path],
                status: str = "FINISHED") -> None:
        """Logs final metrics and files (under "results/") to a run made by create_run, and
        ends it."""
        client = self.client()
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        for path in files:
            client.log_artifact(run_id, str(path), "results")
        client.set_terminated(run_id, status)

    def close_run(self, run_id: str, status: str, only_if_running: bool) -> None:
        """The dispatcher's verdict on a run whose attempt has ended (see ports.RunCloser).
        A FINISHED run is never changed: its trainer completed it."""
        client = self.client()
        current = client.get_run(run_id).info.status
        if current == status or current == "FINISHED":
            return
        if only_if_running and current != "RUNNING":
            return
        client.set_terminated(run_id, status)

    def run_summary(self, run_id: str) -> RunSummary:
        run = self.client().get_run(run_id)
        return RunSummary(run.info.run_id, run.info.status, dict(run.data.params),
                          dict(run.data.metrics), dict(run.data.tags))

    def artifacts(self, run_id: str) -> list[str]:
        return [f.path for f in self.client().list_artifacts(run_id)]

    def download(self, run_id: str, path: str, into: Path) -> Path:
        """A run's artifact (file or folder) copied under ``into``."""
        return Path(self.client().download_artifacts(run_id, path, str(into)))


def _open_store(db: Path) -> None:
    """Opens the SQLite store at ``db`` with a client of its own (not the cached one: the file
    is renamed away at once): MLflow migrates an empty file and checks a made one's schema."""
    mlflow.fluent().tracking.MlflowClient(f"sqlite:///{db}").search_experiments(max_results=1)


def _copy_opens(template: Path, tmp: Path) -> bool:
    """Whether a copy of ``template`` at ``tmp`` opens as a current store."""
    if not template.is_file():
        return False
    try:
        shutil.copyfile(template, tmp)
        _open_store(tmp)
    except Exception:  # noqa: BLE001 - a stale or damaged copy of any kind: migrate instead
        return False
    return True


def _keep_template(store: Path, template: Path) -> None:
    """Keeps a copy of a freshly migrated store; a cache folder that cannot be written only
    costs the next home its migration."""
    part = template.with_name(f".{template.name}.{os.getpid()}")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store, part)
        os.replace(part, template)  # atomic: a reader sees the whole copy or none
    except OSError:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
