"""The `pick` and `hierarchical` policies' per-entity layers in training, through simrs's
fused forward and backward pass (simrs/src/nn/entity_train.rs) as one autograd function.

Both policies score each entity (a queued job, a host) with one shared network: a two-layer
encoder, then a scorer's hidden layer (plus a per-row `share`: the layer's bias, and in the
hierarchical host head the chosen job's part) and one logit; the value head reads a weighted
sum of the encoder's outputs per row. PyTorch runs these layers one small matmul at a time
and its backward writes and re-reads each intermediate; the fused pass keeps an entity's
vectors in registers and recomputes them in the backward. Same function, same gradients
(tests/training/test_entity_layers.py checks both against the PyTorch layers); everything
per row (the share, the value head) stays in PyTorch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from app.training.host_layers import numpy_view


class Packed(NamedTuple):
    """Entities packed row by row: row r's are `offsets[r]:offsets[r + 1]` of `x`."""

    x: torch.Tensor  # [entities, inputs] float32
    offsets: torch.Tensor  # [rows + 1] int64
    weight: torch.Tensor  # [entities]: each one's weight in its row's pooled sum
    scored: torch.Tensor  # [entities] bool: whether its logit is needed


def pack(x: torch.Tensor, active: torch.Tensor, weight: torch.Tensor,
         scored: torch.Tensor) -> Packed:
    """`x` `[rows, entities, inputs]` packed to the entities `active` `[rows, entities]`
    selects (row-major, as `masked_scatter` unpacks them); `weight` and `scored` are
    `[rows, entities]` too."""
    counts = active.sum(1)
    offsets = torch.zeros(active.shape[0] + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=offsets[1:])
    return Packed(x[active].contiguous(), offsets, weight[active].contiguous(),
                  scored[active].contiguous())


class _FusedEntityLayers(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, offsets: torch.Tensor, weight: torch.Tensor,
                scored: torch.Tensor, share: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor,
                w2: torch.Tensor, b2: torch.Tensor, ws: torch.Tensor, wo: torch.Tensor,
                bo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import simrs

        x, share = x.detach().contiguous(), share.detach().contiguous()
        flags = scored.detach().contiguous().view(torch.int8)  # bool's bytes, no copy
        layers = simrs.EntityLayers(numpy_view(w1), numpy_view(b1), numpy_view(w2), numpy_view(b2),
                                    numpy_view(ws), numpy_view(wo), float(bo))
        logits = x.new_empty(flags.shape[0])
        pooled = x.new_empty(share.shape)
        layers.forward(x.numpy(), numpy_view(offsets), numpy_view(weight), flags.numpy(),
                       share.numpy(), logits.numpy(), pooled.numpy())
        # The weights do not change between this forward and its backward: keep the layers.
        ctx.layers = layers
        ctx.save_for_backward(x, offsets, weight, flags, share)
        ctx.shapes = (w1.shape, b1.shape, w2.shape, b2.shape, ws.shape, wo.shape, bo.shape)
        return logits, pooled

    @staticmethod
    def backward(ctx: Any, g_logits: torch.Tensor | None,
                 g_pooled: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        x, offsets, weight, flags, share = ctx.saved_tensors
        if g_logits is None:
            g_logits = x.new_zeros(flags.shape[0])
        if g_pooled is None:
            g_pooled = share.new_zeros(share.shape)
        g_share = torch.empty_like(share)
        grads = ctx.layers.backward(x.numpy(), offsets.numpy(), weight.numpy(), flags.numpy(),
                                    share.numpy(), numpy_view(g_logits), numpy_view(g_pooled),
                                    g_share.numpy())
        w1, b1, w2, b2, ws, wo, bo = (torch.tensor(g, dtype=x.dtype).reshape(shape)
                                      for g, shape in zip(grads, ctx.shapes, strict=True))
        return None, None, None, None, g_share, w1, b1, w2, b2, ws, wo, bo


def fused_entity_layers(packed: Packed, share: torch.Tensor, encoder: nn.Sequential,
                        score_weight: torch.Tensor, score_out: nn.Linear
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each packed entity's logit `[entities]` (0 where not scored) and each row's weighted
    sum of entity embeddings `[rows, hidden]`. `encoder` is `Linear, ReLU, Linear` (its
    output goes through a ReLU here), `score_weight` the scorer's hidden layer's weight over
    the embedding and `share` `[rows, hidden]` the rest of that layer's input, bias
    included."""
    first, second = encoder[0], encoder[2]
    return _FusedEntityLayers.apply(packed.x, packed.offsets, packed.weight, packed.scored,
                                    share, first.weight, first.bias, second.weight,
                                    second.bias, score_weight, score_out.weight[0],
                                    score_out.bias)
