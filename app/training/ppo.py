"""PPO with action masks on simrs's vector environment (CleanRL's ppo.py, reorganised into a
Trainer so runs can checkpoint, resume exactly, stop early, and be tested without MLflow).

Episodes restart at every checkpoint boundary (every `checkpoint_every` updates), the cut
episodes bootstrapping from the value of their last state like a time limit. That makes a run
resumed from a checkpoint repeat the uninterrupted run exactly.

Data-parallel (DD-PPO, `num_workers` > 1): each worker steps its shard of the environments,
seeded by their indices in the whole set; all workers draw the same random numbers (the
sampling uniforms for every environment, the minibatch permutation of the whole batch) and
each uses its own part, advantages and returns are gathered so normalisation sees the whole
batch, and gradient sums are all-reduced before clipping. The workers' parameters stay
identical, and match one worker's with the same environments up to float summation order.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app.core.errors import ConfigError, OppenError
from app.training import allocator, checkpoint, distributed, host_layers, imitation, pick_update
from app.training.adam import Adam
from app.training.config import TrainConfig
from app.training.distributed import SOLO, Workers
from app.training.gae import compute_gae
from app.training.normalize import RunningMeanStd
from app.training.policy import JOB_FEATURES, MaskedPolicy, make_policy
from app.training.schedules import learning_rate

MetricsSink = Callable[[dict[str, float], int], None]
Evaluator = Callable[[MaskedPolicy], float]  # lower is better (e.g. mean wait)


def num_hosts_of(cfg: TrainConfig, obs_dim: int | None = None) -> int:
    """Hosts in the environment: configured for synthetic workloads, one pool for traces; for
    a hierarchical observation `1 + 8 + 4 * hosts + 8 * jobs` of known size, read back."""
    if cfg.mode == "hierarchical" and obs_dim is not None:
        return (obs_dim - 1 - JOB_FEATURES - JOB_FEATURES * cfg.episode_length) // 4
    return 1 if cfg.trace else cfg.num_hosts


class TrainingDiverged(OppenError):
    """A loss became NaN or infinite: the run stops with the reason."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA device is available")
    return torch.device(name)


@dataclass
class TrainResult:
    policy: MaskedPolicy
    global_step: int
    iterations: int
    episodes: int
    mean_episode_return: float
    steps_per_second: float
    stopped: str  # completed | sigterm | early_stop
    last_checkpoint: Path | None
    best_eval: float | None
    # Seconds spent in collectives with the other workers (0 for one worker): transfer time
    # plus any wait for a slower peer.
    communication_s: float = 0.0


def _episode_means(episodes: list[tuple[float, dict[str, float]]]) -> dict[str, float]:
    """Per-update means, one MLflow write per update instead of one per episode."""
    if not episodes:
        return {}
    rets = [r for r, _ in episodes]
    metric = lambda k: float(np.mean([m[k] for _, m in episodes]))  # noqa: E731
    return {"charts/episodic_return": float(np.mean(rets)),
            "charts/mean_wait_s": metric("mean_wait_s"),
            "charts/avg_bounded_slowdown": metric("mean_bounded_slowdown"),
            "charts/utilization": metric("utilization"),
            "charts/episodes": float(len(episodes))}


def minibatch_loss(policy: MaskedPolicy, obs: torch.Tensor, mask: torch.Tensor,
                   actions: torch.Tensor, old_logprobs: torch.Tensor, adv: torch.Tensor,
                   targets: torch.Tensor, cfg: TrainConfig,
                   size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's loss on a minibatch's rows, the sums over them divided by the whole minibatch's
    `size`, and the sums `[policy, value, entropy, approx_kl, clipped]` (detached)."""
    # The stored mask makes the new log-prob comparable with the old one.
    _, newlogprob, entropy, newvalue = policy.act(obs, mask, actions)
    logratio = newlogprob - old_logprobs
    ratio = logratio.exp()
    pg_sum = torch.max(
        -adv * ratio,
        -adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef),
    ).sum()
    v_sum = 0.5 * ((newvalue - targets) ** 2).sum()
    entropy_sum = entropy.sum()
    loss = (pg_sum - cfg.ent_coef * entropy_sum + cfg.vf_coef * v_sum) / size
    with torch.no_grad():
        sums = torch.stack([pg_sum, v_sum, entropy_sum, ((ratio - 1) - logratio).sum(),
                            ((ratio - 1.0).abs() > cfg.clip_coef).float().sum()])
    return loss, sums


class Trainer:
    def __init__(self, cfg: TrainConfig, log: MetricsSink | None = None,
                 checkpoint_dir: Path | None = None, stop: threading.Event | None = None,
                 evaluator: Evaluator | None = None, envs: Any = None,
                 workers: Workers = SOLO) -> None:
        import simrs

        self.cfg = cfg
        self.workers = workers
        # Rank 0 alone logs, checkpoints and evaluates; the others only train.
        self.log = (log if workers.leader else None) or (lambda _m, _s: None)
        self.checkpoint_dir = checkpoint_dir if workers.leader else None
        self.stop = stop or threading.Event()
        self.evaluator = evaluator if workers.leader else None
        self.device = distributed.worker_device(resolve_device(cfg.device))
        allocator.keep_freed_memory()  # a training process reuses its large tensors' pages
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)  # local generator: no global reseeding
        # `envs` replaces simrs's batch env with anything of the same interface (benchmarks).
        if envs is None:
            options = cfg.env_options()
            if cfg.versus:
                options["versus"] = cfg.versus  # training episodes only; evaluation stays plain
            first, count = workers.shard(cfg.num_envs)
            if workers.world > 1:
                options["first_index"] = first
            envs = simrs.BatchEnv(cfg.mode, count, cfg.env_config(), cfg.seed, **options)
        self.envs = envs
        fused = host_layers.use_fused(cfg.host_layers, cfg.mode, cfg.hidden, self.device)
        self.policy = make_policy(cfg.mode, cfg.hidden, num_hosts_of(cfg, self.envs.obs_dim),
                                  cfg.pick_context, fused=fused,
                                  host_alignment=cfg.host_alignment).to(self.device)
        self.optimizer = Adam(self.policy.parameters(), lr=cfg.lr, eps=1e-5)
        self.value_rms = RunningMeanStd()
        self.communication_s = 0.0
        self._same_start()
        self.iteration = 0
        self.global_step = 0
        self.episodes = 0
        self.best_eval: float | None = None
        self.best_state: dict[str, Any] | None = None
        self.evals_without_improvement = 0
        self.last_checkpoint: Path | None = None
        # Saved with every checkpoint, e.g. the MLflow run id a resumed run reopens.
        self.extra_state: dict[str, Any] = {}
        # Called with each step checkpoint once written (a job's durable store publishes it).
        self.on_checkpoint: Callable[[Path, int], None] | None = None
        # A sweep's trial: told each evaluation (value as the evaluator returns it, step);
        # True stops the run as pruned.
        self.on_evaluation: Callable[[float, int], bool] | None = None

    # ------------------------------------------------------------ state
    def _same_start(self) -> None:
        """Every worker starts from rank 0's parameters (a warm start or a restored state
        computed on several machines could differ in the last bits)."""
        if self.workers.world > 1:
            for tensor in self.policy.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    def _rng_state(self) -> dict[str, Any]:
        state = {"torch_rng": torch.get_rng_state(), "numpy_rng": self.rng.bit_generator.state}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def state_dict(self) -> dict[str, Any]:
        state = {
            "config": self.cfg.to_dict(),
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "value_rms": self.value_rms.state_dict(),
            **self._rng_state(),
            "num_workers": self.workers.world,
            "iteration": self.iteration,
            "global_step": self.global_step,
            "episodes": self.episodes,
            "best_eval": self.best_eval,
            "best_state": self.best_state,
            "evals_without_improvement": self.evals_without_improvement,
            **self.extra_state,
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        checkpoint.restore_weights(self.policy, state["policy"], "the checkpoint to resume")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:
            raise ConfigError(f"the checkpoint to resume: {exc}; it was not written by this "
                              "network's training") from None
        self.value_rms.load_state_dict(state["value_rms"])
        # Each worker's own generators when the count is the same; they hold the same state
        # by construction (every worker draws the same numbers), so rank 0's serve any count.
        ranks = state.get("rank_rng") or []
        rng = ranks[self.workers.rank] if len(ranks) == self.workers.world else state
        torch.set_rng_state(rng["torch_rng"])
        self.rng.bit_generator.state = rng["numpy_rng"]
        if "cuda_rng" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda_rng"])
        self._same_start()
        self.iteration = state["iteration"]
        self.global_step = state["global_step"]
        self.episodes = state["episodes"]
        self.best_eval = state["best_eval"]
        self.best_state = state["best_state"]
        self.evals_without_improvement = state["evals_without_improvement"]

    def init_from(self, state: dict[str, Any]) -> None:
        """Starts from a trained policy's weights (transfer); everything else is fresh."""
        checkpoint.restore_weights(self.policy, state["policy"], "the checkpoint to start from")
        if state.get("value_rms"):
            self.value_rms.load_state_dict(state["value_rms"])

    def save_checkpoint(self, tag: str) -> Path | None:
        # Called by every worker at the same updates: the RNG states are gathered to rank 0.
        ranks = self.workers.gather(self._rng_state()) if self.workers.world > 1 else None
        if self.checkpoint_dir is None:
            return None
        state = self.state_dict()
        if ranks is not None:
            state["rank_rng"] = ranks
        path = checkpoint.save(self.checkpoint_dir / f"{tag}.pt", state)
        checkpoint.save(self.checkpoint_dir / "latest.pt", state)
        self.last_checkpoint = path
        if self.on_checkpoint is not None:
            self.on_checkpoint(path, self.global_step)
        return path

    # ------------------------------------------------------------ training
    def _evaluate(self) -> str | None:
        """Runs the evaluator; "pruned" when the run's study prunes it, "early_stop" when
        early stopping says to stop, else None."""
        assert self.evaluator is not None
        value = self.evaluator(self.policy.eval())
        self.policy.train()
        self.log({"eval/metric": value}, self.global_step)
        if self.on_evaluation is not None and self.on_evaluation(value, self.global_step):
            return "pruned"
        improved = self.best_eval is None or value < self.best_eval * (
            1 - self.cfg.early_stop_min_delta)
        if improved:
            self.best_eval = value
            self.best_state = copy.deepcopy(self.policy.state_dict())
            self.evals_without_improvement = 0
            if self.checkpoint_dir is not None:
                # The policy to ship: the best evaluated so far, whatever comes later.
                checkpoint.save(self.checkpoint_dir / "best.pt", self.state_dict())
        else:
            self.evals_without_improvement += 1
        if (self.cfg.early_stop_patience > 0
                and self.evals_without_improvement >= self.cfg.early_stop_patience):
            return "early_stop"
        return None

    def run(self) -> TrainResult:
        cfg, device, envs, workers = self.cfg, self.device, self.envs, self.workers
        # N: this worker's environments, columns `first..first + N` of the run's `total`.
        total = cfg.num_envs
        first, N = workers.shard(total)
        T, D, H = cfg.rollout_steps, envs.obs_dim, envs.action_dim
        obs_buf = torch.zeros((T, N, D), device=device)
        mask_buf = torch.zeros((T, N, H), dtype=torch.bool, device=device)
        actions = torch.zeros((T, N), dtype=torch.long, device=device)
        logprobs = torch.zeros((T, N), device=device)
        rewards = torch.zeros((T, N), device=device)
        dones = torch.zeros((T, N), device=device)
        values = torch.zeros((T, N), device=device)
        recent: list[float] = []
        stopped = "completed"
        if cfg.imitate and self.iteration == 0:
            # Before the first update only: a checkpoint (so a resume) always comes later.
            self.log(imitation.warm_start(self.policy, self.value_rms, cfg, self.rng, device),
                     self.global_step)
            self._same_start()
        start, start_step = time.perf_counter(), self.global_step
        next_obs = next_mask = next_done = None

        while self.iteration < cfg.num_iterations:
            if self.iteration % cfg.checkpoint_every == 0 or next_obs is None:
                # Segment boundary: fresh episodes from a seed fixed by the iteration.
                obs_np, mask_np = envs.reset(cfg.seed * 1_000_003 + self.iteration)
                next_obs = torch.as_tensor(obs_np, device=device)
                next_mask = torch.as_tensor(mask_np, device=device).bool()
                next_done = torch.zeros(N, device=device)
            lr = learning_rate(cfg.lr_schedule, cfg.lr, self.global_step, cfg.total_timesteps,
                               cfg.warmup_steps, cfg.lr_final_ratio)
            self.optimizer.param_groups[0]["lr"] = lr

            finished: list[tuple[float, dict[str, float]]] = []
            for t in range(T):
                self.global_step += total
                obs_buf[t], mask_buf[t], dones[t] = next_obs, next_mask, next_done
                uniforms = torch.rand(total, device=device)[first:first + N]
                action, logprob, value = self.policy.sample(next_obs, next_mask, uniforms)
                values[t], actions[t], logprobs[t] = value, action, logprob
                obs_np, mask_np, reward_np, done_np, ended = envs.step(action.cpu().numpy())
                rewards[t] = torch.as_tensor(reward_np, device=device)
                next_obs = torch.as_tensor(obs_np, device=device)
                next_mask = torch.as_tensor(mask_np, device=device).bool()
                next_done = torch.as_tensor(done_np, device=device).float()
                for ep in ended:
                    finished.append((ep.episode_return, ep.metrics))
            if workers.world > 1:
                began = time.perf_counter()
                finished = [ep for part in workers.gather(finished) for ep in part]
                self.communication_s += time.perf_counter() - began
            self.episodes += len(finished)
            recent.extend(r for r, _ in finished)

            with torch.no_grad():
                next_value = self.policy.value(next_obs)
            raw_values, raw_next = values, next_value
            if cfg.norm_value:
                raw_values = self.value_rms.denormalize(values)
                raw_next = self.value_rms.denormalize(next_value)
            advantages, returns = compute_gae(rewards, raw_values, dones, raw_next, next_done,
                                              cfg.gamma, cfg.lam)
            # The whole batch's advantages and returns, laid out as one worker holds them:
            # normalisation and the value statistics see every worker's data.
            began = time.perf_counter()
            both = workers.cat(torch.stack([advantages, returns]), dim=2)
            self.communication_s += time.perf_counter() - began
            all_adv, all_returns = both[0], both[1]
            if cfg.norm_value:
                self.value_rms.update(all_returns)
                targets = self.value_rms.normalize(returns)
            else:
                targets = returns
            losses = self._update(obs_buf.reshape(-1, D), mask_buf.reshape(-1, H),
                                  actions.reshape(-1), logprobs.reshape(-1),
                                  all_adv.reshape(-1), targets.reshape(-1))
            self.iteration += 1

            sps = (self.global_step - start_step) / max(time.perf_counter() - start, 1e-9)
            y, pred = all_returns.reshape(-1), (all_returns - all_adv).reshape(-1)
            var_y = y.var()
            explained = float("nan") if var_y == 0 else float(1 - (y - pred).var() / var_y)
            self.log({"charts/learning_rate": lr, "charts/SPS": sps,
                      "charts/global_step": float(self.global_step),
                      "losses/explained_variance": explained, **losses,
                      **_episode_means(finished)}, self.global_step)

            last = self.iteration >= cfg.num_iterations
            if self.iteration % cfg.checkpoint_every == 0 or last:
                self.save_checkpoint(f"step-{self.global_step}")
            verdict = self._evaluate() if self.evaluator is not None and cfg.eval_every and \
                self.iteration % cfg.eval_every == 0 else None
            stopping = self.stop.is_set()
            if workers.world > 1:
                # Rank 0's verdict and anyone's SIGTERM, agreed: every worker leaves together.
                verdict, stopping = self._agree(verdict, stopping)
            if verdict is not None:
                stopped = verdict
                self.save_checkpoint(f"step-{self.global_step}")
                break
            if stopping:
                stopped = "sigterm"
                self.save_checkpoint(f"step-{self.global_step}")
                break

        if stopped == "early_stop" and self.best_state is not None:
            self.policy.load_state_dict(self.best_state)
        tail = recent[-20:]
        return TrainResult(self.policy, self.global_step, self.iteration, self.episodes,
                           float(np.mean(tail)) if tail else float("nan"),
                           (self.global_step - start_step) / max(time.perf_counter() - start,
                                                                 1e-9),
                           stopped, self.last_checkpoint, self.best_eval, self.communication_s)

    _VERDICTS = (None, "early_stop", "pruned")

    def _agree(self, verdict: str | None, stopping: bool) -> tuple[str | None, bool]:
        # On the run's device: NCCL reduces CUDA tensors only.
        flags = torch.tensor([self._VERDICTS.index(verdict), int(stopping)], device=self.device)
        self.workers.max_(flags)
        return self._VERDICTS[int(flags[0])], bool(flags[1])

    def _local_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Of a minibatch's rows of the whole batch (step * num_envs + env), which are this
        worker's (a mask over them) and where they are in its own buffers."""
        first, n = self.workers.shard(self.cfg.num_envs)
        step, env = np.divmod(rows, self.cfg.num_envs)
        mine = (env >= first) & (env < first + n)
        return mine, step[mine] * n + (env[mine] - first)

    def _sum_gradients(self, params: list[nn.Parameter], stats: torch.Tensor) -> None:
        """Every worker's gradient sums and loss sums, added up in one all-reduce."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = self.workers.sum_(torch.cat([g.reshape(-1) for g in grads] + [stats]))
        at = 0
        for p, g in zip(params, grads, strict=True):
            p.grad = flat[at:at + g.numel()].view_as(g).clone()
            at += g.numel()
        stats.copy_(flat[at:])

    def _update(self, b_obs: torch.Tensor, b_mask: torch.Tensor, b_actions: torch.Tensor,
                b_logprobs: torch.Tensor, all_adv: torch.Tensor,
                b_targets: torch.Tensor) -> dict[str, float]:
        """PPO's epochs over the batch. Minibatches are drawn over the whole batch (every
        worker draws the same permutation) and each worker computes its own rows' share of
        the minibatch's loss sums, divided by the whole minibatch's size; summed over the
        workers, the gradient is the minibatch mean's as one worker computes it."""
        cfg, workers = self.cfg, self.workers
        params = [p for p in self.policy.parameters() if p.requires_grad]
        # A pick policy on the fused layers computes each minibatch's loss and gradients in
        # simrs (pick_update.py); every other policy through autograd, below.
        fused = pick_update.fused_update(self.policy, b_obs, b_mask, b_actions, b_logprobs,
                                         b_targets)
        indices = np.arange(cfg.batch_size)
        clipfracs: list[float] = []
        approx_kl = pg_loss = v_loss = entropy_loss = 0.0
        for _epoch in range(cfg.update_epochs):
            self.rng.shuffle(indices)
            for lo in range(0, cfg.batch_size, cfg.minibatch_size):
                rows = indices[lo:lo + cfg.minibatch_size]
                size = len(rows)
                mb_adv = all_adv[torch.as_tensor(rows, device=self.device)]
                if cfg.norm_adv and size > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                if workers.world > 1:
                    mine, local = self._local_rows(rows)
                    mb_adv = mb_adv[torch.as_tensor(mine, device=self.device)]
                else:
                    local = rows
                mb = torch.as_tensor(local, device=self.device)
                self.optimizer.zero_grad()
                stats = torch.zeros(5, device=self.device)  # policy, value, entropy, kl, clipped
                if len(local) and fused is not None:
                    stats += fused.minibatch(local, mb_adv, cfg.clip_coef, cfg.ent_coef,
                                             cfg.vf_coef, size)
                elif len(local):
                    loss, sums = minibatch_loss(self.policy, b_obs[mb], b_mask[mb],
                                                b_actions[mb], b_logprobs[mb], mb_adv,
                                                b_targets[mb], cfg, size)
                    loss.backward()
                    stats += sums
                if workers.world > 1:
                    began = time.perf_counter()
                    self._sum_gradients(params, stats)
                    self.communication_s += time.perf_counter() - began
                pg_loss, v_loss, entropy_loss, approx_kl, clipped = (stats / size).tolist()
                clipfracs.append(clipped)
                loss_value = pg_loss - cfg.ent_coef * entropy_loss + cfg.vf_coef * v_loss
                if not np.isfinite(loss_value):
                    raise TrainingDiverged(
                        f"non-finite loss at update {self.iteration + 1} (policy "
                        f"{pg_loss:.4g}, value {v_loss:.4g}, entropy "
                        f"{entropy_loss:.4g}); lower lr or check the rewards")
                nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
            if cfg.target_kl is not None and approx_kl > cfg.target_kl:
                break
        return {"losses/value_loss": v_loss, "losses/policy_loss": pg_loss,
                "losses/entropy": entropy_loss, "losses/approx_kl": approx_kl,
                "losses/clipfrac": float(np.mean(clipfracs)) if clipfracs else 0.0}


def train(cfg: TrainConfig, log: MetricsSink | None = None, **kw: Any) -> TrainResult:
    """One training run from scratch (see Trainer for checkpoints and resuming)."""
    return Trainer(cfg, log, **kw).run()
