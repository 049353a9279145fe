"""The `place` policy's per-host layers in training, through simrs's fused forward and
backward pass (simrs/src/nn/place_train.rs) as one autograd function.

PyTorch runs these layers one at a time over `[rows, hosts, hidden]` tensors and its backward
writes and re-reads several more of them; on a CPU that memory traffic was most of what a PPO
update cost. The fused pass keeps each host's vectors in registers and recomputes them in the
backward instead of storing them. It is the same function with the same gradients (the tests
check both against the PyTorch layers); the job's side and the value head stay in PyTorch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from app.training.config import FUSED_MAX_HIDDEN


def use_fused(host_layers: str, mode: str, hidden: int, device: torch.device) -> bool:
    """Whether a run's per-entity layers go through simrs's fused pass (this module's for
    `place`, entity_layers.py's for `pick` and `hierarchical`): asked for, or `auto` on a
    CPU with a width it supports, in the modes where it is the faster.

    `auto` leaves `pick` in PyTorch: the shipped pick recipes were trained, and their
    checkpoints scored, through PyTorch's layers, so their commands still repeat them.
    `fused` trains `pick` through simrs's whole minibatch and rollout step
    (pick_update.py): faster with two threads or more, level with PyTorch on one
    (`oppen bench train --mode pick`: docs/benchmarks.md)."""
    if device.type != "cpu":
        return False
    if host_layers == "fused":
        return True
    return host_layers == "auto" and mode != "pick" and hidden <= FUSED_MAX_HIDDEN


def numpy_view(t: torch.Tensor) -> Any:
    """A NumPy view of a CPU tensor's values (no copy when already contiguous)."""
    return t.detach().contiguous().numpy()


class _FusedHostLayers(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, obs: torch.Tensor, mask: torch.Tensor, share: torch.Tensor,
                w1: torch.Tensor, b1: torch.Tensor, ws: torch.Tensor, wo: torch.Tensor,
                bo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import simrs

        obs, share = obs.detach().contiguous(), share.detach().contiguous()
        masks = mask.detach().contiguous().view(torch.int8)  # bool's bytes, no copy
        layers = simrs.PlaceHostLayers(numpy_view(w1), numpy_view(b1), numpy_view(ws), numpy_view(wo),
                                       float(bo))
        logits = obs.new_empty(mask.shape)
        pooled = obs.new_empty(mask.shape[0], b1.shape[0])
        layers.forward(obs.numpy(), masks.numpy(), share.numpy(), logits.numpy(),
                       pooled.numpy())
        # The weights do not change between this forward and its backward: keep the layers.
        ctx.layers = layers
        ctx.save_for_backward(obs, masks, share)
        ctx.shapes = (w1.shape, b1.shape, ws.shape, wo.shape, bo.shape)
        return logits, pooled

    @staticmethod
    def backward(ctx: Any, g_logits: torch.Tensor | None,
                 g_pooled: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        obs, masks, share = ctx.saved_tensors
        if g_logits is None:
            g_logits = obs.new_zeros(masks.shape)
        if g_pooled is None:
            g_pooled = share.new_zeros(share.shape)
        g_share = torch.empty_like(share)
        grads = ctx.layers.backward(obs.numpy(), masks.numpy(), share.numpy(),
                                    numpy_view(g_logits), numpy_view(g_pooled), g_share.numpy())
        w1, b1, ws, wo, bo = (torch.tensor(g, dtype=obs.dtype).reshape(shape)
                              for g, shape in zip(grads, ctx.shapes, strict=True))
        return None, None, g_share, w1, b1, ws, wo, bo


def fused_host_layers(obs: torch.Tensor, mask: torch.Tensor, share: torch.Tensor,
                      host_encoder: nn.Linear, score_host: nn.Linear,
                      score_out: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked logits `[rows, hosts]` and mean host embeddings `[rows, hidden]` of CPU float32
    observations under a bool mask, `share` `[rows, hidden]` being the job's part of the
    scorer's input (score_host's bias included: its weight's gradient comes from here, the
    bias's through `share`)."""
    return _FusedHostLayers.apply(obs, mask, share, host_encoder.weight, host_encoder.bias,
                                  score_host.weight, score_out.weight, score_out.bias)
