"""A tiny goal-reaching task with a sparse success and a deliberately biased chunk policy, for residual tests."""

from __future__ import annotations

import torch
from torch import nn

from robot_rl.policies.diffusion import DiffusionConfig, DiffusionPolicy, MinMaxNormalizer
from sim.core import BatchedEnv


class ToyReachEnv(BatchedEnv):
    """2-D point: ``p <- p + 0.1 a`` (a clipped to [-1, 1]); success (terminates, reward 1) within 0.05 of the
    goal; 25-step episodes. The policy sees (p, goal) with noise 0.01, the critic (p, goal, goal - p) exactly."""

    def __init__(self, num_envs: int = 8, seed: int = 0, radius: float = 0.05) -> None:
        self.num_envs, self.device, self.action_dim = num_envs, torch.device("cpu"), 2
        self.dt, self.max_episode_steps, self.radius = 0.1, 25, radius
        self.obs_dims = {"policy": 4, "critic": 6}
        self.gen = torch.Generator().manual_seed(seed)
        self.p = torch.zeros(num_envs, 2)
        self.goal = torch.zeros(num_envs, 2)
        self.t = torch.zeros(num_envs, dtype=torch.long)
        self.reset(seed)

    def _obs(self):
        pol = torch.cat((self.p, self.goal), 1)
        return {"policy": pol + 0.01 * torch.randn(pol.shape, generator=self.gen),
                "critic": torch.cat((self.p, self.goal, self.goal - self.p), 1)}

    def _reset(self, mask):
        k = int(mask.sum())
        self.p[mask] = torch.rand(k, 2, generator=self.gen) - 0.5
        self.goal[mask] = torch.rand(k, 2, generator=self.gen) - 0.5
        self.t[mask] = 0

    def reset(self, seed=None):
        if seed is not None:
            self.gen.manual_seed(seed)
        self._reset(torch.ones(self.num_envs, dtype=torch.bool))
        return self._obs()

    def step(self, action):
        self.p = self.p + 0.1 * action.clamp(-1, 1)
        self.t += 1
        success = (self.p - self.goal).norm(dim=1) < self.radius
        reward = success.float()
        terminated = success
        truncated = (self.t >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        obs = self._obs()
        info = {"final_obs": obs, "done_mask": done, "success": success}
        if done.any():
            self._reset(done)
            obs = self._obs()
        return obs, reward, terminated, truncated, info

    def state_dict(self):
        return {"env.p": self.p.clone(), "env.goal": self.goal.clone(), "env.t": self.t.clone(),
                "env.gen": self.gen.get_state()}

    def load_state_dict(self, s):
        self.p, self.goal, self.t = s["env.p"].clone(), s["env.goal"].clone(), s["env.t"].clone()
        self.gen.set_state(s["env.gen"])


class BiasedChunkPolicy(nn.Module):
    """A scripted chunk policy (the :class:`~robot_rl.policies.base.ChunkPolicy` interface): every action of the
    chunk steers at the goal seen in the newest observation (gain 2, clipped), plus a constant ``offset`` that
    makes it miss; ``noise`` scales a Gaussian perturbation drawn from the caller's generator."""

    def __init__(self, offset: tuple[float, float] = (0.4, 0.0), noise: float = 0.0, n_obs_steps: int = 2,
                 horizon: int = 6, n_action_steps: int = 3) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = 4, 2
        self.n_obs_steps, self.horizon, self.n_action_steps = n_obs_steps, horizon, n_action_steps
        self.obs_norm = MinMaxNormalizer(-torch.ones(4) * 0.6, torch.ones(4) * 0.6)
        self.act_norm = MinMaxNormalizer(-torch.ones(2), torch.ones(2))
        self.offset, self.noise = torch.tensor(offset), noise

    def predict_chunk(self, obs, generator=None):
        last = obs[:, -1]
        a = (2 * (last[:, 2:] - last[:, :2])).clamp(-1, 1) + self.offset
        chunk = a[:, None, :].expand(-1, self.horizon, -1)
        if self.noise:
            chunk = chunk + self.noise * torch.randn(chunk.shape, generator=generator)
        return chunk.clamp(-1, 1)


def tiny_diffusion(seed: int = 0) -> DiffusionPolicy:
    """An untrained (random-weight) MLP diffusion policy for the toy task: noise matters in every chunk."""
    torch.manual_seed(seed)
    cfg = DiffusionConfig(denoiser="mlp", mlp_hidden=(32, 32), horizon=6, n_action_steps=3, n_obs_steps=2,
                          num_inference_steps=3, use_ema=False, step_embed_dim=16)
    return DiffusionPolicy(cfg, 4, 2, MinMaxNormalizer(-torch.ones(4) * 0.6, torch.ones(4) * 0.6),
                           MinMaxNormalizer(-torch.ones(2), torch.ones(2))).eval()


def assert_runs_as_the_base(policy: DiffusionPolicy, actor: nn.Module, steps: int = 7) -> torch.Tensor:
    """Base + ``actor`` and the base alone fly twin toy envs from the same base noise: every action must be
    equal bit for bit for ``steps`` steps; returns the last policy observation."""
    from robot_rl.residual.base_policy import FrozenChunkBase
    from robot_rl.residual.resip import ResidualExecutor

    env_a, env_b = ToyReachEnv(6, seed=1), ToyReachEnv(6, seed=1)
    with_res = ResidualExecutor(FrozenChunkBase(policy, 6, seed=3), actor)
    base_only = ResidualExecutor(FrozenChunkBase(policy, 6, seed=3), None)
    oa, ob = env_a.reset(2)["policy"], env_b.reset(2)["policy"]
    for _ in range(steps):
        a, b = with_res(oa), base_only(ob)
        assert torch.equal(a, b)
        oa, ob = env_a.step(a)[0]["policy"], env_b.step(b)[0]["policy"]
    return oa
