"""The shipped policies (pretrained/ in the checkout): where they are from any folder, and
what one of them buys over the heuristics, measured afresh."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PLACE_POLICY = "place-64hosts-mem.pt"


def pretrained_dir() -> Path | None:
    """OPPEN_PRETRAINED_DIR, else pretrained/ beside the installed package (a checkout or an
    editable install); None when neither exists."""
    explicit = os.environ.get("OPPEN_PRETRAINED_DIR")
    candidates = [Path(explicit).expanduser()] if explicit else []
    candidates.append(Path(__file__).resolve().parents[2] / "pretrained")
    return next((c for c in candidates if c.is_dir()), None)


@dataclass(frozen=True)
class Gain:
    checkpoint: Path
    seeds: list[int]
    waits: dict[str, float]  # mean wait (s) per policy or heuristic

    def against(self, heuristic: str) -> float:
        """PPO's mean wait relative to the heuristic's: -0.066 is 6.6% less."""
        return self.waits["ppo"] / self.waits[heuristic] - 1


def place_gain(seeds: list[int]) -> Gain | None:
    """The shipped place policy against its heuristics on ``seeds`` (a 1,000-job episode
    each: about 5 s per seed here); None without the shipped policies."""
    import torch

    from app.training.evaluate import baselines, evaluate_config, policy_chooser
    from app.training.inference import LoadedPolicy

    folder = pretrained_dir()
    if folder is None or not (folder / PLACE_POLICY).is_file():
        return None
    path = folder / PLACE_POLICY
    loaded = LoadedPolicy.from_checkpoint(path)
    choosers = {"ppo": policy_chooser(loaded.policy, torch.device("cpu")),
                **baselines(loaded.config.mode)}
    table = evaluate_config(loaded.config, choosers, seeds)
    return Gain(path, seeds, {k: v["mean_wait_s"] for k, v in table.items()})
