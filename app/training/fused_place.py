"""The `place` policy's inference path: simrs's fused Rust forward pass (simrs/src/nn/place_net.rs),
the same function as the PyTorch module (checked by the tests). A host's hidden vectors stay
in registers there, where PyTorch and NumPy write and re-read `[rows, hosts, hidden]`
intermediates; and a single decision pays no per-operation overhead."""

from __future__ import annotations

import numpy as np

from app.core.errors import ConfigError
from app.training.policy import HOST_FEATURES, PLACE_JOB_FEATURES, PlacePolicy

# The state_dict entries the logits read; the value head is not needed to decide.
_WEIGHTS = ("host_encoder.weight", "host_encoder.bias", "job_encoder.0.weight",
            "job_encoder.0.bias", "job_encoder.2.weight", "job_encoder.2.bias",
            "score_host.weight", "score_host.bias", "score_job.weight", "score_out.weight",
            "score_out.bias")


def _inputs(obs: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C-contiguous float32 observations and int8 masks, checked to be the same rows."""
    obs, masks = np.asarray(obs), np.asarray(masks)
    if (obs.ndim != 2 or masks.ndim != 2 or obs.shape[0] != masks.shape[0]
            or obs.shape[1] != HOST_FEATURES * masks.shape[1] + PLACE_JOB_FEATURES):
        raise ConfigError(f"observations of shape {obs.shape} do not fit masks of shape "
                          f"{masks.shape}: each row needs 4 values per host and 2 for the job")
    return np.ascontiguousarray(obs, dtype=np.float32), _as_int8(masks)


def _as_int8(masks: np.ndarray) -> np.ndarray:
    m = np.ascontiguousarray(masks)
    if m.dtype == np.bool_ or m.dtype == np.uint8:
        return m.view(np.int8)  # same bytes, no copy
    return m if m.dtype == np.int8 else (m != 0).view(np.int8)


class FusedPlacePolicy:
    def __init__(self, policy: PlacePolicy) -> None:
        import simrs

        state = policy.state_dict()
        self.net = simrs.PlaceNet(
            {k: state[k].detach().cpu().float().reshape(-1).tolist() for k in _WEIGHTS})

    def logits(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Masked logits for a batch: obs [B, hosts * 4 + 2], masks [B, hosts]."""
        obs, masks = _inputs(obs, masks)
        out = np.empty(masks.shape, dtype=np.float32)
        self.net.logits(obs, masks, out)
        return out

    def decide_batch(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Each row's highest-scoring allowed host (the first of equals)."""
        obs, masks = _inputs(obs, masks)
        actions = np.empty(masks.shape[0], dtype=np.int64)
        self.net.decide(obs, masks, actions)
        return actions
