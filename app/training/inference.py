"""Inference: load a trained policy (checkpoint file or MLflow model) and decide, masked and
without gradient tracking, one decision or a batch at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.core.errors import ConfigError
from app.training import checkpoint, host_layers
from app.training.config import TrainConfig
from app.training.fused_place import FusedPlacePolicy
from app.training.policy import MaskedPolicy, PlacePolicy, make_policy
from app.training.ppo import num_hosts_of
from app.training.traces import locate_trace


@dataclass
class LoadedPolicy:
    policy: MaskedPolicy
    config: TrainConfig
    fast: FusedPlacePolicy | None = None  # simrs's fused forward pass, where the mode has one

    def __post_init__(self) -> None:
        if isinstance(self.policy, PlacePolicy):
            self.fast = FusedPlacePolicy(self.policy)

    @classmethod
    def from_checkpoint(cls, path: str | Path, obs_dim: int | None = None,
                        trace_dirs: Sequence[Path] = ()) -> LoadedPolicy:
        """The policy a checkpoint holds, its config's trace found from wherever this runs
        (see traces.locate_trace)."""
        state = checkpoint.load(path)
        cfg = TrainConfig.from_dict(state["config"])
        if cfg.trace:
            cfg = dataclasses.replace(cfg, trace=locate_trace(cfg.trace, Path(path), trace_dirs))
        hosts = num_hosts_of(cfg, obs_dim)
        # Decisions through simrs's fused layers where the run trained through them (the
        # same function; a 10,000-job hierarchical queue is packed instead of padded).
        fused = cfg.mode != "place" and host_layers.use_fused(
            cfg.host_layers, cfg.mode, cfg.hidden, torch.device("cpu"))
        policy = make_policy(cfg.mode, cfg.hidden, hosts, cfg.pick_context, fused=fused,
                             host_alignment=cfg.host_alignment)
        checkpoint.restore_weights(policy, state["policy"], str(path))
        return cls(policy.eval(), cfg)

    @classmethod
    def from_mlflow(cls, model_uri: str, config: TrainConfig) -> LoadedPolicy:
        from app.core.adaptors import mlflow as tracking_sdk

        return cls(tracking_sdk.pytorch().load_model(model_uri).eval(), config)

    def decide(self, obs: np.ndarray, mask: np.ndarray) -> int:
        """One decision: the highest-scoring allowed action."""
        if not mask.any():
            raise ConfigError("no action is allowed by the mask")
        if self.fast is not None:  # no torch at all: entering inference mode costs microseconds
            return int(self.fast.decide_batch(np.asarray(obs)[None], np.asarray(mask)[None])[0])
        with torch.inference_mode():
            o = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32)).unsqueeze(0)
            m = torch.from_numpy(np.ascontiguousarray(mask).astype(bool)).unsqueeze(0)
            return int(self.policy.logits(o, m).argmax(dim=-1).item())

    def decide_batch(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        if self.fast is not None:
            return self.fast.decide_batch(obs, masks)
        with torch.inference_mode():
            o = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
            m = torch.from_numpy(np.ascontiguousarray(masks).astype(bool))
            return self.policy.logits(o, m).argmax(dim=-1).numpy()

    @torch.inference_mode()
    def scores(self, obs: np.ndarray, mask: np.ndarray) -> list[float]:
        o = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32)).unsqueeze(0)
        m = torch.from_numpy(np.ascontiguousarray(mask).astype(bool)).unsqueeze(0)
        return self.policy.logits(o, m)[0].tolist()

