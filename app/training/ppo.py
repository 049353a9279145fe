"""PPO with action masks on simrs's vector environment (CleanRL's ppo.py, reorganised into a
Trainer so runs can checkpoint, resume exactly, stop early, and be tested without MLflow).

Episodes restart at every checkpoint boundary (every `checkpoint_every` updates), the cut
episodes bootstrapping from the value of their last state like a time limit. That makes a run
resumed from a checkpoint repeat the uninterrupted run exactly.
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
from torch import nn, optim

from app.core.errors import ConfigError, OppenError
from app.training import allocator, checkpoint, host_layers, imitation
from app.training.config import TrainConfig
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


class Trainer:
    def __init__(self, cfg: TrainConfig, log: MetricsSink | None = None,
                 checkpoint_dir: Path | None = None, stop: threading.Event | None = None,
                 evaluator: Evaluator | None = None, envs: Any = None) -> None:
        import simrs

        self.cfg = cfg
        self.log = log or (lambda _m, _s: None)
        self.checkpoint_dir = checkpoint_dir
        self.stop = stop or threading.Event()
        self.evaluator = evaluator
        self.device = resolve_device(cfg.device)
        allocator.keep_freed_memory()  # a training process reuses its large tensors' pages
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)  # local generator: no global reseeding
        # `envs` replaces simrs's batch env with anything of the same interface (benchmarks).
        if envs is None:
            options = cfg.env_options()
            if cfg.versus:
                options["versus"] = cfg.versus  # training episodes only; evaluation stays plain
            envs = simrs.BatchEnv(cfg.mode, cfg.num_envs, cfg.env_config(), cfg.seed, **options)
        self.envs = envs
        fused = host_layers.use_fused(cfg.host_layers, cfg.mode, cfg.hidden, self.device)
        self.policy = make_policy(cfg.mode, cfg.hidden, num_hosts_of(cfg, self.envs.obs_dim),
                                  cfg.pick_context, fused=fused).to(self.device)
        self.optimizer = optim.Adam(self.policy.parameters(), lr=cfg.lr, eps=1e-5)
        self.value_rms = RunningMeanStd()
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
    def state_dict(self) -> dict[str, Any]:
        state = {
            "config": self.cfg.to_dict(),
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "value_rms": self.value_rms.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "iteration": self.iteration,
            "global_step": self.global_step,
            "episodes": self.episodes,
            "best_eval": self.best_eval,
            "best_state": self.best_state,
            "evals_without_improvement": self.evals_without_improvement,
            **self.extra_state,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        checkpoint.restore_weights(self.policy, state["policy"], "the checkpoint to resume")
        self.optimizer.load_state_dict(state["optimizer"])
        self.value_rms.load_state_dict(state["value_rms"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
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
        if self.checkpoint_dir is None:
            return None
        state = self.state_dict()
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
        cfg, device, envs = self.cfg, self.device, self.envs
        T, N, D, H = cfg.rollout_steps, cfg.num_envs, envs.obs_dim, envs.action_dim
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
                self.global_step += N
                obs_buf[t], mask_buf[t], dones[t] = next_obs, next_mask, next_done
                action, logprob, value = self.policy.sample(next_obs, next_mask)
                values[t], actions[t], logprobs[t] = value, action, logprob
                obs_np, mask_np, reward_np, done_np, ended = envs.step(action.cpu().numpy())
                rewards[t] = torch.as_tensor(reward_np, device=device)
                next_obs = torch.as_tensor(obs_np, device=device)
                next_mask = torch.as_tensor(mask_np, device=device).bool()
                next_done = torch.as_tensor(done_np, device=device).float()
                for ep in ended:
                    finished.append((ep.episode_return, ep.metrics))
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
            if cfg.norm_value:
                self.value_rms.update(returns)
                targets = self.value_rms.normalize(returns)
            else:
                targets = returns
            losses = self._update(obs_buf.reshape(-1, D), mask_buf.reshape(-1, H),
                                  actions.reshape(-1), logprobs.reshape(-1),
                                  advantages.reshape(-1), targets.reshape(-1))
            self.iteration += 1

            sps = (self.global_step - start_step) / max(time.perf_counter() - start, 1e-9)
            y, pred = returns.reshape(-1), raw_values.reshape(-1)
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
            if verdict is not None:
                stopped = verdict
                self.save_checkpoint(f"step-{self.global_step}")
                break
            if self.stop.is_set():
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
                           stopped, self.last_checkpoint, self.best_eval)

    def _update(self, b_obs: torch.Tensor, b_mask: torch.Tensor, b_actions: torch.Tensor,
                b_logprobs: torch.Tensor, b_adv: torch.Tensor,
                b_targets: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        indices = np.arange(cfg.batch_size)
        clipfracs: list[float] = []
        approx_kl = torch.tensor(0.0)
        pg_loss = v_loss = entropy_loss = torch.tensor(0.0)
        for _epoch in range(cfg.update_epochs):
            self.rng.shuffle(indices)
            for lo in range(0, cfg.batch_size, cfg.minibatch_size):
                mb = torch.as_tensor(indices[lo:lo + cfg.minibatch_size], device=self.device)
                # The stored mask makes the new log-prob comparable with the old one.
                _, newlogprob, entropy, newvalue = self.policy.act(b_obs[mb], b_mask[mb],
                                                                   b_actions[mb])
                logratio = newlogprob - b_logprobs[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > cfg.clip_coef).float().mean().item())
                mb_adv = b_adv[mb]
                if cfg.norm_adv and len(mb) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(
                    -mb_adv * ratio,
                    -mb_adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef),
                ).mean()
                v_loss = 0.5 * ((newvalue - b_targets[mb]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - cfg.ent_coef * entropy_loss + cfg.vf_coef * v_loss
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"non-finite loss at update {self.iteration + 1} (policy "
                        f"{pg_loss.item():.4g}, value {v_loss.item():.4g}, entropy "
                        f"{entropy_loss.item():.4g}); lower lr or check the rewards")
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
            if cfg.target_kl is not None and approx_kl.item() > cfg.target_kl:
                break
        return {"losses/value_loss": v_loss.item(), "losses/policy_loss": pg_loss.item(),
                "losses/entropy": entropy_loss.item(), "losses/approx_kl": approx_kl.item(),
                "losses/clipfrac": float(np.mean(clipfracs)) if clipfracs else 0.0}


def train(cfg: TrainConfig, log: MetricsSink | None = None, **kw: Any) -> TrainResult:
    """One training run from scratch (see Trainer for checkpoints and resuming)."""
    return Trainer(cfg, log, **kw).run()
