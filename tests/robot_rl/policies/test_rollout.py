"""Expert demonstrations and closed-loop chunked evaluation on a tiny 1-D reaching env (no simulator needed)."""

import numpy as np
import torch

from robot_rl.data import load_dataset, write_dataset
from robot_rl.data.collect import collect_demos
from robot_rl.policies.rollout import evaluate_chunked


class Reach1D:
    """x += 0.2 a; success (terminates) when |x| < 0.05; truncated after 30 steps."""

    def __init__(self, num_envs=4):
        self.num_envs, self.max_steps = num_envs, 30
        self.x, self.t = np.zeros(num_envs), np.zeros(num_envs, dtype=int)
        self.rng = np.random.default_rng(0)

    def _obs(self):
        return {"policy": torch.as_tensor(self.x[:, None], dtype=torch.float32)}

    def _reset(self, mask):
        self.x[mask] = self.rng.choice([-1.0, 1.0], mask.sum()) * self.rng.uniform(0.5, 1.0, mask.sum())
        self.t[mask] = 0

    def reset(self, seed):
        self.rng = np.random.default_rng(seed)
        self._reset(np.ones(self.num_envs, dtype=bool))
        return self._obs()

    def step(self, action):
        self.x += 0.2 * np.clip(action.numpy()[:, 0], -1, 1)
        self.t += 1
        success = np.abs(self.x) < 0.05
        done = success | (self.t >= self.max_steps)
        reward = success.astype(np.float32)
        self._reset(done)
        info = {"done_mask": torch.as_tensor(done), "success": torch.as_tensor(success)}
        return self._obs(), torch.as_tensor(reward), torch.as_tensor(success), torch.as_tensor(done & ~success), info


class Expert:
    def __init__(self, env, noise=0.1):
        self.env, self.noise, self.rng = env, noise, np.random.default_rng(1)

    def act(self):
        label = np.clip(-self.env.x / 0.2, -1, 1)[:, None].astype(np.float32)
        return label, (label + self.noise * self.rng.standard_normal(label.shape)).astype(np.float32)

    def reset(self, mask):
        pass


class OpenLoopExpert:
    """Chunk policy: the expert's plan from the newest observation, rolled out without feedback."""

    n_obs_steps, horizon, n_action_steps = 2, 6, 3

    def __init__(self, gain=1.0):
        self.gain = gain

    def predict_chunk(self, obs, generator=None):
        x = obs[:, -1, 0].clone()
        out = []
        for _ in range(self.horizon):
            a = (-x / 0.2).clamp(-1, 1) * self.gain
            out.append(a)
            x = x + 0.2 * a
        return torch.stack(out, 1)[:, :, None]


def test_collect_demos_records_clean_labels_and_writes(tmp_path):
    env = Reach1D()
    episodes, summary = collect_demos(env, Expert(env), 6, seed=0)
    assert len(episodes) == 6 and summary["successes"] >= 6
    for ep in episodes:
        obs, act = ep["observation.state"][:, 0], ep["action"][:, 0]
        np.testing.assert_allclose(act, np.clip(-obs / 0.2, -1, 1), atol=1e-6)  # clean labels of what was seen
        assert ep["next.done"][-1] and ep["next.success"][-1] and not ep["next.done"][:-1].any()
    data = load_dataset(write_dataset(tmp_path / "d", episodes, fps=10, task="reach"))
    assert len(data.episodes) == 6


def test_evaluate_chunked_counts_each_env_once_per_wave():
    env = Reach1D(num_envs=4)
    good = evaluate_chunked(env, OpenLoopExpert(), 6, seed=3)
    assert good["episodes"] == 6 and good["success_rate"] == 1.0 and good["mean_length"] <= 6
    idle = evaluate_chunked(env, OpenLoopExpert(gain=0.0), 6, seed=3)
    assert idle["success_rate"] == 0.0 and idle["mean_length"] == 30
