"""Permutation-equivariant policies: shared per-entity networks produce one masked logit per
host or job, so the same weights serve any number of hosts or jobs.

Every policy has the same interface: ``logits(obs, mask)``, ``value(obs)``,
``act(obs, mask, action=None)`` and ``greedy(obs, mask)``.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.distributions import Categorical

HOST_FEATURES = 4
HOST_INPUTS = HOST_FEATURES + 2  # what the place policy's host encoder reads: see host_inputs
PLACE_JOB_FEATURES = 2
JOB_FEATURES = 8
MASKED_LOGIT = -1e9  # finite, so a fully-masked row never turns into NaN


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, out))


def _per_entity(layer: nn.Linear, entities: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """`layer` over every entity of [rows, entities, in] as one batched matmul (`bias`, if
    given, one per row, replaces the layer's). On a CPU, for layers this narrow, it is much
    faster than the matmul over the flattened rows, forward and backward: the place update
    went from 39 to 23 ms per 4,096-row minibatch of 64 hosts."""
    rows = entities.shape[0]
    if bias is None:
        bias = layer.bias.expand(rows, 1, -1)
    return torch.baddbmm(bias, entities, layer.weight.t().expand(rows, -1, -1))


class MaskedPolicy(nn.Module, abc.ABC):
    """What every mode's policy shares: sampling and scoring under a mask."""

    @abc.abstractmethod
    def logits(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One logit per action, masked actions at MASKED_LOGIT."""

    @abc.abstractmethod
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """The state value, one per row."""

    def heads(self, obs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and value together; policies override it to encode the entities once."""
        return self.logits(obs, mask), self.value(obs)

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.logits(obs, mask)

    def _distribution(self, obs: torch.Tensor,
                      mask: torch.Tensor) -> tuple[Categorical, torch.Tensor]:
        logits, value = self.heads(obs, mask)
        # Masked logits are finite by construction; argument checks cost a tenth of a rollout.
        return Categorical(logits=logits, validate_args=False), value

    def act(
        self, obs: torch.Tensor, mask: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Samples (or scores the given) action under the mask: action, log-prob, entropy, value."""
        dist, value = self._distribution(obs, mask)
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), value

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, mask: torch.Tensor, uniforms: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A rollout step: `act`'s action, log-prob and value from the same random draw,
        without the entropy, which only the update's loss reads. Given `uniforms` (one in
        [0, 1) per row), the action is drawn from them by inverse CDF: a row's draw then
        depends on its own number only, so data-parallel workers drawing one shared row of
        numbers each sample exactly what one worker would."""
        dist, value = self._distribution(obs, mask)
        action = dist.sample() if uniforms is None else inverse_cdf(dist.probs, uniforms)
        return action, dist.log_prob(action), value

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.logits(obs, mask).argmax(dim=-1)


def inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Per row, the first action whose cumulative probability passes the row's uniform.
    Masked actions have probability 0, so they are never first; a uniform that rounding
    carries past the last positive probability falls back to the row's likeliest action."""
    cdf = probs.cumsum(-1)
    target = (uniforms * cdf[:, -1]).unsqueeze(-1)
    action = torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)
    invalid = probs.gather(1, action.unsqueeze(-1)).squeeze(-1) <= 0
    if bool(invalid.any()):
        action = torch.where(invalid, probs.argmax(-1), action)
    return action


def fused_on(policy: MaskedPolicy, obs: torch.Tensor) -> bool:
    """Whether this call goes through simrs's fused pass: the policy asked for it, and the
    batch is float32 on a CPU."""
    return bool(getattr(policy, "fused", False)) and obs.device.type == "cpu" \
        and obs.dtype == torch.float32


def free_resources(hosts: torch.Tensor) -> torch.Tensor:
    """Each host's free cores and free memory, over the largest host's."""
    return hosts[..., 2:4] * (1.0 - hosts[..., 0:2])


def host_inputs(hosts: torch.Tensor) -> torch.Tensor:
    """Each host's 4 observed features (core and memory utilisation, cores and memory over
    the largest host's) beside its free cores and free memory on the same scale. Best-fit
    ranks hosts by what is free, a product of two observed features that a one-layer encoder
    can only approximate; given directly, packing by either resource is a linear score (on a
    memory-bound workload the policy has to pack memory, not cores: docs/benchmarks.md)."""
    return torch.cat([hosts, free_resources(hosts)], dim=-1)


ALIGNMENT_INPUTS = 4
# The products are a few hundredths apart from host to host, and Adam moves a weight by
# about lr a step: scaled up, the weights an imitation reaches separate hosts by logits of a
# few units, as Tetris's choices need. Imitating sjf+tetris (pretrained/hier-160hosts.toml)
# copied 90.7% of its decisions without the term, 92.6% with a gain of 100, 95.8% with 1000.
ALIGNMENT_GAIN = 1000.0


def alignment_inputs(chosen: torch.Tensor, hosts: torch.Tensor) -> torch.Tensor:
    """The chosen job's cores and memory times each host's free cores and free memory, the
    four products ``(rows, hosts, 4)``, times ALIGNMENT_GAIN. Tetris's alignment score
    (Grandl et al. 2014) is a weighting of two of them: a job-times-host product that
    per-host layers, which see the job only through a shared vector added to each host's,
    can only approximate."""
    demand = chosen[:, 2:4]
    free = free_resources(hosts)
    return (demand[:, None, :, None] * free[:, :, None, :]).flatten(-2) * ALIGNMENT_GAIN


class PlacePolicy(MaskedPolicy):
    """`place`: a host encoder over each host's 4 features (and its free cores and memory,
    `host_inputs`) and a job encoder over the job's 2, combined into one logit per host; the
    value head reads pooled host embeddings.

    Per-host work is what an update costs (rows x hosts x hidden, memory-bound on a CPU), so
    the host side is kept to two layers: a one-layer host encoder, then the scorer's layer
    over [host; job]. The scorer's layer is split into a per-host and a per-job part (the same
    function as one layer over the concatenation), so the job's share is computed once per
    decision instead of once per host."""

    # A class default too: a module pickled before the option existed (an MLflow model)
    # unpickles without the instance attribute.
    fused = False

    def __init__(self, hidden: int = 64, fused: bool = False) -> None:
        super().__init__()
        # On a CPU, the per-host layers through simrs's fused pass (host_layers.py): the
        # same function and gradients, about twice as fast as PyTorch's layers.
        self.fused = fused
        self.host_encoder = nn.Linear(HOST_INPUTS, hidden)
        self.job_encoder = _mlp(PLACE_JOB_FEATURES, hidden, hidden)
        self.score_host = nn.Linear(hidden, hidden)
        self.score_job = nn.Linear(hidden, hidden, bias=False)
        self.score_out = nn.Linear(hidden, 1)
        self.value_head = _mlp(2 * hidden, hidden, 1)

    def _encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = obs.shape[0]
        hosts = obs[:, :-PLACE_JOB_FEATURES].reshape(batch, -1, HOST_FEATURES)
        job = obs[:, -PLACE_JOB_FEATURES:]
        # ReLU in place: a matmul's backward never reads its output, and the
        # [rows, hosts, hidden] intermediates are the update's main memory traffic.
        return (torch.relu_(_per_entity(self.host_encoder, host_inputs(hosts))),
                torch.relu(self.job_encoder(job)))

    def _logits(self, host_emb: torch.Tensor, job_emb: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        per_row = (self.score_host.bias + self.score_job(job_emb)).unsqueeze(1)
        hidden = torch.relu_(_per_entity(self.score_host, host_emb, bias=per_row))
        logits = torch.matmul(hidden, self.score_out.weight[0]) + self.score_out.bias
        return logits.masked_fill(~mask, MASKED_LOGIT)

    def _value(self, host_emb: torch.Tensor, job_emb: torch.Tensor) -> torch.Tensor:
        # A sum scaled afterwards: its backward broadcasts the gradient as a view, where a
        # mean's would write a [rows, hosts, hidden] tensor.
        pooled = host_emb.sum(dim=1) * (1.0 / host_emb.shape[1])
        return self.value_head(torch.cat([pooled, job_emb], dim=-1)).squeeze(-1)

    def _fused_heads(self, obs: torch.Tensor,
                     mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from app.training.host_layers import fused_host_layers

        job_emb = torch.relu(self.job_encoder(obs[:, -PLACE_JOB_FEATURES:]))
        share = self.score_host.bias + self.score_job(job_emb)
        logits, pooled = fused_host_layers(obs, mask, share, self.host_encoder,
                                           self.score_host, self.score_out)
        return logits, self.value_head(torch.cat([pooled, job_emb], dim=-1)).squeeze(-1)

    def logits(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if fused_on(self, obs):
            return self._fused_heads(obs, mask)[0]
        return self._logits(*self._encode(obs), mask)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        if fused_on(self, obs):
            # No host allowed: the fused pass then only encodes the hosts for the mean.
            nothing = torch.zeros(obs.shape[0], (obs.shape[1] - PLACE_JOB_FEATURES)
                                  // HOST_FEATURES, dtype=torch.bool)
            return self._fused_heads(obs, nothing)[1]
        return self._value(*self._encode(obs))

    def heads(self, obs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if fused_on(self, obs):
            return self._fused_heads(obs, mask)
        host_emb, job_emb = self._encode(obs)
        return self._logits(host_emb, job_emb, mask), self._value(host_emb, job_emb)


LOG_FLOOR = 1e-5  # the observation's smallest value; log(1e-5) / LOG_SCALE is -1
LOG_SCALE = 11.6


def with_logs(jobs: torch.Tensor) -> torch.Tensor:
    """Each job feature beside its scaled logarithm. The features are linear in [0, 1] and
    heavy-tailed (on lublin_256 the median requested time is 0.1% of the longest), so a
    small ReLU network cannot tell short jobs apart without a log scale (heuristics such as
    F1 work on log10 of the request for the same reason)."""
    return torch.cat([jobs, torch.log(jobs.clamp(min=LOG_FLOOR)) / LOG_SCALE], dim=-1)


def _with_logs_packed(packed: Any) -> Any:
    """Packed jobs (entity_layers.Packed) with their features' logarithms beside them: taken
    after packing, so only the filled slots pay for the logarithm."""
    return packed._replace(x=with_logs(packed.x))


class _Slots(NamedTuple):
    """A window's slots packed: only the filled ones are embedded."""

    emb: torch.Tensor  # [packed slots, hidden]
    rows: torch.Tensor  # [packed slots]: the row each belongs to
    active: torch.Tensor  # [rows, window] bool: which slots were packed
    pooled: torch.Tensor  # [rows, hidden]: the mean embedding of each row's filled slots


class PickPolicy(MaskedPolicy):
    """`pick`: RLScheduler's kernel design, one shared scorer over each window slot's 8
    features (and their logarithms); the value head reads the mean embedding of the filled
    slots.

    With `context`, each slot's score also reads that mean embedding (through one linear
    layer added before the scorer's ReLU), so the same job can score differently in a long
    queue than in a short one; without it every slot is scored alone, as in RLScheduler."""

    fused = False  # a class default: modules pickled before the option unpickle without it

    def __init__(self, hidden: int = 64, context: bool = False, fused: bool = False) -> None:
        super().__init__()
        # On a CPU, the per-slot layers through simrs's fused pass (entity_layers.py); the
        # window context reads the pooled embedding inside the scorer, so it stays in PyTorch.
        self.fused = fused and not context
        self.encoder = _mlp(2 * JOB_FEATURES, hidden, hidden)
        self.scorer = _mlp(hidden, hidden, 1)
        self.value_head = _mlp(hidden, hidden, 1)
        self.context = nn.Linear(hidden, hidden, bias=False) if context else None

    def _jobs(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.reshape(obs.shape[0], -1, JOB_FEATURES)

    def _embed(self, jobs: torch.Tensor, mask: torch.Tensor | None = None) -> _Slots:
        """Embeddings of the filled slots (and any other the mask allows) only: a window is
        mostly empty (on lublin_256 a median of 16-24 of 128 slots are filled), so packing
        the filled slots makes an update several times cheaper than scoring all 128."""
        # Empty slots read [0, 1, 1, 1, 1, 1, 1, 0]: their last feature (can start) is 0;
        # filled slots have can-start > 0.
        filled = jobs[..., 7] > 0
        active = filled if mask is None else filled | mask
        rows = active.nonzero(as_tuple=True)[0]  # the row of each packed slot, in order
        emb = torch.relu(self.encoder(with_logs(jobs[active])))
        weight = filled[active].unsqueeze(-1).to(emb.dtype)
        count = filled.sum(1, keepdim=True).clamp(min=1).to(emb.dtype)
        pooled = emb.new_zeros(jobs.shape[0], emb.shape[1]).index_add_(0, rows, emb * weight)
        return _Slots(emb, rows, active, pooled / count)

    def _logits(self, slots: _Slots, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.scorer[0](slots.emb)
        if self.context is not None:
            hidden = hidden + self.context(slots.pooled)[slots.rows]  # once per row
        score = self.scorer[2](torch.relu(hidden)).squeeze(-1)
        logits = score.new_full(slots.active.shape, MASKED_LOGIT)
        logits = logits.masked_scatter(slots.active, score)  # row-major, as packed
        return logits.masked_fill(~mask, MASKED_LOGIT)

    def _fused_heads(self, obs: torch.Tensor,
                     mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """`heads` through the fused pass; without a mask, the value alone (no slot scored)."""
        from app.training.entity_layers import fused_entity_layers, pack

        jobs = self._jobs(obs)
        filled = jobs[..., 7] > 0
        scored = torch.zeros_like(filled) if mask is None else mask
        weight = filled / filled.sum(1, keepdim=True).clamp(min=1)
        packed = _with_logs_packed(pack(jobs, filled | scored, weight, scored))
        share = self.scorer[0].bias.expand(obs.shape[0], -1)
        score, pooled = fused_entity_layers(packed, share, self.encoder, self.scorer[0].weight,
                                            self.scorer[2])
        value = self.value_head(pooled).squeeze(-1)
        if mask is None:
            return score, value
        logits = score.new_full(mask.shape, MASKED_LOGIT).masked_scatter(filled | mask, score)
        return logits.masked_fill(~mask, MASKED_LOGIT), value

    def logits(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if fused_on(self, obs):
            return self._fused_heads(obs, mask)[0]
        return self._logits(self._embed(self._jobs(obs), mask), mask)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        if fused_on(self, obs):
            return self._fused_heads(obs, None)[1]
        return self.value_head(self._embed(self._jobs(obs)).pooled).squeeze(-1)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, mask: torch.Tensor, uniforms: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not fused_on(self, obs):
            return super().sample(obs, mask, uniforms)
        # On the fused layers a rollout step is one call into simrs, the same draw.
        from app.training.pick_update import fused_sample

        return fused_sample(self, obs, mask, uniforms)

    def heads(self, obs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if fused_on(self, obs):
            return self._fused_heads(obs, mask)
        slots = self._embed(self._jobs(obs), mask)
        return self._logits(slots, mask), self.value_head(slots.pooled).squeeze(-1)


class HierarchicalPolicy(MaskedPolicy):
    """`hierarchical`: a job head over the queue's rows, then a host head over the hosts
    conditioned on the chosen job (both shared per-entity scorers). The observation's first
    value says which phase the row is in; logits are padded to the action space. Jobs are
    read with their features' logarithms (`with_logs`), as in `pick`: shortest-first needs
    requested times told apart that differ by seconds out of a day; hosts with their free
    cores and memory (`host_inputs`), as in `place`: best-fit ranks hosts by what is free."""

    fused = False  # a class default: modules pickled before the option unpickle without it

    def __init__(self, num_hosts: int, hidden: int = 64, fused: bool = False,
                 host_alignment: bool = False) -> None:
        super().__init__()
        # On a CPU, the job and host heads through simrs's fused pass (entity_layers.py).
        self.fused = fused
        if host_alignment:
            # Zero at the start: the host head begins as the per-host scorer alone.
            self.alignment = nn.Linear(ALIGNMENT_INPUTS, 1, bias=False)
            nn.init.zeros_(self.alignment.weight)
        self.num_hosts = num_hosts
        self.job_encoder = _mlp(2 * JOB_FEATURES, hidden, hidden)
        self.host_encoder = _mlp(HOST_INPUTS, hidden, hidden)
        self.job_scorer = _mlp(hidden, hidden, 1)
        self.host_scorer = _mlp(2 * hidden, hidden, 1)
        self.value_head = _mlp(2 * hidden + 1, hidden, 1)

    def _split(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = obs.shape[0]
        phase = obs[:, 0]
        chosen = obs[:, 1:1 + JOB_FEATURES]
        h_end = 1 + JOB_FEATURES + self.num_hosts * HOST_FEATURES
        hosts = obs[:, 1 + JOB_FEATURES:h_end].reshape(b, self.num_hosts, HOST_FEATURES)
        jobs = obs[:, h_end:].reshape(b, -1, JOB_FEATURES)
        return phase, chosen, hosts, jobs

    def _fused_heads(self, obs: torch.Tensor,
                     mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """`heads` through the fused pass: the job head over the queue's filled (or allowed)
        slots, the host head over every host (each feeds the value head's mean), each
        scoring only what its phase allows; without a mask, the value alone."""
        from app.training.entity_layers import Packed, fused_entity_layers, pack

        phase, chosen, hosts, jobs = self._split(obs)
        rows, hidden = obs.shape[0], self.job_encoder[0].out_features
        choosing_host = (phase > 0.5).unsqueeze(1)
        filled = jobs[..., 7] > 0
        if mask is None:
            job_scored = torch.zeros_like(filled)
            host_scored = torch.zeros(rows, self.num_hosts, dtype=torch.bool)
        else:
            job_scored = mask[:, :jobs.shape[1]] & ~choosing_host
            host_scored = mask[:, :self.num_hosts] & choosing_host
        active = filled | job_scored
        weight = filled / filled.sum(1, keepdim=True).clamp(min=1)
        job_share = self.job_scorer[0].bias.expand(rows, -1)
        job_score, job_pool = fused_entity_layers(
            _with_logs_packed(pack(jobs, active, weight, job_scored)), job_share,
            self.job_encoder,
            self.job_scorer[0].weight, self.job_scorer[2])
        # The host scorer's layer over [host; chosen job], split: the chosen job's part is
        # one vector per row, computed here once.
        first = self.host_scorer[0]
        chosen_emb = torch.relu(self.job_encoder(with_logs(chosen)))
        host_share = nn.functional.linear(chosen_emb, first.weight[:, hidden:], first.bias)
        every_host = Packed(host_inputs(hosts).reshape(-1, HOST_INPUTS),
                            torch.arange(0, rows * self.num_hosts + 1, self.num_hosts),
                            hosts.new_full((rows * self.num_hosts,), 1.0 / self.num_hosts),
                            host_scored.reshape(-1))
        host_score, host_pool = fused_entity_layers(every_host, host_share, self.host_encoder,
                                                    first.weight[:, :hidden],
                                                    self.host_scorer[2])
        value = self.value_head(torch.cat([job_pool, host_pool, phase.unsqueeze(1)], -1)) \
            .squeeze(-1)
        if mask is None:
            return job_score, value
        if self._alignment_layer() is not None:
            host_score = host_score + self._alignment(chosen, hosts).reshape(-1)
        width = mask.shape[1]
        job_logits = job_score.new_zeros(jobs.shape[:2]).masked_scatter(active, job_score)
        padded_jobs = nn.functional.pad(job_logits, (0, width - job_logits.shape[1]))
        padded_hosts = nn.functional.pad(host_score.view(rows, self.num_hosts),
                                         (0, width - self.num_hosts))
        out = torch.where(choosing_host, padded_hosts, padded_jobs)
        return out.masked_fill(~mask, MASKED_LOGIT), value

    def _alignment_layer(self) -> nn.Module | None:
        # A registered module with host_alignment (not a class default, which would shadow
        # it); absent from modules made or pickled without the option.
        return self._modules.get("alignment")

    def _alignment(self, chosen: torch.Tensor, hosts: torch.Tensor) -> torch.Tensor:
        layer = self._alignment_layer()
        assert layer is not None
        return layer(alignment_inputs(chosen, hosts)).squeeze(-1)

    def heads(self, obs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if fused_on(self, obs):
            return self._fused_heads(obs, mask)
        return self.logits(obs, mask), self.value(obs)

    def logits(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if fused_on(self, obs):
            return self._fused_heads(obs, mask)[0]
        phase, chosen, hosts, jobs = self._split(obs)
        job_logits = self.job_scorer(torch.relu(self.job_encoder(with_logs(jobs)))).squeeze(-1)
        host_emb = torch.relu(self.host_encoder(host_inputs(hosts)))
        chosen_emb = torch.relu(self.job_encoder(with_logs(chosen))).unsqueeze(1) \
            .expand_as(host_emb)
        host_logits = self.host_scorer(torch.cat([host_emb, chosen_emb], -1)).squeeze(-1)
        if self._alignment_layer() is not None:
            host_logits = host_logits + self._alignment(chosen, hosts)
        width = mask.shape[1]
        padded_jobs = nn.functional.pad(job_logits, (0, width - job_logits.shape[1]))
        padded_hosts = nn.functional.pad(host_logits, (0, width - host_logits.shape[1]))
        out = torch.where(phase.unsqueeze(1) > 0.5, padded_hosts, padded_jobs)
        return out.masked_fill(~mask, MASKED_LOGIT)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        if fused_on(self, obs):
            return self._fused_heads(obs, None)[1]
        phase, _chosen, hosts, jobs = self._split(obs)
        filled = (jobs[..., 7] > 0).float().unsqueeze(-1)
        job_emb = torch.relu(self.job_encoder(with_logs(jobs)))
        job_pool = (job_emb * filled).sum(1) / filled.sum(1).clamp(min=1.0)
        host_pool = torch.relu(self.host_encoder(host_inputs(hosts))).mean(1)
        return self.value_head(torch.cat([job_pool, host_pool, phase.unsqueeze(1)], -1)) \
            .squeeze(-1)


def make_policy(mode: str, hidden: int, num_hosts: int, pick_context: bool = False,
                fused: bool = False, host_alignment: bool = False) -> MaskedPolicy:
    """`fused`: the per-entity layers through simrs's fused pass on a CPU."""
    if mode == "place":
        return PlacePolicy(hidden, fused=fused)
    if mode == "pick":
        return PickPolicy(hidden, context=pick_context, fused=fused)
    if mode == "hierarchical":
        return HierarchicalPolicy(num_hosts, hidden, fused=fused, host_alignment=host_alignment)
    raise ValueError(f"unknown mode {mode!r}")
