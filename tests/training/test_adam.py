"""Oppen's Adam (app/training/adam.py) steps bit for bit as torch.optim.Adam does, shares its
state_dict layout both ways, refuses states it cannot continue, and keeps a training
process from importing torch._dynamo (the reason it exists)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from app.training.adam import Adam
from tests.support.paths import REPO


def _network(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


def _steps(net: nn.Module, optimizer: object, count: int, first: int = 0) -> None:
    for i in range(first, first + count):
        gen = torch.Generator().manual_seed(1000 + i)
        x = torch.randn(32, 5, generator=gen)
        optimizer.param_groups[0]["lr"] = 3e-3 / (1 + i)  # as PPO anneals it
        optimizer.zero_grad()
        loss = (net(x) ** 2).mean()
        if i % 4 == 3:  # a step where the last layer has no gradient: skipped by both
            loss = net[0](x).pow(2).mean()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        optimizer.step()


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_steps_are_bit_for_bit_torchs() -> None:
    ours, theirs = _network(0), _network(0)
    _steps(ours, Adam(ours.parameters(), lr=1e-3, eps=1e-5), 25)
    _steps(theirs, torch.optim.Adam(theirs.parameters(), lr=1e-3, eps=1e-5), 25)
    assert _same(ours, theirs)
    assert not _same(ours, _network(0))  # it did train


@pytest.mark.parametrize("saved_by", ["torch", "oppen"])
def test_a_state_saved_by_either_continues_in_the_other(saved_by: str) -> None:
    first, second = (torch.optim.Adam, Adam) if saved_by == "torch" else (Adam, torch.optim.Adam)
    net = _network(1)
    optimizer = first(net.parameters(), lr=1e-3, eps=1e-5)
    _steps(net, optimizer, 10)
    resumed = _network(2)
    resumed.load_state_dict(net.state_dict())
    other = second(resumed.parameters(), lr=0.5, eps=0.5)
    other.load_state_dict(optimizer.state_dict())
    assert other.param_groups[0]["eps"] == 1e-5  # the saved options win, as in torch
    _steps(resumed, other, 10, first=10)
    # Against one torch.optim.Adam all the way through.
    reference = _network(1)
    _steps(reference, torch.optim.Adam(reference.parameters(), lr=1e-3, eps=1e-5), 20)
    assert _same(resumed, reference)


def test_the_saved_layout_is_torchs() -> None:
    net = _network(3)
    ours, theirs = Adam(net.parameters(), lr=1e-3, eps=1e-5), \
        torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-5)
    _steps(net, ours, 1)
    _steps(net, theirs, 1)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for index, entry in a["state"].items():
        assert entry.keys() == b["state"][index].keys()
        assert entry["step"].dtype == b["state"][index]["step"].dtype == torch.float32


@pytest.mark.parametrize("change, message", [
    (lambda s: s["param_groups"][0].update(amsgrad=True), "amsgrad=True"),
    (lambda s: s["param_groups"][0].update(weight_decay=0.1), "weight_decay=0.1"),
    (lambda s: s["param_groups"][0]["params"].pop(), "has 3 parameters, this network 4"),
    (lambda s: s["state"][0].update(exp_avg=torch.zeros(2, 2)), "has shape (2, 2)"),
    (lambda s: s.pop("param_groups"), "not an Adam state"),
    (lambda s: s["state"].update({1: "junk"}), "malformed"),
    (lambda s: s["state"][2].pop("exp_avg_sq"), "malformed"),
    (lambda s: s["state"][0].update(exp_avg=[1.0, 2.0]), "has shape ()"),
    (lambda s: s["param_groups"][0].update(betas=(0.9,)), "betas=(0.9,)"),
    (lambda s: s["param_groups"][0].update(lr="fast"), "malformed"),
    (lambda s: s["param_groups"].append(dict(s["param_groups"][0])), "not an Adam state"),
])
def test_a_state_it_cannot_continue_is_refused_and_the_old_one_kept(change: object,
                                                                    message: str) -> None:
    net = _network(4)
    source = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-5)
    _steps(net, source, 3)
    state = source.state_dict()
    change(state)
    target = Adam(net.parameters(), lr=1e-3, eps=1e-5)
    _steps(net, target, 1)
    before = target.state_dict()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        target.load_state_dict(state)
    after = target.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert all(torch.equal(after["state"][i]["exp_avg"], before["state"][i]["exp_avg"])
               for i in before["state"])


def test_a_training_run_does_not_import_torch_dynamo() -> None:
    """torch.optim's Optimizer imports torch._dynamo (about 2.3 s of CPU) on construction and
    every step; a PPO update with imitation first must not."""
    script = (
        "import sys\n"
        "from app.training.config import TrainConfig\n"
        "from app.training.ppo import train\n"
        "train(TrainConfig(total_timesteps=256, num_envs=2, rollout_steps=64,\n"
        "                  episode_length=16, eval_every=0, imitate='first_fit',\n"
        "                  imitate_steps=64, imitate_epochs=1))\n"
        "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_a_checkpoint_whose_optimizer_state_does_not_fit_is_refused_in_words() -> None:
    from app.core.errors import ConfigError
    from app.training.config import TrainConfig
    from app.training.ppo import Trainer

    cfg = TrainConfig(total_timesteps=128, num_envs=2, rollout_steps=64, episode_length=16)
    trainer = Trainer(cfg)
    trainer.run()
    state = trainer.state_dict()
    state["optimizer"]["param_groups"][0]["amsgrad"] = True
    with pytest.raises(ConfigError, match="the checkpoint to resume: .*amsgrad=True"):
        Trainer(cfg).load_state_dict(state)
