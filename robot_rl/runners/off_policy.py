"""Off-policy loop (TD3/SAC): step all envs, store transitions, take ``updates_per_step`` gradient steps."""

from __future__ import annotations

from pathlib import Path

import torch

from robot_rl.algorithms.sac import SAC
from robot_rl.algorithms.td3 import TD3
from robot_rl.config import TrainConfig
from robot_rl.runners.base import Runner
from robot_rl.runners.fused_collect import FusedCollector, unfused_reason
from robot_rl.runners.fused_cycles import run_cycles, steps_to_update
from robot_rl.runners.fused_cycles_sac import run_sac_cycles
from robot_rl.storage.replay import ReplayBuffer
from sim.core import BatchedEnv


class OffPolicyRunner(Runner):
    def __init__(self, cfg: TrainConfig, run_dir: Path, env: BatchedEnv | None = None) -> None:
        super().__init__(cfg, run_dir, env)
        env = self.env
        pdim, cdim, adim = env.obs_dims["policy"], env.obs_dims["critic"], env.action_dim
        if cfg.algorithm == "td3":
            self.algo = TD3(cfg.td3, pdim, cdim, adim, self.gen)
        elif cfg.algorithm == "sac":
            self.algo = SAC(cfg.sac, pdim, cdim, adim, self.gen)
        else:
            raise ValueError(f"OffPolicyRunner runs td3 or sac, not {cfg.algorithm!r}")
        for m in self.algo.modules().values():
            m.to(cfg.device)
        oc = cfg.off_policy
        self.buffer = ReplayBuffer.for_env(oc.buffer_capacity, pdim, cdim, adim, len(env.reward_term_names),
                                           cfg.device, oc.overwrite)
        self.update_credit = 0.0
        self.precision_index = -1
        if oc.precision_bonus:
            if oc.precision_term not in env.reward_term_names:
                raise ValueError(f"off_policy.precision_term {oc.precision_term!r} is not a reward term of this task "
                                 f"(it has {list(env.reward_term_names)})")
            if oc.precision_width <= 0:
                raise ValueError(f"off_policy.precision_width must be > 0, got {oc.precision_width}")
            self.precision_index = list(env.reward_term_names).index(oc.precision_term)
        reason = unfused_reason(self)
        if reason is not None and cfg.algorithm == "sac" and cfg.sac.fused_collect:
            raise ValueError(f"sac.fused_collect: {reason}")
        # the fused TD3 collects in chunks where it can; elsewhere (and for random steps) step by step
        self.collector = FusedCollector(self) if reason is None else None
        self.unfused_reason = reason
        self.base_lrs = {name: [g["lr"] for g in opt.param_groups] for name, opt in self.algo.optimizers().items()
                         if name in ("actor_opt", "critic_opt")}

    def lr_factor(self, at: int | None = None) -> float:
        """The learning-rate multiplier at env step ``at`` (default: the current one; ``lr_decay_start``,
        ``lr_final_fraction``)."""
        oc = self.cfg.off_policy
        at = self.env_steps if at is None else at
        if oc.lr_decay_start <= 0 or at <= oc.lr_decay_start:
            return 1.0
        done = min(1.0, (at - oc.lr_decay_start) / max(1, oc.total_env_steps - oc.lr_decay_start))
        return 1.0 + done * (oc.lr_final_fraction - 1.0)

    def _iteration(self) -> dict[str, float | list[float]]:
        oc = self.cfg.off_policy
        if self.collector is not None:  # every cycle up to the next boundary in one call, where that applies
            out = run_sac_cycles(self.collector) if isinstance(self.algo, SAC) else run_cycles(self.collector)
            if out is not None:
                self._apply_curriculum(self._recompute_rewards)
                return out
        steps = self._chunk_steps() if self.collector is not None and self.env_steps >= oc.random_steps else 0
        if steps:  # the steps up to the next update (or boundary) in one call; same draws, same values
            self.collector.collect(steps)
            self._apply_curriculum(self._recompute_rewards)
            if self.env_steps < oc.critic_starts:
                return {}
        else:
            self._collect_step()
            if self.env_steps < oc.critic_starts:
                return {}
            self.update_credit += self.env.num_envs * oc.updates_per_step
        return self._updates()

    def _chunk_steps(self) -> int:
        """Env steps the fused collector takes now: up to the step at which the plain loop's update credit reaches
        one, the train loop's next boundary (``iteration_limit``), the next curriculum stage or the replay's end
        (0: none fits, step the plain way); the credit those steps add is added here, as the plain loop adds it."""
        oc, n = self.cfg.off_policy, self.env.num_envs
        per = n * self.world
        limit = self.iteration_limit
        every = self.cfg.curriculum.every
        if every > 0:
            limit = min(limit, (self.env_steps // every + 1) * every)
        most = min(max(1, -(-(limit - self.env_steps) // per)), (self.buffer.capacity - self.buffer.pos) // n)
        steps, self.update_credit, _ = steps_to_update(self.update_credit, self.env_steps, most, per, n,
                                                       oc.critic_starts, oc.updates_per_step)
        return steps

    def _collect_step(self) -> None:
        """One env step of the plain loop: act, step, store, count."""
        oc, env = self.cfg.off_policy, self.env
        if self.env_steps < oc.random_steps:
            action = torch.rand(env.num_envs, env.action_dim, generator=self.gen, device=env.device) * 2 - 1
        else:
            action = self.algo.act(self.obs["policy"], explore=True)
        obs, reward, terminated, truncated, info = env.step(action)
        final = info["final_obs"]
        # a task without named reward terms stores none (and cannot run a curriculum)
        terms = info["reward_terms"] if env.reward_term_names else reward.new_zeros(env.num_envs, 0)
        stored = self._shaped(reward, terms, terminated.float())
        self.buffer.add(policy_obs=self.obs["policy"], critic_obs=self.obs["critic"], action=action,
                        reward_terms=terms, reward=stored, next_policy_obs=final["policy"],
                        next_critic_obs=final["critic"], terminated=terminated.float())
        self.obs = {k: v.clone() for k, v in obs.items()}
        self._track_episodes(reward, terminated | truncated)
        self.env_steps += env.num_envs * self.world
        self._apply_curriculum(self._recompute_rewards)

    def _updates(self) -> dict[str, float]:
        """The gradient steps the update credit pays for (the plain loop's, after a step past ``critic_starts``)."""
        oc = self.cfg.off_policy
        train_actor = self.env_steps >= oc.actor_starts
        if oc.lr_decay_start > 0:
            factor = self.lr_factor()
            for name, lrs in self.base_lrs.items():
                for group, lr in zip(self.algo.optimizers()[name].param_groups, lrs, strict=True):
                    group["lr"] = lr * factor
        stats: dict[str, torch.Tensor | float] = {}
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            if isinstance(self.algo, TD3):  # RLtools: each critic and the actor sample a batch of their own
                stats = self.algo.update_from_replay(self.buffer, oc.batch_size, train_actor)
            elif self.algo.cfg.explicit:  # sampling and update in one numba call (the same draws: gen is algo.gen)
                stats = self.algo.update_from_replay(self.buffer, oc.batch_size, train_actor)
            else:
                stats = self.algo.update(self.buffer.sample(oc.batch_size, self.gen), train_actor=train_actor)
        return {k: float(v) for k, v in stats.items()}

    def _shaped(self, reward: torch.Tensor, terms: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
        """The reward the learner stores: the env's plus ``termination_reward`` and ``precision_bonus``."""
        oc = self.cfg.off_policy
        if oc.termination_reward:
            reward = reward + oc.termination_reward * terminated.reshape(reward.shape)
        if self.precision_index >= 0:
            term = terms[..., self.precision_index].reshape(reward.shape)
            reward = reward + oc.precision_bonus * torch.exp(term * (-1.0 / oc.precision_width ** 2))
        return reward

    def _recompute_rewards(self, reward_fn) -> None:
        """The curriculum's rewrite of the stored rewards, with the learner's shaping (``_shaped``) added back."""
        self.buffer.recompute_rewards(reward_fn)
        n, data = self.buffer.size, self.buffer.data
        if n and (self.cfg.off_policy.termination_reward or self.precision_index >= 0):
            data["reward"][:n] = self._shaped(data["reward"][:n], data["reward_terms"][:n], data["terminated"][:n])

    def _extra_state(self) -> dict[str, torch.Tensor]:
        out = self.buffer.state_dict()
        out["runner.update_credit"] = torch.tensor(self.update_credit, dtype=torch.float64)
        return out

    def _load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.buffer.load_state_dict(tensors)
        self.update_credit = float(tensors["runner.update_credit"])
