"""A second registered task for the registry tests: a 3-D point-mass "end effector" reaching a goal.

It uses the arm vocabulary of the export contract (``ee_position``, ``goal_position``, an ``ee_delta``
action) and every optional capability of ``sim.core.BatchedEnv`` (reward weights, checkpointing, gradients,
export), so ``robot-rl train/eval/export/sim`` run on it end to end without a quadrotor anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from sim.core import BatchedEnv, Obs
from sim.evaluation import SuccessEvalConfig, success_protocol
from sim.registry import register_task


@dataclass
class ReachWeights:
    distance: float = 1.0
    """On the distance to the goal (m)."""
    action: float = 0.01
    """On ||a||^2."""


@dataclass
class PointReachConfig:
    num_envs: int = 16
    device: str = "cpu"
    episode_length: int = 30
    step_size: float = 0.05
    """Position change at |a| = 1 per step (m), the ee_delta ``position_scale``."""
    workspace: float = 0.3
    """Start and goal are uniform in [-workspace, workspace]^3 (m)."""
    success_radius: float = 0.03
    obs_noise: float = 0.002
    reward: ReachWeights = field(default_factory=ReachWeights)


@dataclass
class ReachEvalConfig(SuccessEvalConfig):
    episodes: int = 64


class PointReachEnv(BatchedEnv):
    """``p <- p + step_size * clip(a)``; success: within ``success_radius`` of the goal when the episode ends.

    Groups: ``policy`` = noisy position, goal (6); ``critic`` = exact position, goal, goal - position (9).
    """

    differentiable = True
    reward_term_names = ("distance", "action")

    def __init__(self, cfg: PointReachConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg = replace(cfg) if cfg is not None else PointReachConfig()
        self.num_envs, self.device = cfg.num_envs, torch.device(cfg.device)
        self.action_dim, self.dt, self.max_episode_steps = 3, 0.1, cfg.episode_length
        self.obs_dims = {"policy": 6, "critic": 9}
        self.reward_weights = replace(cfg.reward)
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.pos = torch.zeros(cfg.num_envs, 3, device=self.device)
        self.goal = torch.zeros_like(self.pos)
        self.t = torch.zeros(cfg.num_envs, dtype=torch.long, device=self.device)

    def _reset(self, mask: torch.Tensor) -> None:
        w = self.cfg.workspace
        new = (torch.rand(self.num_envs, 6, generator=self.gen, device=self.device) * 2 - 1) * w
        self.pos = torch.where(mask[:, None], new[:, :3], self.pos)
        self.goal = torch.where(mask[:, None], new[:, 3:], self.goal)
        self.t = torch.where(mask, 0, self.t)

    def _obs(self) -> Obs:
        noise = self.cfg.obs_noise * torch.randn(self.pos.shape, generator=self.gen, device=self.device)
        return {"policy": torch.cat((self.pos + noise, self.goal), -1),
                "critic": torch.cat((self.pos, self.goal, self.goal - self.pos), -1)}

    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self.gen.manual_seed(seed)
        self._reset(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self._obs()

    def set_reward_weights(self, weights: ReachWeights) -> None:
        self.reward_weights = replace(weights)

    def reward_from_terms(self, terms: torch.Tensor) -> torch.Tensor:
        w = self.reward_weights
        return -(terms @ torch.tensor([w.distance, w.action], dtype=terms.dtype, device=terms.device))

    def step(self, action: torch.Tensor) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if action.shape != (self.num_envs, 3):
            raise ValueError(f"task 'point-reach' takes actions [{self.num_envs}, 3], got {list(action.shape)}")
        a = action.to(self.device, torch.float32).clamp(-1.0, 1.0)
        self.pos = self.pos + self.cfg.step_size * a
        self.t = self.t + 1
        dist = (self.goal - self.pos).norm(dim=-1)
        terms = torch.stack((dist, (a * a).sum(-1)), -1)
        reward = self.reward_from_terms(terms)
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = self.t >= self.max_episode_steps
        obs = self._obs()
        info = {"final_obs": obs, "done_mask": truncated, "reward_terms": terms, "time_outs": truncated,
                "success": truncated & (dist.detach() < self.cfg.success_radius)}
        if bool(truncated.any()):
            self._reset(truncated)
            obs = self._obs()
        return obs, reward, terminated, truncated, info

    def detach(self) -> None:
        self.pos = self.pos.detach()

    def state_dict(self) -> dict[str, torch.Tensor]:
        w = self.reward_weights
        return {"env.pos": self.pos.detach().clone(), "env.goal": self.goal.clone(), "env.t": self.t.clone(),
                "env.gen": self.gen.get_state(), "env.reward_weights": torch.tensor([w.distance, w.action])}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.pos, self.goal, self.t = (state[f"env.{k}"].to(self.device).clone() for k in ("pos", "goal", "t"))
        self.gen.set_state(state["env.gen"])
        self.reward_weights = ReachWeights(*state["env.reward_weights"].tolist())

    def export_spec(self) -> dict[str, Any]:
        w, c = self.cfg.workspace, self.cfg
        return {
            "observation": [
                {"name": "ee_position", "size": 3, "frame": "base", "unit": "m", "low": -2 * w, "high": 2 * w,
                 "noise_std": c.obs_noise},
                {"name": "goal_position", "size": 3, "frame": "base", "unit": "m", "low": -w, "high": w},
            ],
            "action": {"type": "ee_delta", "size": 3, "low": -1.0, "high": 1.0, "channels": ["x", "y", "z"],
                       "position_scale": c.step_size, "frame": "base"},
            "control_rate_hz": 1.0 / self.dt,
            "robot": "point-mass",
        }


SPEC = register_task("point-reach", config_cls=PointReachConfig, env_cls=PointReachEnv,
                     evaluation=success_protocol(ReachEvalConfig),
                     description="test task: a 3-D point mass reaches a goal (ee_delta actions)")
