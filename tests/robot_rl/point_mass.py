"""A tiny batched task for learning tests: drive a 1-D point mass to the origin and hold it there."""

from __future__ import annotations

import torch

from sim.core import BatchedEnv


class PointMassEnv(BatchedEnv):
    """Damped double integrator v <- 0.8 v + 0.4 a, x <- x + 0.1 v (dt 0.1); reward -(x^2 + 0.1 v^2 +
    0.01 a^2) + 1; |x| > 2 terminates; 50-step episodes.

    The policy sees (x, v) with a little noise, the critic the exact (x, v).
    """

    differentiable = True

    def __init__(self, num_envs: int = 16, seed: int = 0) -> None:
        self.num_envs, self.device, self.action_dim = num_envs, torch.device("cpu"), 1
        self.dt, self.max_episode_steps = 0.1, 50
        self.obs_dims = {"policy": 2, "critic": 2}
        self.reward_term_names = ("position", "velocity", "action")
        self.gen = torch.Generator().manual_seed(seed)
        self.x = torch.zeros(num_envs, 2)
        self.t = torch.zeros(num_envs, dtype=torch.long)

    def _obs(self):
        noisy = self.x + 0.01 * torch.randn(self.x.shape, generator=self.gen)
        return {"policy": noisy, "critic": self.x.clone()}

    def _reset(self, mask):
        new = torch.rand(self.num_envs, 2, generator=self.gen) * 2 - 1
        self.x = torch.where(mask[:, None], new, self.x)
        self.t = torch.where(mask, 0, self.t)

    def reset(self, seed=None):
        if seed is not None:
            self.gen.manual_seed(seed)
        self._reset(torch.ones(self.num_envs, dtype=torch.bool))
        return self._obs()

    def reward_from_terms(self, terms):
        return -(terms @ torch.tensor([1.0, 0.1, 0.01])) + 1.0

    def step(self, action):
        a = action.clamp(-1, 1)[:, 0]
        v = 0.8 * self.x[:, 1] + 0.4 * a
        self.x = torch.stack((self.x[:, 0] + v * self.dt, v), -1)
        self.t += 1
        terms = torch.stack((self.x[:, 0] ** 2, self.x[:, 1] ** 2, a**2), -1)
        reward = self.reward_from_terms(terms)
        terminated = self.x[:, 0].abs() > 2
        truncated = (self.t >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        obs = self._obs()
        info = {"final_obs": obs, "done_mask": done, "reward_terms": terms, "time_outs": truncated}
        if done.any():
            self._reset(done)
            obs = self._obs()
        return obs, reward, terminated, truncated, info

    def detach(self):
        self.x = self.x.detach()

    def state_dict(self):
        return {"env.x": self.x.clone(), "env.t": self.t.clone(), "env.gen": self.gen.get_state()}

    def load_state_dict(self, s):
        self.x, self.t = s["env.x"].clone(), s["env.t"].clone()
        self.gen.set_state(s["env.gen"])
