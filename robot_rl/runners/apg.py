"""APG loop: roll all envs ``horizon`` steps with gradients, one actor update, repeat."""

from __future__ import annotations

from pathlib import Path

import torch

from robot_rl.algorithms.apg import APG
from robot_rl.config import TrainConfig
from robot_rl.runners.base import Runner
from sim.core import BatchedEnv


class APGRunner(Runner):
    def __init__(self, cfg: TrainConfig, run_dir: Path, env: BatchedEnv | None = None) -> None:
        super().__init__(cfg, run_dir, env)
        if not hasattr(self.env, "detach"):
            raise ValueError("apg needs a differentiable env with detach() (the torch quadrotor env)")
        env = self.env
        self.algo = APG(cfg.apg, env.obs_dims["policy"], env.action_dim, getattr(env, "hover_action", 0.0))
        self.algo.actor.to(cfg.device)

    def _iteration(self) -> dict[str, float]:
        env, actor = self.env, self.algo.actor
        env.detach()
        self.algo.set_progress(self.env_steps / self.cfg.total_env_steps)
        obs = self.obs
        total = torch.zeros((), device=env.device)
        for _ in range(self.cfg.apg.horizon):
            action = actor(obs["policy"])
            obs, reward, terminated, truncated, _ = env.step(action)
            total = total + reward.mean()
            self._track_episodes(reward.detach(), terminated | truncated)
            self.env_steps += env.num_envs
        stats = self.algo.update(total / self.cfg.apg.horizon)
        env.detach()
        self.obs = {k: v.detach().clone() for k, v in obs.items()}
        self._apply_curriculum()
        return {k: v.item() for k, v in stats.items()}
