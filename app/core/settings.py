"""Effective configuration: environment (OPPEN_*) over an optional TOML file over defaults.

The TOML file is ``$OPPEN_HOME/config.toml`` unless ``OPPEN_CONFIG`` names another. Nothing is
read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.core.admission import Limits
from app.core.errors import ConfigError

DEFAULT_HOME = "~/.oppen"


def oppen_home() -> Path:
    return Path(os.environ.get("OPPEN_HOME", DEFAULT_HOME)).expanduser()


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the settings file; remembers which keys it supplied for `oppen config show`."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.data: dict[str, Any] = {}
        if path.is_file():
            try:
                self.data = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML ({exc})") from None
            except UnicodeDecodeError:
                raise ConfigError(f"{path}: not UTF-8 text") from None
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
            unknown = set(self.data) - set(settings_cls.model_fields)
            if unknown:
                raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


class Settings(BaseSettings):
    """Every knob of Oppen, with its default."""

    model_config = SettingsConfigDict(env_prefix="OPPEN_", extra="ignore")

    home: Path = Field(default=Path(DEFAULT_HOME), description="Where embedded state lives")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite at $OPPEN_HOME/oppen.db"
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default SQLite at $OPPEN_HOME/mlflow.db"
    )
    executor: Literal["local", "kubernetes"] = Field(
        default="local", description="Where jobs run: local processes or Kubernetes Jobs"
    )
    k8s_namespace: str = Field(default="oppen", description="Namespace of training Jobs")
    k8s_image: str = Field(default="oppen:latest", description="Image the training Jobs run")
    k8s_service_account: str = Field(
        default="oppen-training", description="ServiceAccount the training pods run as (no API rights; its token is not mounted)"
    )
    llm: str = Field(default="offline", description="Chat model: offline | provider:model")
    agent_tracing: bool = Field(default=False, description="Trace every agent turn (model and tool calls) in MLflow, experiment oppen-agent")
    llm_base_url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible server for OPPEN_LLM (vLLM, Ollama, llama.cpp)")
    max_concurrent_jobs: int = Field(default=3, ge=1, description="Jobs running at once")
    max_cpus: float | None = Field(default=None, gt=0, description="CPU cores all running jobs may request together (none: no limit)")
    max_memory_mb: int | None = Field(default=None, gt=0, description="Memory all running jobs may request together (none: no limit)")
    max_gpus: int | None = Field(default=None, ge=0, description="GPUs all running jobs may request together (none: no limit)")
    background_max_gpus: int = Field(default=1, ge=0, description="GPUs background jobs may hold together")
    aging_per_hour: float = Field(default=0.0, ge=0, description="Priority points a queued job gains per hour waited (0: off)")
    max_attempts: int = Field(default=3, ge=1, description="Attempts per job when infrastructure fails it")
    retry_backoff_s: float = Field(default=30.0, ge=0, description="Wait before the first retry; doubles per attempt, at most 30 min")
    local_command: str | None = Field(default=None, description="Command for local jobs, {job_id} replaced (shell words); default: oppen train --job-id {job_id}")
    stop_grace_s: float = Field(default=20.0, ge=0, description="SIGTERM-to-SIGKILL grace when stopping a job")
    warm_start: bool = Field(default=True, description="Local jobs fork from a process that has imported PyTorch and MLflow already (milliseconds to start, not seconds)")
    warm_idle_s: float = Field(default=600.0, gt=0, description="A warm-start server with nothing to start for this long exits")
    warm_socket_path: Path | None = Field(default=None, description="The warm-start server's socket, which homes naming the same one share; default: warm.sock in the home (in the temporary folder where that path is too long for a socket)")
    pricing_file: Path | None = Field(default=None, description="Price list (TOML); default: the bundled OpenCost-based one")
    kueue_queue_name: str | None = Field(default=None, description="Hand Kubernetes Jobs to this Kueue LocalQueue; {team} is replaced by the job's team (Terraform makes oppen-<team>)")
    k8s_spot: bool = Field(default=False, description="Run training Jobs on spot nodes")
    k8s_database_secret: str = Field(default="oppen-database", description="Secret whose database-url key training pods read")
    k8s_ttl_after_finished_s: int = Field(default=86400, ge=0, description="Finished Kubernetes Jobs are deleted after this")
    dispatch_interval_s: float = Field(default=2.0, gt=0, description="Dispatcher tick period")
    lease_ttl_s: float = Field(default=30.0, gt=0, description="Dispatcher leadership lease")
    server_url: str | None = Field(default=None, description="Oppen API server to talk to (CLI, dashboard, agent); none: open the database directly")
    token: str | None = Field(default=None, description="Bearer token for the API server (oppen token create)")
    server_max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="Largest request body the API server accepts")
    python_executable: str | None = Field(
        default=None, description="Interpreter for local jobs; default: the running one"
    )
    checkpoint_uri: str | None = Field(default=None, description="Where jobs' checkpoints outlive their process or pod: a folder, or s3://bucket/prefix; default: $OPPEN_HOME/checkpoints")
    trace_dirs: str | None = Field(default=None, description="Folders (separated by ':') that submitted jobs may read SWF traces from; default: $OPPEN_HOME/traces and the shared traces beside the checkout")
    trace_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0, description="Largest SWF trace a job may read")
    cache_dir: Path | None = Field(default=None, description="What Oppen can rebuild but keeps to save time (an empty, migrated MLflow store that each new home starts from); default: $XDG_CACHE_HOME/oppen, else ~/.cache/oppen")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlSource(settings_cls, config_path())

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'oppen.db'}"

    @property
    def resolved_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.resolved_home / 'mlflow.db'}"

    @property
    def logs_dir(self) -> Path:
        return self.resolved_home / "logs"

    @property
    def warm_socket(self) -> Path:
        """The warm-start server's socket: the one configured (homes may share a server: a
        child takes its home from the request's environment), else in the home, or, where
        that path is too long for a Unix socket (about 100 bytes), in the temporary folder
        under the home's hash."""
        if self.warm_socket_path is not None:
            return self.warm_socket_path.expanduser()
        path = self.resolved_home.resolve() / "warm.sock"
        if len(str(path)) <= 100:
            return path
        import hashlib
        import tempfile

        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"oppen-warm-{digest}.sock"

    def admission_limits(self) -> Limits:
        return Limits(max_concurrent=self.max_concurrent_jobs, max_cpus=self.max_cpus,
                      max_memory_mb=self.max_memory_mb, max_gpus=self.max_gpus,
                      class_gpu_quota={"background": self.background_max_gpus},
                      aging_per_hour=self.aging_per_hour)

    @property
    def artifacts_dir(self) -> Path:
        return self.resolved_home / "mlartifacts"

    @property
    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir.expanduser()
        xdg = os.environ.get("XDG_CACHE_HOME")
        return (Path(xdg) if xdg else Path.home() / ".cache") / "oppen"

    @property
    def resolved_trace_dirs(self) -> list[Path]:
        """Where submitted jobs may read traces from: OPPEN_TRACE_DIRS, else the traces
        folder under OPPEN_HOME and the shared traces beside the checkout (when present)."""
        if self.trace_dirs:
            return [Path(p).expanduser() for p in self.trace_dirs.split(os.pathsep) if p]
        found = [self.resolved_home / "traces"]
        for parent in Path(__file__).resolve().parents:
            if (parent / "shared" / "traces").is_dir():
                found.append(parent / "shared" / "traces")
                break
        return found


def config_path() -> Path:
    explicit = os.environ.get("OPPEN_CONFIG")
    return Path(explicit).expanduser() if explicit else oppen_home() / "config.toml"


def load_settings(**overrides: Any) -> Settings:
    """Builds the effective settings, turning validation failures into one clear error."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None
    return settings


def describe_sources(settings: Settings) -> list[tuple[str, Any, str]]:
    """(name, value, source) for each setting: env, file or default."""
    path = config_path()
    file_data: dict[str, Any] = {}
    if path.is_file():
        file_data = tomllib.loads(path.read_text())
    rows = []
    for name in Settings.model_fields:
        if f"OPPEN_{name.upper()}" in os.environ:
            source = "env"
        elif name in file_data:
            source = f"file {path}"
        else:
            source = "default"
        value = getattr(settings, name)
        if value is None and name in IN_USE_BY_DEFAULT:
            # Not set, yet something is used: show that, not None.
            value, source = IN_USE_BY_DEFAULT[name](settings), "default (derived)"
        rows.append((name, shown(name, value), source))
    return rows


# Settings that, when unset, fall back to a location under OPPEN_HOME: what is really used.
IN_USE_BY_DEFAULT: dict[str, Any] = {
    "database_url": lambda s: s.resolved_database_url,
    "mlflow_tracking_uri": lambda s: s.resolved_tracking_uri,
    "checkpoint_uri": lambda s: str(s.resolved_home / "checkpoints"),
}


# Settings whose values are secrets: shown only as set or not.
SECRET_SETTINGS = frozenset({"token"})


def shown(name: str, value: Any) -> Any:
    """A setting's value fit to print: secrets masked, and a password inside a URL (a
    database or tracking URI) replaced by asterisks."""
    if value is None:
        return None
    if name in SECRET_SETTINGS:
        return "***"
    if isinstance(value, str) and "://" in value and "@" in value:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            return value
        if url.password:
            return url.render_as_string(hide_password=True)
    return value
