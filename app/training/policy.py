"""Permutation-equivariant policy for `place`: one shared encoder scores every host, so the same
weights serve any number of hosts."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Categorical

HOST_FEATURES = 4
JOB_FEATURES = 2
MASKED_LOGIT = -1e9  # finite, so a fully-masked row never turns into NaN


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.Tanh(), nn.Linear(hidden, out))


class PlacePolicy(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.host_encoder = _mlp(HOST_FEATURES, hidden, hidden)
        self.job_encoder = _mlp(JOB_FEATURES, hidden, hidden)
        self.scorer = _mlp(2 * hidden, hidden, 1)
        self.value_head = _mlp(2 * hidden, hidden, 1)

    def _encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = obs.shape[0]
        hosts = obs[:, :-JOB_FEATURES].reshape(batch, -1, HOST_FEATURES)
        job = obs[:, -JOB_FEATURES:]
        host_emb = torch.tanh(self.host_encoder(hosts))  # [B, H, h]
        job_emb = torch.tanh(self.job_encoder(job))  # [B, h]
        return host_emb, job_emb

    def logits(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        host_emb, job_emb = self._encode(obs)
        pair = torch.cat([host_emb, job_emb.unsqueeze(1).expand_as(host_emb)], dim=-1)
        scores = self.scorer(pair).squeeze(-1)  # [B, H]
        return scores.masked_fill(~mask, MASKED_LOGIT)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        host_emb, job_emb = self._encode(obs)
        return self.value_head(torch.cat([host_emb.mean(dim=1), job_emb], dim=-1)).squeeze(-1)

    def act(
        self, obs: torch.Tensor, mask: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Samples (or scores the given) action under the mask: action, log-prob, entropy, value."""
        dist = Categorical(logits=self.logits(obs, mask))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.value(obs)

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.logits(obs, mask).argmax(dim=-1)
