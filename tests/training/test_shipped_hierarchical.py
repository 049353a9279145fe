"""The shipped hierarchical policy (pretrained/hier-160hosts.pt, docs/benchmarks.md): on
held-out episodes of its workload it still beats itself under the job-shop seed's batch
workaround (shown 170 queued jobs at a time), the whole-queue policy's reason to exist, and
every pair of the issue's nine (an FCFS, SJF or F1 job rule with first-fit, best-fit or
best-fit by memory)."""

from __future__ import annotations

import torch

from app.training.config import TrainConfig
from app.training.evaluate import baselines, evaluate_config, policy_choosers
from app.training.inference import LoadedPolicy
from tests.support.paths import REPO

CHECKPOINT = REPO / "pretrained" / "hier-160hosts.pt"
HELD_OUT = [900, 901]  # never trained, evaluated or selected on
# Long enough for the queue to pass 170 jobs for most of the episode (it builds after the
# first few thousand jobs fill the cluster); the full 10,000 is the docs' table.
EPISODE = 6_000
ISSUES_PAIRS = [f"{job}_{host}" for job in ("fcfs", "sjf", "f1")
                for host in ("first_fit", "best_fit", "best_fit_mem")]


def test_the_shipped_hierarchical_policy_still_beats_its_batch_workaround() -> None:
    loaded = LoadedPolicy.from_checkpoint(CHECKPOINT)
    assert loaded.policy.fused  # decisions through simrs's packed layers, as it trained
    cfg = TrainConfig.from_dict({**loaded.config.to_dict(), "episode_length": EPISODE})
    pairs = baselines("hierarchical")
    choosers = {**policy_choosers(loaded.policy, torch.device("cpu"), "hierarchical"),
                **{name: pairs[name] for name in ISSUES_PAIRS}}
    table = evaluate_config(cfg, choosers, HELD_OUT)
    wait = {name: row["mean_wait_s"] for name, row in table.items()}
    assert wait["ppo"] < wait["ppo_batch170"], wait
    assert wait["ppo"] < min(wait[name] for name in ISSUES_PAIRS), wait
