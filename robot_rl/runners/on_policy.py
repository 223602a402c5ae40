"""On-policy loop (PPO): ``steps_per_env`` steps from all envs, GAE, then the update epochs."""

from __future__ import annotations

from pathlib import Path

import torch

from robot_rl.algorithms.ppo import PPO, compute_gae
from robot_rl.config import TrainConfig
from robot_rl.runners.base import Runner
from sim.core import BatchedEnv


class OnPolicyRunner(Runner):
    def __init__(self, cfg: TrainConfig, run_dir: Path, env: BatchedEnv | None = None) -> None:
        super().__init__(cfg, run_dir, env)
        env = self.env
        self.algo = PPO(cfg.ppo, env.obs_dims["policy"], env.obs_dims["critic"], env.action_dim, self.gen)
        for m in self.algo.modules().values():
            m.to(cfg.device)

    def _iteration(self) -> dict[str, float]:
        env, algo, T = self.env, self.algo, self.cfg.on_policy.steps_per_env
        keys = ("policy_obs", "critic_obs", "action", "logp", "values", "rewards", "dones", "bootstrap")
        buf: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for _ in range(T):
            algo.update_normalizers(self.obs["policy"], self.obs["critic"])
            action, logp = algo.act(self.obs["policy"], explore=True)
            with torch.no_grad():
                value = algo.critic(self.obs["critic"]).squeeze(-1)
            obs, reward, terminated, truncated, info = env.step(action)
            with torch.no_grad():
                final_v = algo.critic(info["final_obs"]["critic"]).squeeze(-1)
            for k, v in zip(keys, (self.obs["policy"], self.obs["critic"], action, logp, value, reward,
                                   (terminated | truncated).float(), torch.where(truncated, final_v, 0.0)),
                            strict=True):
                buf[k].append(v)
            self.obs = {k: v.clone() for k, v in obs.items()}
            self._track_episodes(reward, terminated | truncated)
            self.env_steps += env.num_envs * self.world
            self._apply_curriculum()
        data = {k: torch.stack(v) for k, v in buf.items()}
        with torch.no_grad():
            last_v = algo.critic(self.obs["critic"]).squeeze(-1)
        adv, ret = compute_gae(data["rewards"], data["values"], last_v, data["dones"], data["bootstrap"],
                               algo.cfg.gamma, algo.cfg.lam)
        flat = {k: data[k].flatten(0, 1) for k in ("policy_obs", "critic_obs", "action", "logp", "values")}
        flat.update(advantages=adv.flatten(), returns=ret.flatten())
        return algo.update(flat)
