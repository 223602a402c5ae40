"""APG loop: roll all envs ``horizon`` steps with gradients, one actor update, repeat.

The gradient comes from the hand-written BPTT of ``apg_bptt`` on the differentiable fused env (CPU default),
else from torch autograd through any differentiable env (the torch env, e.g. on CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robot_rl.algorithms import apg_bptt
from robot_rl.algorithms.apg import APG
from robot_rl.config import TrainConfig
from robot_rl.models.mlp_function import mlp_apply
from robot_rl.runners.base import Runner
from sim.core import BatchedEnv


class APGRunner(Runner):
    def __init__(self, cfg: TrainConfig, run_dir: Path, env: BatchedEnv | None = None) -> None:
        super().__init__(cfg, run_dir, env)
        if not self.env.differentiable:
            raise self.env.unsupported("gradients through the simulator (apg needs a differentiable env)")
        env = self.env
        self.algo = APG(cfg.apg, env.obs_dims["policy"], env.action_dim, getattr(env, "hover_action", 0.0))
        self.algo.actor.to(cfg.device)
        self.bptt = None
        if cfg.apg.backprop == "auto" and apg_bptt.supports(self.algo.actor, env):
            self.bptt = apg_bptt.FusedBPTT(self.algo.actor, env, cfg.apg.horizon, cfg.apg.bound_barrier,
                                           cfg.apg.bound_barrier_start)
        elif cfg.apg.bound_barrier:
            raise ValueError("apg.bound_barrier needs the hand-written BPTT (the fused CPU env, backprop=auto, a "
                             "fast-tanh actor); this run differentiates by autograd")

    def _iteration(self) -> dict[str, float]:
        env, actor = self.env, self.algo.actor
        env.detach()
        self.algo.set_progress(self.env_steps / self.cfg.total_env_steps)
        if self.bptt is not None:
            mean_reward, grads, obs = self.bptt.rollout_gradient(self.obs["policy"])
            self._track_window(self.bptt.rewards, self.bptt.dones)
            self.env_steps += env.num_envs * self.world * self.cfg.apg.horizon
            stats = self.algo.update(mean_reward, grads)
            return self._finish(obs, stats)
        obs = self.obs
        total = torch.zeros((), device=env.device)
        for _ in range(self.cfg.apg.horizon):
            action = mlp_apply(actor, obs["policy"])  # = actor(obs), one autograd node
            obs, reward, terminated, truncated, _ = env.step(action)
            total = total + reward.mean()
            self._track_episodes(reward.detach(), terminated | truncated)
            self.env_steps += env.num_envs * self.world
        stats = self.algo.update(total / self.cfg.apg.horizon)
        return self._finish(obs, stats)

    def _track_window(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """``_track_episodes`` for every step of a window (``[horizon, N]`` rewards and done flags)."""
        ret, length = self.ep_return.numpy(), self.ep_length.numpy()
        for reward, done in zip(rewards, dones, strict=True):
            ret += reward
            length += 1
            if done.any():
                self.recent["return"] += ret[done].tolist()
                self.recent["length"] += length[done].tolist()
                ret[done] = 0
                length[done] = 0

    def _finish(self, obs: dict[str, torch.Tensor], stats: dict[str, torch.Tensor]) -> dict[str, float]:
        self.env.detach()
        self.obs = {k: v.detach().clone() for k, v in obs.items()}
        self._apply_curriculum()
        return {k: v.item() for k, v in stats.items()}
