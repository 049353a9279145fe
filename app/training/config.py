"""The training hyperparameters: one typed dataclass that is also the CLI help and the logged
MLflow config (CleanRL style). Validation turns bad input into one clear error."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError
from app.training.schedules import SCHEDULES
from app.training.traces import DEFAULT_TRACE_MAX_BYTES, check_trace_file

# The simulator's reward functions (simrs.REWARDS), listed here so validation needs no import.
REWARDS = ("wait", "bsld_dense", "bsld_terminal", "utilization", "load_balance")
PROTOCOLS = ("simrs", "rlscheduler")
HOST_LAYERS = ("auto", "fused", "torch")
FUSED_MAX_HIDDEN = 128  # the widest hidden size simrs's fused kernels compile
# The hierarchical mode's heuristic pairs: each job rule with each host rule. With worst_fit
# and tetris among them the best pair shown is the best known: on the shipped hierarchical
# workloads sjf+tetris waits 8-13% less than sjf+worst_fit, which waits 2-5% less than SJF
# with any of the other host rules (docs/benchmarks.md).
JOB_RULES = ("fcfs", "sjf", "f1")
HOST_RULES = ("first_fit", "best_fit", "best_fit_mem", "worst_fit", "tetris")
# The single-step heuristics simrs has per mode (a placement rule's host, a priority rule's
# slot): what `imitate` may name.
HEURISTICS = {
    "place": ("first_fit", "best_fit", "best_fit_mem", "worst_fit", "random", "tetris"),
    "pick": ("fcfs", "sjf", "smallest", "f1", "wfp3", "unicep"),
    # A job rule, then a host rule (simrs's heuristic pairs; evaluate.py's baselines).
    "hierarchical": tuple(f"{job}+{host}" for job in JOB_RULES for host in HOST_RULES),
}


# Bounds on what one job may ask for, so a submission cannot make a run allocate more than a
# machine has (checked when the options are read, before anything starts).
MAX_HOSTS = 10_000
MAX_CORES_PER_HOST = 4096
MAX_MEM_MB_PER_HOST = 64 * 1024 * 1024
MAX_ROLLOUT_CELLS = 400_000_000  # 1.6 GB of float32 observations


def _h(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    # Experiment
    exp_name: str = _h("place-ppo", "MLflow run name prefix")
    seed: int = _h(1, "Seed for the workload, the network and the sampler", min=0, max=2**63 - 1)
    device: str = _h("auto", "auto | cpu | cuda")
    # Environment (simrs)
    mode: str = _h("place", "Decision mode: place | pick | hierarchical")
    num_hosts: int = _h(4, "Hosts in the simulated cluster (synthetic workloads)", min=1, max=MAX_HOSTS)
    episode_length: int = _h(64, "Jobs per episode", min=1, max=1_000_000)
    max_jobs_per_step: int = _h(8, "Largest burst of simultaneous submissions", min=1, max=100_000)
    # The defaults make a small memory-bound cluster (jobs of up to 64 GB on hosts of 64-128
    # GB), where a job goes matters: first-fit, best-fit and best-fit by memory wait
    # measurably differently, so a first run's evaluation tells them apart.
    mean_interarrival_s: float = _h(10.0, "Mean gap between submission instants (s)", min=1e-3, max=1e7)
    host_cores: tuple[int, ...] = _h((16, 32), "Cores per host, drawn from low,high", pair=True)
    host_mem_mb: tuple[int, ...] = _h((65_536, 131_072), "Memory per host (MB), low,high",
                                      pair=True)
    job_cores: tuple[int, ...] = _h((1, 8), "Cores a job asks for, low,high", pair=True)
    job_mem_mb: tuple[int, ...] = _h((1_024, 65_536), "Memory a job asks for (MB), low,high",
                                     pair=True)
    reward: str = _h("wait", "wait | bsld_dense | bsld_terminal | utilization | load_balance")
    window: int = _h(128, "Visible queue window (pick mode)", min=1, max=100_000)
    backfill: str = _h("none", "Backfilling while a picked job waits: none | shadow | easy")
    trace: str = _h("", "SWF trace to train on instead of the synthetic workload (path)")
    protocol: str = _h("simrs", "How a pick-mode trace is replayed: simrs | rlscheduler "
                       "(RLScheduler's semantics, comparable with its published table)")
    # PPO
    total_timesteps: int = _h(4096, "Environment steps to train for", min=1, max=10**11)
    num_envs: int = _h(8, "Simulators stepped together in one native call", min=1, max=4096)
    num_workers: int = _h(1, "Data-parallel workers (torch.distributed): each steps num_envs / "
                          "num_workers of the environments; gradients are averaged", min=1,
                          max=256)
    rollout_steps: int = _h(128, "Steps per environment per rollout", min=1, max=100_000)
    lr: float = _h(3e-4, "Adam learning rate", min=0.0, max=10.0)
    lr_schedule: str = _h("linear", "constant | linear | exponential | cosine | warmup_cosine")
    warmup_steps: int = _h(0, "Environment steps of linear warm-up (warmup_cosine)", min=0, max=10**11)
    lr_final_ratio: float = _h(0.1, "Final rate / initial rate (exponential)", min=0.0, max=1.0)
    gamma: float = _h(0.995, "Discount factor", min=0.0, max=1.0)
    lam: float = _h(0.99, "GAE lambda", min=0.0, max=1.0)
    num_minibatches: int = _h(4, "Minibatches per update epoch", min=1, max=65_536)
    update_epochs: int = _h(4, "Optimisation epochs per rollout", min=1, max=1000)
    clip_coef: float = _h(0.2, "PPO ratio clipping", min=0.0, max=10.0)
    ent_coef: float = _h(0.01, "Entropy bonus coefficient", min=0.0, max=10.0)
    vf_coef: float = _h(2.0, "Value loss coefficient", min=0.0, max=1000.0)
    max_grad_norm: float = _h(0.5, "Gradient clipping norm", min=0.0, max=1e6)
    norm_adv: bool = _h(True, "Normalise advantages per minibatch")
    norm_value: bool = _h(True, "Learn values of returns normalised by running statistics")
    target_kl: float | None = _h(None, "Stop the update early past this approximate KL")
    hidden: int = _h(16, "Width of the per-entity encoders and scorers", min=1, max=4096)
    host_layers: str = _h("auto", "How the per-entity layers run (place's hosts; pick's jobs; "
                          "hierarchical's jobs and hosts). fused: simrs's Rust forward and "
                          "backward pass (CPU only, hidden up to 128; for pick the whole "
                          "minibatch and rollout step; pick_context runs in PyTorch); "
                          "torch: PyTorch's layers; auto: fused on a CPU for place and "
                          "hierarchical, torch for pick (as its shipped recipes were trained) "
                          "and on CUDA")
    pick_context: bool = _h(False, "Pick mode: each job's score also reads the mean of the "
                            "window's job embeddings (off: every job scored alone, as in "
                            "RLScheduler)")
    host_alignment: bool = _h(False, "Hierarchical mode: each host's score also adds a learned "
                              "weighting of the chosen job's cores and memory times the "
                              "host's free cores and memory (Tetris's alignment, which a "
                              "per-host encoder can only approximate)")
    versus: str = _h("", "Heuristic played on a copy of every training episode; its return is "
                     "subtracted at the episode's end (a control variate: same expected "
                     "gradient, far less variance from the episode's jobs); empty: none")
    # Warm start
    imitate: str = _h("", "Heuristic whose decisions the policy copies before PPO starts "
                      "(behaviour cloning; place: first_fit, best_fit, best_fit_mem, ...; "
                      "pick: f1, sjf, ...); empty: start from a random policy")
    imitate_steps: int = _h(100_000, "Heuristic decisions to copy (with imitate)", min=1, max=10**9)
    imitate_epochs: int = _h(4, "Passes over them (with imitate)", min=1, max=1000)
    imitate_lr: float = _h(0.0, "Adam's learning rate while imitating (0: lr)", min=0.0, max=1.0)
    # Checkpoints and evaluation
    checkpoint_every: int = _h(10, "Updates between checkpoints (episodes restart there)", min=1, max=10**7)
    eval_seeds: tuple[int, ...] = _h((42, 43, 44), "Fixed workload seeds for evaluation")
    eval_every: int = _h(0, "Updates between evaluations for early stopping (0: off)", min=0, max=10**7)
    early_stop_patience: int = _h(0, "Evaluations without improvement before stopping (0: off)",
                                  min=0, max=10**6)
    early_stop_min_delta: float = _h(0.01, "Relative improvement that counts", min=0.0)

    def __post_init__(self) -> None:
        if self.host_layers == "fused" and (self.device == "cuda"
                                            or self.hidden > FUSED_MAX_HIDDEN):
            raise ConfigError("training option host_layers=fused runs on a CPU with hidden up "
                              f"to {FUSED_MAX_HIDDEN} (device {self.device}, hidden "
                              f"{self.hidden}); use auto or torch")
        if self.protocol == "rlscheduler":
            _check_rlscheduler(self)
        if self.host_alignment and self.mode != "hierarchical":
            raise ConfigError("training option host_alignment: only the hierarchical mode "
                              "chooses a host for a chosen job")
        if self.versus and self.mode == "hierarchical":
            # simrs plays single-step rules on the episode's copy; a pair is two decisions.
            raise ConfigError("training option versus: the hierarchical mode has no "
                              "heuristic to play against (imitate takes a pair)")
        for option in ("imitate", "versus"):
            _check_heuristic(option, self.mode, getattr(self, option))
        _check_sizes(self)
        if self.num_envs % self.num_workers:
            raise ConfigError(f"training option num_workers: must divide num_envs "
                              f"({self.num_envs} environments, {self.num_workers} workers)")
        # A job too big for the smallest host could wait forever: simrs refuses the workload.
        if self.job_cores[1] > self.host_cores[0] or self.job_mem_mb[1] > self.host_mem_mb[0]:
            raise ConfigError("training options job_cores/job_mem_mb: the largest job must fit "
                              f"on the smallest host (jobs up to {self.job_cores[1]} cores and "
                              f"{self.job_mem_mb[1]} MB; hosts from {self.host_cores[0]} cores "
                              f"and {self.host_mem_mb[0]} MB)")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def minibatch_size(self) -> int:
        return max(1, self.batch_size // self.num_minibatches)

    @property
    def num_iterations(self) -> int:
        return max(1, self.total_timesteps // self.batch_size)

    def workload(self) -> dict[str, Any]:
        return {
            "num_hosts": self.num_hosts,
            "episode_length": self.episode_length,
            "max_jobs_per_step": self.max_jobs_per_step,
            "mean_interarrival_s": self.mean_interarrival_s,
            "host_cores": self.host_cores,
            "host_mem_mb": self.host_mem_mb,
            "job_cores": self.job_cores,
            "job_mem_mb": self.job_mem_mb,
        }

    def env_options(self) -> dict[str, Any]:
        """Keyword options of simrs environments for this run (the trace is loaded here)."""
        options: dict[str, Any] = {"reward": self.reward, "window": self.window,
                                   "backfill": self.backfill, "protocol": self.protocol}
        if self.trace:
            import simrs

            check_trace_file(self.trace, DEFAULT_TRACE_MAX_BYTES)
            try:
                options["trace"] = simrs.load_trace(self.trace)
            except (simrs.TraceError, OSError) as exc:
                raise ConfigError(f"training option trace: {exc}") from None
            options["episode_length"] = self.episode_length
        return options

    def env_config(self) -> dict[str, Any] | None:
        """The synthetic workload, or None when a trace is used."""
        return None if self.trace else self.workload()

    def to_dict(self) -> dict[str, Any]:
        # Every field is a scalar or a tuple of ints; a shallow copy is exact, and far
        # quicker than dataclasses.asdict when a batch validates thousands of configs.
        d = {name: getattr(self, name) for name in _fields_by_name()}
        for name in _TUPLE_FIELDS:
            d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = _fields_by_name()
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            values[name] = _coerce(known[name], value)
        return cls(**values)

    @classmethod
    def of_checkpoint(cls, data: dict[str, Any]) -> TrainConfig:
        """The config a checkpoint was trained with. Checkpoints from before `host_layers`
        existed were trained through PyTorch's layers: resumed, they continue that way."""
        return cls.from_dict({"host_layers": "torch", **data})

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            text = p.read_text()
            data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot parse ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a table of options")
        return cls.from_dict(data)


@functools.cache
def _fields_by_name() -> dict[str, dataclasses.Field[Any]]:
    # dataclasses.fields() rebuilds its tuple on every call; batches validate thousands.
    return {f.name: f for f in fields(TrainConfig)}


_TUPLE_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.type == "tuple[int, ...]")


def _coerce(f: dataclasses.Field[Any], value: Any) -> Any:
    """Checks one option's type and range; names the option on failure."""
    name, kind, meta = f.name, f.type, f.metadata
    try:
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            out: Any = value
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TypeError
            out = int(value)
        elif kind == "float":
            if isinstance(value, bool):
                raise TypeError
            out = float(value)
        elif kind == "float | None":
            out = None if value is None else float(value)
        elif kind == "tuple[int, ...]":
            # "1,2,3" as well as [1, 2, 3]: what `--set KEY=1,2,3` gives.
            # A lone number too: `--set eval_seeds=42` reads as the integer 42.
            items = value.split(",") if isinstance(value, str) else \
                [value] if isinstance(value, int) and not isinstance(value, bool) else value
            out = tuple(int(v) for v in items)
            if not out:
                raise ValueError
        else:
            if not isinstance(value, str):
                raise TypeError
            out = value
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"training option {name}: expected {kind}, got {value!r}") from None
    if meta.get("pair") and (len(out) != 2 or not 0 < out[0] <= out[1]):
        raise ConfigError(f"training option {name}: expected low,high with 0 < low <= high, "
                          f"got {value!r}")
    if isinstance(out, float) and not math.isfinite(out):
        raise ConfigError(f"training option {name}: must be a finite number, got {value!r}")
    if isinstance(out, int | float) and not isinstance(out, bool):
        if "min" in meta and out < meta["min"]:
            raise ConfigError(f"training option {name}: must be >= {meta['min']}, got {out}")
        if "max" in meta and out > meta["max"]:
            raise ConfigError(f"training option {name}: must be <= {meta['max']}, got {out}")
    if name == "reward" and out not in REWARDS:
        raise ConfigError(f"training option reward: choose one of {', '.join(REWARDS)}, "
                          f"got {out!r}")
    if name == "mode" and out not in ("place", "pick", "hierarchical"):
        raise ConfigError(f"training option mode: choose place, pick or hierarchical, "
                          f"got {out!r}")
    if name == "backfill" and out not in ("none", "shadow", "easy"):
        raise ConfigError(f"training option backfill: choose none, shadow or easy, got {out!r}")
    if name == "lr_schedule" and out not in SCHEDULES:
        raise ConfigError(f"training option lr_schedule: choose one of {', '.join(SCHEDULES)}, "
                          f"got {out!r}")
    if name == "protocol" and out not in PROTOCOLS:
        raise ConfigError(f"training option protocol: choose simrs or rlscheduler, got {out!r}")
    if name == "host_layers" and out not in HOST_LAYERS:
        raise ConfigError(f"training option host_layers: choose auto, fused or torch, "
                          f"got {out!r}")
    if name == "device" and out not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"training option device: choose auto, cpu or cuda, got {out!r}")
    return out


def _check_heuristic(option: str, mode: str, name: str) -> None:
    """`name` (if any) is a single-step heuristic of `mode`, or the error lists them."""
    if not name or name in HEURISTICS.get(mode, ()):
        return
    choices = HEURISTICS.get(mode)
    raise ConfigError(f"training option {option}: choose one of {', '.join(choices)} for mode "
                      f"{mode}, got {name!r}" if choices else
                      f"training option {option}: mode {mode} has no single-step heuristic")


def _check_sizes(cfg: TrainConfig) -> None:
    """What one run may hold in memory, checked before anything is allocated: the rollout
    buffer (environments x steps x observation) and the simulated cluster's pairs. The
    single-option bounds above keep each number sane; this keeps their product within what
    one machine gives (a billion hosts once asked for 40 GB and aborted)."""
    for name in ("host_cores", "job_cores"):
        if getattr(cfg, name)[1] > MAX_CORES_PER_HOST:
            raise ConfigError(f"training option {name}: at most {MAX_CORES_PER_HOST} cores")
    for name in ("host_mem_mb", "job_mem_mb"):
        if getattr(cfg, name)[1] > MAX_MEM_MB_PER_HOST:
            raise ConfigError(f"training option {name}: at most {MAX_MEM_MB_PER_HOST} MB")
    # The widest observation of the three modes: a row per host and per window slot; the
    # hierarchical mode's holds a row per job of the episode (the whole queue).
    slots = cfg.episode_length if cfg.mode == "hierarchical" and not cfg.trace else cfg.window
    width = (cfg.num_hosts + slots) * 8
    cells = cfg.num_envs * cfg.rollout_steps * width
    if cells > MAX_ROLLOUT_CELLS:
        raise ConfigError(
            f"training options num_envs x rollout_steps x observation ({cfg.num_envs} x "
            f"{cfg.rollout_steps} x ~{width}) would hold {cells:,} values in the rollout "
            f"buffer, over the limit of {MAX_ROLLOUT_CELLS:,}; use fewer environments, "
            "steps, hosts or a smaller window (hierarchical: a shorter episode_length)")


def _check_rlscheduler(cfg: TrainConfig) -> None:
    """What the RLScheduler-compatible replay supports, said before any simulator starts."""
    if cfg.mode != "pick" or not cfg.trace:
        raise ConfigError("training option protocol=rlscheduler needs mode=pick and a trace")
    if cfg.backfill not in ("none", "shadow"):
        raise ConfigError("training option backfill: the rlscheduler protocol has none or "
                          f"shadow, got {cfg.backfill!r}")
    if cfg.reward not in ("bsld_dense", "bsld_terminal", "utilization"):
        raise ConfigError("training option reward: the rlscheduler protocol rewards "
                          f"bsld_dense, bsld_terminal or utilization, got {cfg.reward!r}")


def options_help() -> list[tuple[str, str, str]]:
    """(name, default, help) for every training option: the CLI help and the docs table."""
    rows = []
    for f in fields(TrainConfig):
        default = f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else repr(default)
        rows.append((f.name, shown, f.metadata.get("help", "")))
    return rows
