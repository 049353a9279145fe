"""Checkpoints: everything needed to continue a run exactly, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.core.errors import ConfigError, NotFoundError

FORMAT_VERSION = 1


def save(path: Path, state: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"format_version": FORMAT_VERSION, **state}, tmp)
    os.replace(tmp, path)  # a reader (or a crash) never sees half a checkpoint
    return path


def load(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem to a person
        raise ConfigError(f"{p}: not a readable checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{p}: not an Oppen checkpoint (or an unsupported version)")
    return state


def restore_weights(network: nn.Module, weights: dict[str, Any], source: str) -> None:
    """Loads a checkpoint's weights, naming a network that does not match this version's
    (a checkpoint from before an architecture change) instead of failing in PyTorch's words."""
    expected = network.state_dict()
    problems = {
        "missing": sorted(set(expected) - set(weights)),
        "unexpected": sorted(set(weights) - set(expected)),
        "other shape": sorted(k for k in set(expected) & set(weights)
                              if tuple(expected[k].shape) != tuple(weights[k].shape)),
    }
    if any(problems.values()):
        details = "; ".join(f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                            for what, keys in problems.items() if keys)
        raise ConfigError(f"{source}: its {type(network).__name__} does not match this "
                          f"version's network ({details}); it was written by another version "
                          "of Oppen: train it again")
    network.load_state_dict(weights)
