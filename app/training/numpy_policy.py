"""A NumPy forward pass (ReLU MLPs) of the `place` policy for CPU inference: the same function as the
PyTorch module (checked by the tests), without PyTorch's per-operation overhead, which
dominates a single decision over a few dozen hosts."""

from __future__ import annotations

import numpy as np

from app.training.policy import HOST_FEATURES, MASKED_LOGIT, PLACE_JOB_FEATURES, PlacePolicy


def _linear(layer: object) -> tuple[np.ndarray, np.ndarray | None]:
    w = layer.weight.detach().cpu().numpy().astype(np.float32).T.copy()  # type: ignore[attr-defined]
    b = layer.bias  # type: ignore[attr-defined]
    return w, (None if b is None else b.detach().cpu().numpy().astype(np.float32))


class NumpyPlacePolicy:
    def __init__(self, policy: PlacePolicy) -> None:
        self.h1 = _linear(policy.host_encoder)
        self.j1 = _linear(policy.job_encoder[0])
        self.j2 = _linear(policy.job_encoder[2])
        self.sh = _linear(policy.score_host)
        self.sj = _linear(policy.score_job)
        self.so = _linear(policy.score_out)

    def logits(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Masked logits for a batch: obs [B, hosts * 4 + 2], masks [B, hosts]."""
        b = obs.shape[0]
        hosts = obs[:, :-PLACE_JOB_FEATURES].reshape(b, -1, HOST_FEATURES)
        # host_inputs: the observed features, then free cores and memory (x (1 - utilisation)).
        hosts = np.concatenate([hosts, hosts[..., 2:4] * (1.0 - hosts[..., 0:2])], axis=-1)
        job = obs[:, -PLACE_JOB_FEATURES:]
        # In place wherever possible: at batch sizes in the thousands, allocating and
        # re-reading the [batch, hosts, hidden] intermediates costs more than the matmuls.
        h = hosts @ self.h1[0]
        h += self.h1[1]
        np.maximum(h, 0, out=h)
        j = np.maximum(job @ self.j1[0] + self.j1[1], 0)
        j = np.maximum(j @ self.j2[0] + self.j2[1], 0)
        s = h @ self.sh[0]
        s += (j @ self.sj[0] + self.sh[1])[:, None, :]
        np.maximum(s, 0, out=s)
        out = (s @ self.so[0])[..., 0]
        out += self.so[1][0]
        out[~masks.astype(bool)] = np.float32(MASKED_LOGIT)
        return out

    def decide_batch(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return self.logits(obs, masks).argmax(axis=1)
