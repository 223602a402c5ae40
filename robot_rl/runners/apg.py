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
        self.state = self.algo.actor.initial_state(env.num_envs) if cfg.apg.recurrent_state else None
        if cfg.apg.backprop == "auto" and apg_bptt.supports(self.algo.actor, env):
            self.bptt = apg_bptt.FusedBPTT(self.algo.actor, env, cfg.apg.horizon, cfg.apg.bound_barrier,
                                           cfg.apg.bound_barrier_start)
        elif cfg.apg.bound_barrier:
            limit = getattr(getattr(env, "cfg", None), "position_limit", None)
            if limit is None or not hasattr(env, "position_error"):
                raise ValueError(f"apg.bound_barrier needs a hover env (position_limit, position_error()); "
                                 f"{type(env).__name__} is not one")
            apg_bptt.check_barrier(cfg.apg.bound_barrier, cfg.apg.bound_barrier_start, limit)
            self._barrier_width = limit - cfg.apg.bound_barrier_start

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
        state = None if self.state is None else self.state.detach()  # the window starts here: no gradient before
        for _ in range(self.cfg.apg.horizon):
            if state is None:
                action = mlp_apply(actor, obs["policy"])  # = actor(obs), one autograd node
            else:
                action, state = actor(obs["policy"], state)
            obs, reward, terminated, truncated, _ = env.step(action)
            if state is not None:  # a new episode starts from the zero state
                state = state * ~(terminated | truncated)[:, None]
            total = total + reward.mean()
            if self.cfg.apg.bound_barrier:
                total = total - self._barrier(env.position_error(), terminated | truncated)
            self._track_episodes(reward.detach(), terminated | truncated)
            self.env_steps += env.num_envs * self.world
        stats = self.algo.update(total / self.cfg.apg.horizon)
        if state is not None:
            self.state = state.detach()
        return self._finish(obs, stats)

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {} if self.state is None else {"runner.actor_state": self.state}

    def _load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.state is not None:
            self.state = tensors["runner.actor_state"].to(self.state.device).clone()

    def _barrier(self, rel: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """The bound barrier of ``APGConfig.bound_barrier`` on the state after a step (``rel``: its position -
        target), averaged over the envs, counting only those that live on (as ``apg_bptt`` does)."""
        a = self.cfg.apg
        h = (rel.abs() - a.bound_barrier_start).clamp(min=0.0) / self._barrier_width
        return a.bound_barrier * ((h * h).sum(-1) * ~done).mean()

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
