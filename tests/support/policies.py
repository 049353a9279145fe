"""A policy and its twin on simrs's fused layers, for tests that hold the fused path to the
PyTorch one."""

from __future__ import annotations

from typing import Any, TypeVar

import torch

from app.training.policy import MaskedPolicy

P = TypeVar("P", bound=MaskedPolicy)


def fused_pair(make: type[P], seed: int, **kw: Any) -> tuple[P, P]:
    """`make(**kw)` seeded with `seed`, and the same weights with `fused=True`."""
    torch.manual_seed(seed)
    reference = make(**kw)
    fused = make(**kw, fused=True)
    fused.load_state_dict(reference.state_dict())
    return reference, fused
